//! Client-side caching (CLIENT TRACKING, Redis 6+): which clients read which keys, the
//! broadcast prefixes, and the invalidation messages that writes send them.
//!
//! Default mode: a read-only command of a tracking client remembers its keys in one
//! table (key → client ids). A write to a remembered key sends each of those clients
//! `invalidate [key]` once and forgets the key; reading it again remembers it again.
//! BCAST mode: nothing is remembered; every written key that starts with one of the
//! client's prefixes is sent to it. FLUSHALL and FLUSHDB send every tracking client a
//! null ("everything") and empty the table. Keys are names only, whatever the database,
//! as in Redis.
//!
//! Ordering, which a cache depends on: a reader remembers its keys *before* it reads,
//! and a write's invalidations are sent only once the write is in storage (the funnel's
//! visibility hook, [`Tracking::deliver`]), never from the apply hook, which runs while
//! the round's group is still in memory. So a read either sees the write or is sent its
//! invalidation; and a reader that read the old value got that value's reply before the
//! invalidation, because its connection writes pushes only after the replies of the
//! input it is running. The apply hook only queues the written keys, and only while
//! some client tracks ([`Tracking::on_applied`]: one atomic load per write otherwise).
//! Turning tracking on waits for the round in progress ([`Coordinator::barrier`]): a
//! write whose hook still saw nobody tracking is in storage before the first read.
//!
//! Messages: RESP3 clients get a push `>2 invalidate <keys|null>`; a client may
//! redirect them to another connection (REDIRECT id), which gets them as a push in
//! RESP3 or, in RESP2, as a `message` on the `__redis__:invalidate` channel if it is
//! subscribed to anything. A gone redirect target marks the client broken and sends it
//! `tracking-redir-broken <id>` (RESP3). The table is bounded by
//! `tracking-table-max-keys` (default 1,000,000; 0 = no bound): past it, keys are
//! forgotten with an invalidation to their clients.
//!
//! [`Coordinator::barrier`]: crate::coordinator::Coordinator::barrier

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use keel_engine::{Applied, Op, Reply};
use parking_lot::Mutex;
use smallvec::SmallVec;

use super::client::ClientRegistry;
use super::pubsub::{PubSub, Sink};

/// The channel RESP2 redirect targets get their messages on.
pub const CHANNEL: &str = "__redis__:invalidate";
/// Redis's default `tracking-table-max-keys`.
pub const DEFAULT_MAX_KEYS: u64 = 1_000_000;

/// CLIENT TRACKING options.
pub mod opts {
    /// BCAST: prefixes instead of remembered keys.
    pub const BCAST: u8 = 1 << 0;
    /// OPTIN: remember only the reads that follow CLIENT CACHING yes.
    pub const OPTIN: u8 = 1 << 1;
    /// OPTOUT: remember every read but those that follow CLIENT CACHING no.
    pub const OPTOUT: u8 = 1 << 2;
    /// NOLOOP: no messages about the client's own writes.
    pub const NOLOOP: u8 = 1 << 3;
}

/// One client's tracking settings, shared by its connection and the registry. Turning
/// tracking on again replaces it.
#[derive(Debug)]
pub struct Tracker {
    /// The client.
    pub id: u64,
    /// Where its messages go (0: its own connection).
    pub redirect: u64,
    /// Bits of [`opts`].
    pub opts: u8,
    /// BCAST prefixes ("" for every key).
    pub prefixes: Vec<Bytes>,
    /// The redirect target was gone when a message was due.
    broken: AtomicBool,
    /// The client's own push queue.
    sink: Arc<Sink>,
}

impl Tracker {
    /// True when option `o` is on.
    pub fn has(&self, o: u8) -> bool {
        self.opts & o != 0
    }

    /// Whether a read now remembers its keys, given whether CLIENT CACHING came right
    /// before it.
    pub fn remembers(&self, caching: bool) -> bool {
        remembers(self.opts, caching)
    }

    /// A redirect target was found gone.
    pub fn broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }
}

/// Whether a read remembers its keys under options `o`, `caching` telling whether
/// CLIENT CACHING came right before it (yes under OPTIN, no under OPTOUT).
fn remembers(o: u8, caching: bool) -> bool {
    if o & opts::BCAST != 0 {
        false
    } else if o & opts::OPTIN != 0 {
        caching
    } else if o & opts::OPTOUT != 0 {
        !caching
    } else {
        true
    }
}

/// A remembered key, inline up to 24 bytes.
type KeyBuf = SmallVec<[u8; 24]>;

/// What the apply hook queued for [`Tracking::deliver`].
#[derive(Debug)]
enum Event {
    /// A written key and the client that wrote it (0: none).
    Key(Bytes, u64),
    /// FLUSHALL or FLUSHDB: everything.
    Flush,
}

#[derive(Debug, Default)]
struct Table {
    /// Remembered keys and the clients that read them. foldhash, randomly seeded per
    /// process: std's SipHash was a large share of a tracked read's cost. Keys of up to
    /// 24 bytes sit in the table itself: a look-up compares them without a second miss.
    keys: HashMap<KeyBuf, SmallVec<[u64; 2]>, foldhash::fast::RandomState>,
    /// Client ids across `keys`.
    items: usize,
    /// Tracking clients.
    clients: HashMap<u64, Arc<Tracker>>,
    /// BCAST prefixes and their clients.
    prefixes: BTreeMap<Bytes, Vec<u64>>,
}

/// Where messages go: the client registry (redirect targets) and the pub/sub output
/// limit that every push queue counts against.
pub struct Outlet<'a> {
    /// Connected clients.
    pub clients: &'a ClientRegistry,
    /// The push queues' registry.
    pub pubsub: &'a PubSub,
}

/// The server-wide tracking state.
#[derive(Debug)]
pub struct Tracking {
    /// 1 while a client tracks or a key is remembered, else 0, when the apply hook
    /// does nothing.
    /// Keys outlive their clients' tracking (as in Redis), and a write or a flush still
    /// forgets them.
    active: AtomicUsize,
    table: Mutex<Table>,
    pending: Mutex<Vec<Event>>,
    has_pending: AtomicBool,
    max_keys: AtomicU64,
    /// Deliveries so far, counted under the table's lock (see
    /// [`Tracking::remember_after`]).
    generation: AtomicU64,
}

impl Default for Tracking {
    fn default() -> Self {
        Tracking {
            active: AtomicUsize::new(0),
            table: Mutex::default(),
            pending: Mutex::default(),
            has_pending: AtomicBool::new(false),
            max_keys: AtomicU64::new(DEFAULT_MAX_KEYS),
            generation: AtomicU64::new(0),
        }
    }
}

/// Figures for INFO.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrackingStats {
    /// Tracking clients.
    pub clients: usize,
    /// Remembered keys.
    pub keys: usize,
    /// Client ids across the remembered keys.
    pub items: usize,
    /// BCAST prefixes.
    pub prefixes: usize,
}

impl Tracking {
    /// Turns tracking on (or changes it) for client `id`; BCAST prefixes add to those it
    /// has. The options must have been checked ([`check_prefixes`] and the callers'
    /// mode rules).
    pub fn enable(
        &self,
        id: u64,
        sink: &Arc<Sink>,
        redirect: u64,
        opts: u8,
        prefixes: &[Bytes],
    ) -> Arc<Tracker> {
        let mut t = self.table.lock();
        let mut all: Vec<Bytes> = Vec::new();
        if opts & opts::BCAST != 0 {
            if let Some(old) = t.clients.get(&id) {
                all.extend(old.prefixes.iter().cloned());
            }
            if prefixes.is_empty() && all.is_empty() {
                all.push(Bytes::new());
            }
            for p in prefixes {
                if !all.contains(p) {
                    all.push(p.clone());
                }
            }
            // In order, as Redis lists them (CLIENT TRACKINGINFO).
            all.sort();
            for p in &all {
                let ids = t.prefixes.entry(p.clone()).or_default();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        let tracker = Arc::new(Tracker {
            id,
            redirect,
            opts,
            prefixes: all,
            broken: AtomicBool::new(false),
            sink: Arc::clone(sink),
        });
        t.clients.insert(id, Arc::clone(&tracker));
        self.note_active(&t);
        tracker
    }

    /// Turns tracking off for `tracker`'s client (CLIENT TRACKING off, RESET, a closed
    /// connection). Its remembered keys stay until written or evicted, as in Redis;
    /// nothing is sent for them.
    pub fn disable(&self, tracker: &Tracker) {
        let mut t = self.table.lock();
        for p in &tracker.prefixes {
            if let Some(ids) = t.prefixes.get_mut(p) {
                ids.retain(|i| *i != tracker.id);
                if ids.is_empty() {
                    t.prefixes.remove(p);
                }
            }
        }
        t.clients.remove(&tracker.id);
        self.note_active(&t);
    }

    /// Stores what the apply hook's fast path reads, sequentially consistent with its
    /// load (see [`Tracking::on_applied`]), when it changes: a sequentially consistent
    /// store is a full barrier, which every tracked read paid.
    fn note_active(&self, t: &Table) {
        let now = usize::from(!t.clients.is_empty() || !t.keys.is_empty());
        if self.active.load(Ordering::Relaxed) != now {
            self.active.store(now, Ordering::SeqCst);
        }
    }

    /// Remembers that `tracker`'s client read `keys`, then keeps the table within its
    /// bound. Called before the read, so that a write the read does not see sends its
    /// invalidation (see the module's notes).
    pub fn remember<'k>(
        &self,
        tracker: &Tracker,
        keys: impl Iterator<Item = &'k [u8]>,
        out: &Outlet<'_>,
    ) {
        let mut t = self.table.lock();
        add_keys(&mut t, tracker.id, keys);
        self.bound(&mut t, out);
        self.note_active(&t);
    }

    /// CONFIG SET tracking-table-max-keys: applies at once.
    pub fn set_max_keys(&self, n: u64, out: &Outlet<'_>) {
        self.max_keys.store(n, Ordering::Relaxed);
        let mut t = self.table.lock();
        self.bound(&mut t, out);
        self.note_active(&t);
    }

    /// The current `tracking-table-max-keys`.
    pub fn max_keys(&self) -> u64 {
        self.max_keys.load(Ordering::Relaxed)
    }

    /// Forgets keys past the bound, sending their clients an invalidation (Redis picks
    /// them at random; here the table's order, which is as arbitrary).
    fn bound(&self, t: &mut Table, out: &Outlet<'_>) {
        let max = usize::try_from(self.max_keys()).unwrap_or(usize::MAX);
        if max == 0 || t.keys.len() <= max {
            return;
        }
        let excess = t.keys.len() - max;
        let victims: Vec<KeyBuf> = t.keys.keys().take(excess).cloned().collect();
        for k in victims {
            invalidate_key(t, &k, 0, out);
        }
    }

    /// The apply hook: queues the keys `applied` wrote, by client `origin`, for
    /// [`Tracking::deliver`]. Nothing while no client tracks and no key is remembered:
    /// one atomic load, inlined into the hook (a call to the whole function was ~30
    /// instructions of every write, 0.8% of a pipelined SET's).
    #[inline(always)]
    pub fn on_applied(&self, op: &Op, applied: &Applied, origin: u64) {
        // Sequentially consistent with the stores of `note_active`; a write that reads 0
        // here is in storage before `enable`'s caller returns (it waits for the round).
        if self.active.load(Ordering::SeqCst) != 0 {
            self.queue(op, applied, origin);
        }
    }

    #[inline(never)]
    fn queue(&self, op: &Op, applied: &Applied, origin: u64) {
        if origin != 0 {
            self.remember_script_reads(applied, origin);
        }
        let flush = flushes(op);
        if !flush && applied.touched.is_empty() {
            return;
        }
        let mut p = self.pending.lock();
        if flush {
            p.push(Event::Flush);
        } else {
            p.extend(
                applied
                    .touched
                    .iter()
                    .map(|(_, k)| Event::Key(Bytes::copy_from_slice(k), origin)),
            );
        }
        self.has_pending.store(true, Ordering::Release);
    }

    /// Remembers the keys a script of client `origin` read (EVAL, in the funnel, so
    /// that no later write is missed). CLIENT CACHING is the connection's: under OPTIN
    /// a script's reads are not remembered, under OPTOUT they are.
    fn remember_script_reads(&self, applied: &Applied, origin: u64) {
        let mut reads = applied
            .events
            .iter()
            .filter(|e| e.class == keel_engine::exec::SCRIPT_READ)
            .peekable();
        if reads.peek().is_none() {
            return;
        }
        let mut t = self.table.lock();
        if !t.clients.get(&origin).is_some_and(|tr| tr.remembers(false)) {
            return;
        }
        add_keys(&mut t, origin, reads.map(|e| &e.key[..]));
        self.note_active(&t);
        // Kept within its bound by the next delivery, which can send messages.
        self.has_pending.store(true, Ordering::Release);
    }

    /// The delivery count, for [`Tracking::remember_after`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Remembers `keys` that `tracker`'s client read *before* registering them (a
    /// read-only script's reads, known only once it ran): when a delivery happened
    /// since `before` (its [`Tracking::generation`] taken ahead of the read), a write
    /// the read did not see may have found the keys unregistered, so the client is
    /// told they changed.
    pub fn remember_after(&self, tracker: &Tracker, keys: &[Bytes], before: u64, out: &Outlet<'_>) {
        if keys.is_empty() {
            return;
        }
        let mut t = self.table.lock();
        add_keys(&mut t, tracker.id, keys.iter().map(|k| &k[..]));
        // Read under the lock that deliveries count under: a delivery that ran before
        // this registration has been counted.
        if self.generation.load(Ordering::Acquire) != before {
            let names = keys.iter().cloned().map(Reply::Bulk).collect();
            send(tracker, Reply::Array(names), out);
        }
        self.bound(&mut t, out);
        self.note_active(&t);
    }

    /// Writes are queued for [`Tracking::deliver`].
    pub fn has_pending(&self) -> bool {
        self.has_pending.load(Ordering::Acquire)
    }

    /// Sends the invalidations of the writes queued since the last call; run after
    /// they reach storage.
    pub fn deliver(&self, out: &Outlet<'_>) {
        if !self.has_pending.swap(false, Ordering::AcqRel) {
            return;
        }
        let events = std::mem::take(&mut *self.pending.lock());
        let mut t = self.table.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        // Broadcast keys per prefix, each with the last client that wrote it (NOLOOP),
        // in key order, sent as one message per prefix and client.
        let mut bcast: BTreeMap<Bytes, BTreeMap<Bytes, u64>> = BTreeMap::new();
        for ev in events {
            match ev {
                Event::Key(k, origin) => {
                    for p in t.prefixes.keys().filter(|p| k.starts_with(p)) {
                        bcast
                            .entry(p.clone())
                            .or_default()
                            .insert(k.clone(), origin);
                    }
                    invalidate_key(&mut t, &k, origin, out);
                }
                Event::Flush => {
                    send_broadcasts(&t, std::mem::take(&mut bcast), out);
                    for tr in t.clients.values() {
                        send(tr, Reply::Nil, out);
                    }
                    t.keys.clear();
                    t.items = 0;
                }
            }
        }
        send_broadcasts(&t, bcast, out);
        self.bound(&mut t, out);
        self.note_active(&t);
    }

    /// Client `id`'s settings while it tracks (CLIENT LIST).
    pub fn tracker(&self, id: u64) -> Option<Arc<Tracker>> {
        self.table.lock().clients.get(&id).cloned()
    }

    /// INFO's figures.
    pub fn stats(&self) -> TrackingStats {
        let t = self.table.lock();
        TrackingStats {
            clients: t.clients.len(),
            keys: t.keys.len(),
            items: t.items,
            prefixes: t.prefixes.len(),
        }
    }
}

/// Remembers that client `id` read `keys`.
fn add_keys<'k>(t: &mut Table, id: u64, keys: impl Iterator<Item = &'k [u8]>) {
    for k in keys {
        let added = match t.keys.get_mut(k) {
            Some(ids) if ids.contains(&id) => false,
            Some(ids) => {
                ids.push(id);
                true
            }
            None => {
                t.keys
                    .insert(KeyBuf::from_slice(k), SmallVec::from_elem(id, 1));
                true
            }
        };
        t.items += usize::from(added);
    }
}

/// True when `op` runs FLUSHALL or FLUSHDB.
fn flushes(op: &Op) -> bool {
    let is_flush = |args: &[Bytes]| {
        args.first().is_some_and(|n| {
            n.eq_ignore_ascii_case(b"FLUSHALL") || n.eq_ignore_ascii_case(b"FLUSHDB")
        })
    };
    match op {
        Op::Command { args, .. } => is_flush(args),
        Op::Multi { cmds } => cmds.iter().any(|(_, args)| is_flush(args)),
        Op::AsUser { op, .. } => flushes(op),
        _ => false,
    }
}

/// Forgets `key` and tells the clients that read it in default mode, but for `origin`
/// when it asked for NOLOOP.
fn invalidate_key(t: &mut Table, key: &[u8], origin: u64, out: &Outlet<'_>) {
    let Some(ids) = t.keys.remove(key) else {
        return;
    };
    t.items -= ids.len();
    let name = Bytes::copy_from_slice(key);
    for id in ids {
        let Some(tr) = t.clients.get(&id) else {
            continue;
        };
        // A client that switched to BCAST gets nothing for what it read before.
        if tr.has(opts::BCAST) || (tr.has(opts::NOLOOP) && id == origin) {
            continue;
        }
        send(tr, Reply::Array(vec![Reply::Bulk(name.clone())]), out);
    }
}

/// Sends each prefix's keys to its clients (a NOLOOP client without its own writes).
fn send_broadcasts(t: &Table, bcast: BTreeMap<Bytes, BTreeMap<Bytes, u64>>, out: &Outlet<'_>) {
    for (prefix, keys) in bcast {
        let Some(ids) = t.prefixes.get(&prefix) else {
            continue;
        };
        for tr in ids.iter().filter_map(|id| t.clients.get(id)) {
            let noloop = tr.has(opts::NOLOOP);
            let names: Vec<Reply> = keys
                .iter()
                .filter(|(_, origin)| !noloop || **origin != tr.id)
                .map(|(k, _)| Reply::Bulk(k.clone()))
                .collect();
            if !names.is_empty() {
                send(tr, Reply::Array(names), out);
            }
        }
    }
}

/// Sends `tr`'s client the invalidation of `keys` (an array, or Nil for everything):
/// to its redirect target if it has one, else to itself when it speaks RESP3.
fn send(tr: &Tracker, keys: Reply, out: &Outlet<'_>) {
    if tr.redirect == 0 {
        if tr.sink.resp3() {
            out.pubsub.push_reply(
                &tr.sink,
                &Reply::Push(vec![Reply::bulk("invalidate"), keys]),
            );
        }
        return;
    }
    let target = out
        .clients
        .get(tr.redirect)
        .and_then(|h| h.pushes.get().and_then(std::sync::Weak::upgrade))
        .filter(|s| !s.is_closed());
    let Some(target) = target else {
        tr.broken.store(true, Ordering::Relaxed);
        if tr.sink.resp3() {
            let id = i64::try_from(tr.redirect).unwrap_or(i64::MAX);
            out.pubsub.push_reply(
                &tr.sink,
                &Reply::Push(vec![Reply::bulk("tracking-redir-broken"), Reply::Int(id)]),
            );
        }
        return;
    };
    let msg = if target.resp3() {
        Reply::Push(vec![Reply::bulk("invalidate"), keys])
    } else if target.subscribed() {
        Reply::Push(vec![Reply::bulk("message"), Reply::bulk(CHANNEL), keys])
    } else {
        // RESP2 has no pushes outside subscribe mode: nothing can be sent.
        return;
    };
    out.pubsub.push_reply(&target, &msg);
}

/// Checks BCAST `new` prefixes against each other and the client's `existing` ones;
/// Redis's error when two overlap (one is a prefix of the other).
pub fn check_prefixes(existing: &[Bytes], new: &[Bytes]) -> Result<(), String> {
    let overlap = |a: &[u8], b: &[u8]| {
        let n = a.len().min(b.len());
        a[..n] == b[..n]
    };
    let show = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    for (i, p) in new.iter().enumerate() {
        if let Some(e) = existing.iter().find(|e| overlap(e, p)) {
            return Err(format!(
                "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                show(p),
                show(e)
            ));
        }
        if let Some(q) = new[i + 1..].iter().find(|q| overlap(p, q)) {
            return Err(format!(
                "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                show(p),
                show(q)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn overlapping_prefixes_are_refused_with_redis_texts() {
        assert!(check_prefixes(&[], &[b("a:"), b("b:")]).is_ok());
        let e = check_prefixes(&[], &[b("FOOBAR"), b("FOO")]).unwrap_err();
        assert!(e.starts_with("ERR Prefix 'FOOBAR' overlaps with another provided prefix 'FOO'"));
        let e = check_prefixes(&[b("FOO"), b("BAR")], &[b("FO")]).unwrap_err();
        assert!(e.starts_with("ERR Prefix 'FO' overlaps with an existing prefix 'FOO'"));
        let e = check_prefixes(&[b("FOO"), b("BAR")], &[b("BARB")]).unwrap_err();
        assert!(e.starts_with("ERR Prefix 'BARB' overlaps with an existing prefix 'BAR'"));
        // The empty prefix overlaps every other.
        assert!(check_prefixes(&[b("")], &[b("x")]).is_err());
    }

    #[test]
    fn flushes_are_found_in_commands_and_transactions() {
        let cmd = |n: &str| Op::Command {
            db: 0,
            args: vec![b(n)],
        };
        assert!(flushes(&cmd("flushall")));
        assert!(flushes(&cmd("FLUSHDB")));
        assert!(!flushes(&cmd("DEL")));
        assert!(flushes(&Op::Multi {
            cmds: vec![(0, vec![b("SET"), b("k"), b("v")]), (0, vec![b("FlushDb")])]
        }));
        assert!(!flushes(&Op::Multi {
            cmds: vec![(0, vec![b("SET"), b("k"), b("v")])]
        }));
    }

    #[test]
    fn reads_are_remembered_per_caching_mode() {
        let modes = |o: u8| [false, true].map(|caching| remembers(o, caching));
        assert_eq!(modes(0), [true, true]);
        assert_eq!(modes(opts::OPTIN), [false, true]);
        assert_eq!(modes(opts::OPTOUT), [true, false]);
        assert_eq!(modes(opts::BCAST), [false, false]);
        assert_eq!(modes(opts::NOLOOP), [true, true]);
    }
}
