//! One connection: read, parse every complete request in the buffer, execute them in
//! order, hand all their replies to the connection's outbox, which writes them with one
//! write call at the end of the thread's pass (`outbox.rs`). Consecutive writes in a
//! pipeline are collected and submitted to the funnel as one message when the next
//! command that is not a write, or the end of the parsed input, needs their replies;
//! they share a WAL commit, and any other command waits for them (read-your-writes).
//!
//! A malformed request gets the protocol error reply and closes this connection only.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use keel_engine::command::{flags, CommandSpec};
use keel_engine::engine::PrefetchScratch;
use keel_engine::{Op, ReadResult, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::acl;
use super::admin_hooks;
use super::blocking::{self, BlockIo, Blocked};
use super::client::{ClientHandle, ClientState};
use super::client_admin::reply_mode;
use super::closing::Closing;
use super::commands::{self, Cmd, Outcome};
use super::multi;
use super::outbox::Outbox;
use super::pushes::Pushes;
use super::stats::CallResult;
use super::unawaited::UnawaitedReplies;
use super::Shared;
use crate::clock::unix_now_ms;
use crate::coordinator::{
    resolve_write, resolve_writes, GatheredWrite, ResultSink, SinkTicket, UnawaitedWrites,
    WriteResult,
};
use crate::resp::{encode, Limits, RequestParser};

/// Initial read buffer size.
const READ_CHUNK: usize = 16 * 1024;
/// An output buffer grown past this is released after the write (here and in the
/// outbox).
pub(super) const KEEP_OUT: usize = 1 << 20;
/// An input that ran more requests than this has its replies written at once instead
/// of at the end of the thread's pass (see `outbox`): their write already carries many
/// replies per wake-up of the client, and a deep pipeline from one client lost the
/// overlap of its replies with the rest of its input (redis-benchmark -c 1 -P 1000:
/// SET 0.96, GET 0.93 of writing at once).
const DEFER_MAX_REQUESTS: usize = 64;
/// Requests parsed ahead of the one running, so that the keys of a pipeline's reads
/// are prefetched together (see [`Session::prefetch_reads`]).
const AHEAD: usize = 16;

/// A parsed request with its command, looked up once.
type Parsed = (Vec<Bytes>, Option<(Cmd, usize)>);

/// What the connection loop does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// Write what is buffered, then close.
    Close,
}

/// A connection's execution context: its state, output buffer and writes in flight.
pub struct Session {
    /// Server-wide state.
    pub shared: Arc<Shared>,
    /// This client's state.
    pub client: ClientState,
    /// Replies not yet written.
    pub out: BytesMut,
    /// Writes collected and not yet submitted, in request order, with the command each
    /// runs.
    unsent: Vec<GatheredWrite>,
    /// The command name of each unsent write (failed_calls in commandstats).
    unsent_names: Vec<&'static str>,
    /// The current command answered an error.
    pub(super) cur_failed: bool,
    /// The current command was refused before running (arity, NOAUTH, or an ACL
    /// refusal of a woken blocking command).
    pub(super) cur_rejected: bool,
    /// A blocking command waiting for data; the connection loop carries out the wait.
    pub blocked: Option<Blocked>,
    /// Wall-clock ms the reads of this input batch use (see [`Session::begin_input`]).
    clock_ms: Option<u64>,
    /// Where the next command's timing starts: the end of the previous command of this
    /// batch, or None for a fresh clock reading (see [`Session::execute`]).
    cmd_start: Option<u64>,
    /// The keys [`Session::prefetch_reads`] hands the engine.
    prefetch: PrefetchScratch,
}

impl Session {
    /// A session for `handle`.
    pub fn new(shared: Arc<Shared>, handle: Arc<ClientHandle>) -> Self {
        let needs_auth = shared.acl.needs_auth();
        let user = shared.acl.default_slot();
        Session {
            shared,
            client: ClientState::new(handle, user, needs_auth),
            out: BytesMut::new(),
            unsent: Vec::new(),
            unsent_names: Vec::new(),
            cur_failed: false,
            cur_rejected: false,
            blocked: None,
            clock_ms: None,
            cmd_start: None,
            prefetch: PrefetchScratch::default(),
        }
    }

    /// Starts loading the records that the reads among `parsed` (two or more requests
    /// of one input) will look up, so that their cache misses overlap instead of coming
    /// one per read: perf put 35% of a pipelined GET's samples on the three dependent
    /// misses of its hash look-up (the table's control bytes, the entry, the value).
    fn prefetch_reads(&mut self, parsed: &VecDeque<Parsed>) {
        let db = self.client.db;
        let reads = parsed.iter().flat_map(|(args, found)| {
            read_command(*found)
                .filter(|spec| spec.arity_ok(args.len()))
                .into_iter()
                .flat_map(|spec| spec.key_positions(args.len()))
                .filter_map(|p| args.get(p))
                .map(move |k| (db, &k[..]))
        });
        self.shared
            .coord
            .engine()
            .prefetch_reads(&mut self.prefetch, reads);
    }

    /// Starts a batch of requests read together: their reads share one wall-clock
    /// reading, taken by the first read that needs it (a clock reading and its
    /// conversion were ~85 of a pipelined GET's ~3,500 instructions). Anything that can
    /// wait long inside the batch (a blocking command, CLIENT PAUSE) starts a new one.
    pub fn begin_input(&mut self) {
        self.clock_ms = None;
        self.cmd_start = None;
    }

    /// The blocking command waiting to be carried out, if any. Looked at before it is
    /// taken: `Option::take` copies the whole value (136 bytes, a `memcpy` per request)
    /// even when it is None.
    #[inline]
    fn take_blocked(&mut self) -> Option<Blocked> {
        if self.blocked.is_some() {
            self.blocked.take()
        } else {
            None
        }
    }

    /// The wall clock for this batch's reads, in ms.
    fn now_ms(&mut self) -> u64 {
        *self.clock_ms.get_or_insert_with(unix_now_ms)
    }

    /// Appends `reply` in the client's protocol; waits for pending writes first so
    /// replies keep request order.
    pub async fn reply(&mut self, reply: &Reply) {
        if self.has_unsent() {
            self.settle().await;
        }
        self.push_reply(reply);
    }

    /// [`Session::reply`] with no writes pending: encodes `reply` now.
    fn push_reply(&mut self, reply: &Reply) {
        if let Reply::Error(e) = reply {
            self.shared.cmd_stats.record_error(e);
            self.cur_failed = true;
        }
        encode(reply, self.client.protocol, &mut self.out);
    }

    /// True when writes are collected and not yet submitted ([`Session::settle`]).
    pub fn has_unsent(&self) -> bool {
        !self.unsent.is_empty()
    }

    /// Submits the collected writes (one message for all of them, so one channel send
    /// and one wake-up instead of one per write), awaits them and encodes their replies.
    pub async fn settle(&mut self) {
        match self.unsent.len() {
            0 => {}
            1 => {
                let Some(write) = self.unsent.pop() else {
                    return;
                };
                let rx = self
                    .shared
                    .coord
                    .submit_gathered(write, self.client.handle.id)
                    .await;
                let result = resolve_write(rx).await;
                self.answer_write(0, result);
            }
            n => {
                // The next batch is likely as long: its vector is sized like this one.
                let ops = std::mem::replace(&mut self.unsent, Vec::with_capacity(n));
                let rx = self
                    .shared
                    .coord
                    .submit_many_gathered(ops, self.client.handle.id)
                    .await;
                let results = resolve_writes(rx, n).await;
                for (i, result) in results.into_iter().enumerate() {
                    self.answer_write(i, result);
                }
            }
        }
        self.unsent_names.clear();
    }

    /// Hands the collected writes to the funnel without waiting for them: `replies`
    /// answers them (see `unawaited`). The caller has deferred every reply before them.
    fn hand_over(&mut self, replies: &Arc<UnawaitedReplies>) {
        let ops: UnawaitedWrites = match self.unsent.len() {
            1 => self.unsent.drain(..).collect(),
            n => UnawaitedWrites::from_vec(std::mem::replace(
                &mut self.unsent,
                Vec::with_capacity(n),
            )),
        };
        replies.hand_over(&mut self.unsent_names, self.client.protocol);
        let ticket = SinkTicket::new(Arc::clone(replies) as Arc<dyn ResultSink>);
        if self
            .shared
            .coord
            .queue_unawaited(ops, ticket, self.client.handle.id)
        {
            self.shared.coord.run_queued();
        } else {
            super::outbox::run_funnel_at_end_of_pass(&self.shared);
        }
    }

    /// Encodes the result of the `i`th collected write.
    fn answer_write(&mut self, i: usize, result: WriteResult) {
        let reply = match result {
            Ok(replies) => replies.into_iter().next().unwrap_or(Reply::Nil),
            Err(r) => r,
        };
        if let Reply::Error(e) = &reply {
            self.shared.cmd_stats.record_error(e);
            if let Some(n) = self.unsent_names.get(i) {
                self.shared.cmd_stats.record_failed(n);
            }
        }
        encode(&reply, self.client.protocol, &mut self.out);
    }

    /// Runs one request: waits out CLIENT PAUSE, dispatches, applies CLIENT REPLY and
    /// feeds commandstats, SLOWLOG and LATENCY.
    /// `found` is the command `args` names, from [`commands::lookup_indexed`].
    pub async fn execute(&mut self, mut args: Vec<Bytes>, found: Option<(Cmd, usize)>) -> Flow {
        // Borrowed from the client each time, not cloned: a clone and its drop were
        // two atomic read-modify-writes per command.
        let cmd = found.map(|(c, _)| c);
        if let Some((c, index)) = found {
            // Set before a pause so CLIENT LIST shows what a paused client waits with.
            self.client.handle.admin.set_last_cmd(index);
            // CLIENT stays available so a paused server can be unpaused.
            if c.name() != "client" && self.shared.pause.armed() {
                self.shared.pause.wait(admin_hooks::is_write(c)).await;
                self.begin_input();
            }
        }
        let mode = self.client.handle.admin.reply.load(Ordering::Relaxed);
        // Subscription confirmations are pub/sub pushes: CLIENT REPLY OFF/SKIP does not
        // silence them (Redis 7.2). Their names are compared only when replies may be
        // silenced, not for every command.
        let pubsub = || {
            cmd.is_some_and(|c| {
                matches!(
                    c.name(),
                    "subscribe"
                        | "psubscribe"
                        | "ssubscribe"
                        | "unsubscribe"
                        | "punsubscribe"
                        | "sunsubscribe"
                )
            })
        };
        let mark =
            if (mode != reply_mode::ON || cmd.is_some_and(|c| c.name() == "client")) && !pubsub() {
                self.settle().await;
                self.cmd_start = None;
                Some(self.out.len())
            } else {
                None
            };
        self.cur_failed = false;
        self.cur_rejected = false;
        // At most one clock reading per command (none for a collected write, below):
        // inside a batch a command's time starts where the previous one's ended, so it
        // also carries the parse of its own request (well under a microsecond). Clock
        // readings and their subtraction were ~200 of a GET's ~4,700 instructions at -P 1
        // (see `crate::clock`). The client's last-interaction time (CLIENT LIST idle, in
        // seconds) is stamped once per batch.
        let start = match self.cmd_start {
            Some(t) => t,
            None => {
                let t = crate::clock::mono_ns();
                self.client.handle.touch_at(t);
                t
            }
        };
        // `dispatch` leaves `args` in place unless it hands them on (a write, a queued or
        // blocking command), and then keeps a copy only while SLOWLOG may want it.
        let collected = self.unsent.len();
        let flow = match self.dispatch_now(&mut args, cmd) {
            Some(flow) => flow,
            None => self.dispatch(&mut args, cmd).await,
        };
        // CLIENT CACHING applies to the next command only (or the transaction it
        // starts); any CLIENT subcommand leaves it, as in Redis.
        if self.client.caching
            && !multi::in_multi(&self.client)
            && cmd.is_some_and(|c| c.name() != "client")
        {
            self.client.caching = false;
        }
        // A write only collected for the funnel (it runs at `settle`, outside any
        // command's time, as before) took a fraction of a microsecond here, which
        // rounded to 0 µs: it counts 0 without a clock reading, and the next command's
        // time starts where this one's did. One reading per command was 2.7% of RPOP
        // -P 16's samples; a pipeline of writes now reads the clock once.
        let usec = if self.unsent.len() > collected {
            self.cmd_start = Some(start);
            0
        } else {
            let end = crate::clock::mono_ns();
            self.cmd_start = Some(end);
            end.saturating_sub(start) / 1000
        };
        if let Some((_, index)) = found {
            let result = self.call_result();
            match self.blocked.as_mut() {
                Some(b) if result == CallResult::Ok => b.count_later(index, usec),
                _ => self.shared.cmd_stats.record_at(index, usec, result),
            }
        }
        // Empty when a write took them to the funnel: its time here is submission only.
        if self.shared.slowlog.enabled() && !args.is_empty() {
            admin_hooks::observe_slow(&self.shared, &self.client.handle, &args, usec);
        }
        self.client.handle.admin.resp.store(
            admin_hooks::resp_number(self.client.protocol),
            Ordering::Relaxed,
        );
        if let Some(mark) = mark {
            let now = self.client.handle.admin.reply.load(Ordering::Relaxed);
            if admin_hooks::mute(mode, now) {
                self.settle().await;
                self.out.truncate(mark);
            }
            self.client
                .handle
                .admin
                .reply
                .store(admin_hooks::next_mode(mode, now), Ordering::Relaxed);
        }
        flow
    }

    /// The request's arguments to hand on, leaving a copy in `args` for SLOWLOG when it
    /// is on (it is by default): MULTI's queue and blocking commands, which the
    /// connection itself waits on.
    fn hand_on(&self, args: &mut Vec<Bytes>) -> Vec<Bytes> {
        if self.shared.slowlog.enabled() {
            args.clone()
        } else {
            std::mem::take(args)
        }
    }

    /// [`Session::dispatch`] of the commands that need no waiting, done here without
    /// building `dispatch`'s future: a write collected for the funnel, or a read with no
    /// write pending. None, having done nothing, for every other case (not
    /// authenticated, unknown or wrong arity, a blocking or server command, MULTI, a
    /// RESP2 subscriber, a read behind pending writes), which `dispatch` then takes.
    /// Why: the future's state copied the request in and out on every command, and the
    /// copies' loads stalled on the stores just made (perf, INCR -P 16: half of
    /// `dispatch`'s samples).
    fn dispatch_now(&mut self, args: &mut Vec<Bytes>, cmd: Option<Cmd>) -> Option<Flow> {
        let Some(Cmd::Engine(spec)) = cmd else {
            return None;
        };
        if args.is_empty()
            || !self.client.authenticated
            || !spec.arity_ok(args.len())
            || spec.flags & flags::BLOCKING != 0
            || multi::in_multi(&self.client)
            || (self.client.pubsub.subscribed()
                && self.client.protocol == crate::resp::Protocol::Resp2)
            || (!spec.is_write() && self.has_unsent())
        {
            return None;
        }
        // A limited user's allowed call stays on this path; a refusal is `dispatch`'s
        // to answer, log and count.
        if !self.client.user.open() && !self.acl_allows(Cmd::Engine(spec), args) {
            return None;
        }
        self.shared.stats.total_commands.add(1);
        // Not a RESP2 subscriber (checked above): this only feeds MONITOR and answers
        // nothing.
        let answered = commands::pubsub_cmd::before_dispatch(self, Cmd::Engine(spec), args);
        debug_assert!(
            answered.is_none(),
            "before_dispatch answered a data command"
        );
        if spec.is_write() {
            self.collect_write(spec, args);
        } else {
            let reply = self.read(spec, args);
            self.push_reply(&reply);
        }
        Some(Flow::Continue)
    }

    /// Collects a write for the funnel (it runs at `settle`). The time SLOWLOG sees is
    /// the collection, microseconds: a copy of the arguments is kept only when every
    /// command is logged (threshold 0).
    fn collect_write(&mut self, spec: &'static CommandSpec, args: &mut Vec<Bytes>) {
        let args = if self.shared.slowlog.qualifies(0) {
            args.clone()
        } else {
            std::mem::take(args)
        };
        let mut op = Op::Command {
            db: self.client.db,
            args,
        };
        if !self.client.user.open() {
            op = acl::gate::gated(op, &self.client.user.borrow());
        }
        self.unsent.push((op, spec));
        self.unsent_names.push(spec.name);
    }

    /// Dispatches one request to its command.
    async fn dispatch(&mut self, args: &mut Vec<Bytes>, cmd: Option<Cmd>) -> Flow {
        self.shared.stats.total_commands.add(1);
        if args.is_empty() {
            return Flow::Continue;
        }
        if !self.client.authenticated
            && cmd.is_none_or(|c| c.flags() & commands::server_flags::NO_AUTH == 0)
        {
            self.cur_rejected = true;
            multi::flag_error(&mut self.client);
            self.reply(&Reply::err("NOAUTH Authentication required."))
                .await;
            return Flow::Continue;
        }
        let cmd = match cmd {
            Some(c) if c.arity_ok(args.len()) => c,
            Some(c) => {
                self.cur_rejected = true;
                multi::flag_error(&mut self.client);
                let reply = Reply::err(keel_engine::reply::errors::wrong_args(c.name()));
                self.reply(&reply).await;
                return Flow::Continue;
            }
            None => {
                multi::flag_error(&mut self.client);
                // The engine's resolve gives Redis's unknown-command text.
                let reply = match keel_engine::engine::resolve(args) {
                    Err(r) => r,
                    Ok(spec) => Reply::err(keel_engine::reply::errors::wrong_args(spec.name)),
                };
                self.reply(&reply).await;
                return Flow::Continue;
            }
        };
        if !self.client.user.open() {
            if let Some(reply) = self.acl_refusal(cmd, args) {
                self.cur_rejected = true;
                multi::flag_error(&mut self.client);
                self.reply(&reply).await;
                return Flow::Continue;
            }
        }
        if let Some(reply) = commands::pubsub_cmd::before_dispatch(self, cmd, args) {
            self.reply(&reply).await;
            return Flow::Continue;
        }
        if multi::in_multi(&self.client) && multi::queues(cmd) {
            let args = self.hand_on(args);
            let reply = multi::queue(self, cmd, args);
            self.reply(&reply).await;
            return Flow::Continue;
        }
        match cmd {
            Cmd::Engine(spec)
                if spec.flags & flags::BLOCKING != 0 && blocking::would_block(args) =>
            {
                let args = self.hand_on(args);
                blocking::start(self, spec, args).await
            }
            Cmd::Engine(spec) if spec.is_write() => {
                self.collect_write(spec, args);
                Flow::Continue
            }
            Cmd::Engine(spec) => {
                // Checked here, not in `settle`: building and polling its future twice
                // (before the read and in `reply`) was ~80 instructions of a GET.
                if self.has_unsent() {
                    self.settle().await;
                }
                let reply = self.read(spec, args);
                self.push_reply(&reply);
                Flow::Continue
            }
            Cmd::Server(sc) => {
                if self.has_unsent() {
                    self.settle().await;
                }
                let outcome = (sc.handler)(self, args);
                self.finish(outcome).await
            }
        }
    }

    /// How commandstats counts the current command: refused before it ran, answered
    /// with an error, or a call.
    pub(super) fn call_result(&self) -> CallResult {
        if self.cur_rejected {
            CallResult::Rejected
        } else if self.cur_failed {
            CallResult::Failed
        } else {
            CallResult::Ok
        }
    }

    /// A read on a fresh snapshot; expired keys it met are sent for deletion.
    fn read(&mut self, spec: &'static CommandSpec, args: &[Bytes]) -> Reply {
        // MEMORY STATS and the like need the process's figures (see
        // `commands::memory_cmd`); a read of another name pays one comparison.
        if spec.name == "memory" {
            if let Some(reply) = commands::memory_cmd::answer(&self.shared, args) {
                return reply;
            }
        }
        if self.client.tracking.is_some() {
            if is_ro_script(spec) {
                return self.read_script(spec, args);
            }
            self.track_read(spec, args);
        } else if !self.client.user.open() && is_ro_script(spec) {
            return self.read_script(spec, args);
        }
        let now_ms = self.now_ms();
        let engine = self.shared.coord.engine();
        let result = engine.read_spec(spec, self.client.db, now_ms, args);
        self.read_reply(result)
    }

    /// A read's reply; the expired keys it met are sent for deletion. Inlined: out of
    /// line, the result's move into it cost GET ~30 instructions (callgrind).
    #[inline(always)]
    fn read_reply(&self, result: keel_engine::Result<ReadResult>) -> Reply {
        match result {
            Ok(r) => {
                if !r.expired.is_empty() {
                    self.shared.coord.expire_due(r.expired);
                }
                r.reply
            }
            Err(e) => {
                tracing::error!(error = %e, "read failed");
                Reply::err(format!("ERR storage error: {e}"))
            }
        }
    }

    /// A read-only script of a tracking client or a limited user: the keys its
    /// read-only commands read are remembered once known, after it ran (see
    /// `Tracking::remember_after`), and a limited user's calls are checked (see
    /// `acl::gate`).
    fn read_script(&mut self, spec: &'static CommandSpec, args: &[Bytes]) -> Reply {
        let now_ms = self.now_ms();
        let before = self.shared.tracking.generation();
        let engine = self.shared.coord.engine();
        let gate = (!self.client.user.open()).then(|| {
            let (user, rules) = acl::gate::gate_words(&self.client.user.borrow());
            engine.gate(&user, &rules)
        });
        let result = engine
            .read_script(spec, self.client.db, now_ms, args, gate)
            .map(|(r, noted)| {
                acl::gate::log_refusals(&self.shared, &noted, self.client.handle.id);
                if let Some(tr) = self.client.tracking.as_ref() {
                    if tr.remembers(self.client.caching) {
                        let keys: Vec<Bytes> = noted
                            .into_iter()
                            .filter(|e| e.class == keel_engine::exec::SCRIPT_READ)
                            .map(|e| e.key)
                            .collect();
                        let out = self.shared.outlet();
                        self.shared.tracking.remember_after(tr, &keys, before, &out);
                    }
                }
                r
            });
        self.read_reply(result)
    }

    /// Client-side caching: remembers the keys of a read-only command before it runs
    /// (see `server::tracking`).
    pub(super) fn track_read(&self, spec: &'static CommandSpec, args: &[Bytes]) {
        let Some(tr) = self.client.tracking.as_ref() else {
            return;
        };
        // A read-only script's own keys are not its reads: the commands it runs are
        // (`read_script`; EVAL's in the funnel).
        if spec.flags & flags::READONLY == 0
            || !tr.remembers(self.client.caching)
            || is_ro_script(spec)
        {
            return;
        }
        let keys = spec.keys_in(args).map(|k| &k[..]);
        self.shared
            .tracking
            .remember(tr, keys, &self.shared.outlet());
    }

    /// Turns client-side caching off for this client (CLIENT TRACKING off, RESET, a
    /// closed connection).
    pub(super) fn stop_tracking(&mut self) {
        if let Some(tr) = self.client.tracking.take() {
            self.shared.tracking.disable(&tr);
        }
        self.client.caching = false;
    }

    /// Carries out what a server command asked for.
    async fn finish(&mut self, outcome: Outcome) -> Flow {
        match outcome {
            Outcome::Reply(r) => {
                self.reply(&r).await;
                Flow::Continue
            }
            Outcome::ReplyThenClose(r) => {
                self.reply(&r).await;
                Flow::Close
            }
            Outcome::Save => {
                let reply = match self.shared.coord.snapshot().await {
                    Ok(Ok(())) => Reply::Ok,
                    Ok(Err(e)) => Reply::err(e),
                    Err(_) => Reply::err("ERR server is shutting down"),
                };
                self.reply(&reply).await;
                Flow::Continue
            }
            Outcome::Bgsave { aof } => {
                let (busy, started) = if aof {
                    (
                        "ERR Background append only file rewriting already in progress",
                        "Background append only file rewriting started",
                    )
                } else {
                    (
                        "ERR Background save already in progress",
                        "Background saving started",
                    )
                };
                let state = self.shared.coord.state();
                let reply = if state.snapshot_in_progress.load(Ordering::Acquire) {
                    Reply::err(busy)
                } else {
                    // The snapshot reports its outcome in the log and INFO persistence.
                    drop(self.shared.coord.snapshot());
                    Reply::Simple(started.into())
                };
                self.reply(&reply).await;
                Flow::Continue
            }
            Outcome::Deferred(fut) => {
                let reply = fut.0.await;
                self.reply(&reply).await;
                Flow::Continue
            }
            Outcome::Exec => {
                multi::exec(self).await;
                Flow::Continue
            }
            Outcome::Shutdown { save } => {
                self.shared.request_shutdown(save);
                // Redis closes the connection without a reply on success.
                Flow::Close
            }
        }
    }
}

/// EVAL_RO, EVALSHA_RO or FCALL_RO.
fn is_ro_script(spec: &CommandSpec) -> bool {
    spec.flags & flags::READONLY != 0 && keel_engine::command::runs_script(spec.name.as_bytes())
}

/// The data command `found` names when it only reads (its keys are worth prefetching).
fn read_command(found: Option<(Cmd, usize)>) -> Option<&'static CommandSpec> {
    match found {
        Some((Cmd::Engine(spec), _)) if spec.flags & flags::READONLY != 0 => Some(spec),
        _ => None,
    }
}

/// Sleeps `secs`. A plain `sleep` in the `select!` would build a timer entry on every
/// request even while the branch is disabled; this builds it only when polled.
async fn idle_timeout(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await
}

/// What interrupts a connection's wait for input, besides pushes and the idle timeout.
enum Stop {
    /// Server shutdown or CLIENT KILL.
    Closing,
    /// A deferred write ran into trouble ([`Outbox::in_trouble`]).
    Trouble,
}

/// Resolves on either [`Stop`]: one branch of the connection's `select!` for both, as
/// another branch cost every poll ~40 instructions (callgrind, GET at -P 1).
fn closing_or_trouble<'a>(
    closing: &'a mut Closing,
    outbox: &'a Outbox,
) -> impl Future<Output = Stop> + 'a {
    std::future::poll_fn(move |cx| {
        if outbox.in_trouble() {
            return std::task::Poll::Ready(Stop::Trouble);
        }
        std::pin::Pin::new(&mut *closing)
            .poll(cx)
            .map(|()| Stop::Closing)
    })
}

/// Serves one client until it closes, errs, idles out, or the server stops.
pub async fn serve_connection(shared: Arc<Shared>, sock: TcpStream, handle: Arc<ClientHandle>) {
    let (limits, qbuf_limit) = {
        let c = shared.config.read();
        (
            Limits {
                max_bulk_len: usize::try_from(c.proto_max_bulk_len).unwrap_or(usize::MAX),
                ..Limits::default()
            },
            c.client_query_buffer_limit,
        )
    };
    let mut parser = RequestParser::new(limits);
    let mut parsed: VecDeque<Parsed> = VecDeque::with_capacity(AHEAD);
    let mut closing = Closing::new(shared.shutdown.subscribe(), Arc::clone(&handle));
    let (mut rd, wr) = sock.into_split();
    let outbox = Outbox::new(wr);
    let mut inbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut session = Session::new(Arc::clone(&shared), Arc::clone(&handle));
    let replies = UnawaitedReplies::new(&shared, &outbox);
    let mut pushes = Pushes::new(session.client.pubsub.take_receiver());
    let sink = Arc::clone(&session.client.pubsub.sink);
    // Push bytes in `session.out`, released from the sink's count once written.
    let mut pushed: u64 = 0;
    let id = handle.id;
    tracing::debug!(id, addr = %handle.addr, "client connected");
    loop {
        let idle = shared.config.read().timeout;
        // Biased, in a fixed order: a closing client first (its poll is one atomic load
        // until it fires), then pushes waiting to go out, then the read. A random start
        // draws a random number and polls the others first on every request.
        let read = tokio::select! {
            biased;
            stop = closing_or_trouble(&mut closing, &outbox) => match stop {
                Stop::Closing => break,
                // Not a read, as for pushes below: the write section finds the
                // outbox in trouble and writes the rest.
                Stop::Trouble => Ok(usize::MAX),
            },
            Some(frame) = pushes.next() => {
                pushed += pushes.drain_into(frame, &mut session.out);
                // Not a read: marks "nothing new to parse, just write the pushes".
                Ok(usize::MAX)
            }
            r = rd.read_buf(&mut inbuf) => r,
            _ = idle_timeout(idle), if idle > 0 => {
                tracing::debug!(id, "closing idle client (timeout {idle}s)");
                break;
            }
        };
        // Writes handed over at the end of the last input are answered before anything
        // else is: a read must see them, and their replies go first.
        if replies.in_flight() {
            replies.landed().await;
        }
        match read {
            Ok(0) | Err(_) => break,
            Ok(usize::MAX) => {}
            Ok(n) => {
                shared.stats.net_input_bytes.add(n as u64);
            }
        }
        let mut flow = Flow::Continue;
        let mut ran = 0usize;
        session.begin_input();
        let mut bad_input = None;
        loop {
            let next = match parsed.pop_front() {
                Some(p) => Some(p),
                None if bad_input.is_some() => None,
                None => {
                    // One request; but a read with more input behind it (a pipeline)
                    // starts a parse ahead, up to AHEAD requests, so that the reads'
                    // keys are prefetched together. Other requests skip the detour (it
                    // cost a pipelined SET ~150 instructions). One call site of the
                    // parser, so that it stays inlined.
                    let one = loop {
                        match parser.next(&mut inbuf) {
                            Ok(Some(args)) if args.is_empty() => {}
                            Ok(Some(args)) => {
                                let found = args.first().and_then(|n| commands::lookup_indexed(n));
                                if parsed.is_empty()
                                    && (inbuf.is_empty() || read_command(found).is_none())
                                {
                                    break Some((args, found));
                                }
                                parsed.push_back((args, found));
                                if parsed.len() == AHEAD {
                                    break None;
                                }
                            }
                            Ok(None) => break None,
                            Err(e) => {
                                bad_input = Some(e);
                                break None;
                            }
                        }
                    };
                    if one.is_some() {
                        one
                    } else {
                        if parsed.len() > 1 {
                            session.prefetch_reads(&parsed);
                        }
                        parsed.pop_front()
                    }
                }
            };
            // Requests parsed before bad input are answered before its error.
            let Some((args, found)) = next else {
                if let Some(e) = bad_input.take() {
                    tracing::debug!(id, error = %e, "protocol error, closing client");
                    session.reply(&Reply::err(e.0)).await;
                    flow = Flow::Close;
                }
                break;
            };
            flow = session.execute(args, found).await;
            ran += 1;
            if let Some(b) = session.take_blocked() {
                // The wait writes the replies before it itself, deferred ones first.
                let Some(mut wr) = outbox.take(&mut session.out) else {
                    flow = Flow::Close;
                    break;
                };
                let io = BlockIo {
                    rd: &mut rd,
                    wr: &mut wr,
                    inbuf: &mut inbuf,
                    closing: &mut closing,
                    qbuf_limit,
                };
                flow = blocking::wait(&mut session, b, io).await;
                outbox.put_back(wr);
                session.begin_input();
            }
            if flow == Flow::Close {
                break;
            }
        }
        // Checked here: building and polling the settle future for a batch of reads
        // alone was ~100 instructions of a GET at -P 1.
        if session.has_unsent() {
            // The writes that end an input are answered by the round that applies them
            // when this thread's pass ends (see `unawaited`); the replies before them
            // are deferred first, so that theirs follow.
            let n = session.out.len() as u64;
            let handed = flow == Flow::Continue
                && ran <= DEFER_MAX_REQUESTS
                && super::outbox::hooked()
                && std::future::poll_fn(|cx| {
                    std::task::Poll::Ready(outbox.defer(&mut session.out, cx.waker()))
                })
                .await;
            if handed {
                sink.written(std::mem::take(&mut pushed));
                shared.stats.net_output_bytes.add(n);
                session.hand_over(&replies);
            } else {
                session.settle().await;
            }
        }
        session.client.pubsub.set_protocol(session.client.protocol);
        // Replies go out at the end of this thread's pass (see `outbox`), except the
        // last ones before a close, those of a long input (DEFER_MAX_REQUESTS), and the
        // rest of a deferred write that the socket did not take, which this task writes
        // itself (`defer` refuses while the outbox is in trouble).
        if flow == Flow::Close {
            // Before the last reply (QUIT's +OK) goes out: a client that read it finds
            // this connection gone as a client-side caching redirect target.
            sink.mark_leaving();
        }
        let direct = flow == Flow::Close || ran > DEFER_MAX_REQUESTS;
        if !session.out.is_empty() || direct || outbox.in_trouble() {
            // The socket may be taken below: what is in flight lands in the outbox first.
            if replies.in_flight() {
                replies.landed().await;
            }
            let n = session.out.len() as u64;
            let deferred = !direct
                && std::future::poll_fn(|cx| {
                    std::task::Poll::Ready(outbox.defer(&mut session.out, cx.waker()))
                })
                .await;
            let wrote = if deferred {
                true
            } else {
                write_direct(&outbox, &mut session.out, &mut closing).await
            };
            if !wrote {
                break;
            }
            sink.written(std::mem::take(&mut pushed));
            shared.stats.net_output_bytes.add(n);
            session.out.clear();
            if session.out.capacity() > KEEP_OUT {
                session.out = BytesMut::new();
            }
        }
        if flow == Flow::Close {
            break;
        }
        if inbuf.len() as u64 > qbuf_limit {
            tracing::warn!(
                id,
                addr = %handle.addr,
                buffered = inbuf.len(),
                limit = qbuf_limit,
                "closing client that reached the query buffer limit"
            );
            break;
        }
        if inbuf.capacity() - inbuf.len() < READ_CHUNK / 4 {
            inbuf.reserve(READ_CHUNK);
        }
    }
    sink.mark_leaving();
    session.stop_tracking();
    multi::forget(&mut session);
    let pubsub = Arc::clone(&shared.pubsub);
    pubsub.drop_client(&mut session.client.pubsub);
    // Replies deferred before the client went away (or sent QUIT's way) still go out,
    // unless the client was killed or the server is stopping.
    if let Some(mut wr) = outbox.take(&mut session.out) {
        if !session.out.is_empty() {
            tokio::select! {
                biased;
                _ = &mut closing => {}
                _ = wr.write_all(&session.out) => {}
            }
        }
        let _ = wr.shutdown().await;
    }
    tracing::debug!(id, "client closed");
}

/// Writes `out`, behind whatever the outbox still holds, on this task: at once when the
/// socket takes it all (the common case: a reply fits the send buffer; polling the write
/// and the closing future through `select!` for that cost ~200 instructions of every
/// request at -P 1). What is left waits in the `select!`: a client that stops reading
/// must not pin this task, so its output-buffer limit (pub/sub) or CLIENT KILL ends the
/// write. False when the client is gone or closing.
async fn write_direct(outbox: &Outbox, out: &mut BytesMut, closing: &mut Closing) -> bool {
    let Some(mut wr) = outbox.take(out) else {
        return false;
    };
    let sent = if out.is_empty() {
        Some(0)
    } else {
        match wr.try_write(out) {
            Ok(done) => Some(done),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Some(0),
            Err(_) => None,
        }
    };
    let wrote = match sent {
        None => false,
        Some(done) if done == out.len() => true,
        Some(done) => tokio::select! {
            biased;
            _ = &mut *closing => false,
            r = wr.write_all(&out[done..]) => r.is_ok(),
        },
    };
    outbox.put_back(wr);
    wrote
}
