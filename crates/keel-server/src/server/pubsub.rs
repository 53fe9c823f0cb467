//! Pub/sub delivery: the shared registry of channel, pattern and shard-channel
//! subscribers and MONITOR clients ([`PubSub`]), each client's outgoing push queue ([`Sink`]) with Redis's
//! pubsub output-buffer limit, keyspace notifications, and the MONITOR feed.
//!
//! Every connection owns a bounded queue of encoded frames ([`ClientPubSub`]); publishers
//! only ever `try_send` into it, so a client that stops reading can never block a
//! publisher. The bytes queued and not yet written are counted: past the hard limit, or
//! past the soft limit for longer than its duration, the client is disconnected.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use keel_engine::exec::KeyEvent;
use keel_engine::glob::glob_match;
use keel_engine::Reply;
use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;

use super::client::ClientHandle;
use crate::config::OutputLimit;
use crate::resp::{encode, Protocol};

/// Frames a client's push queue holds before it counts as hopelessly behind.
const PUSH_QUEUE_FRAMES: usize = 1 << 16;

/// One client's outgoing push queue, shared with the registry.
#[derive(Debug)]
pub struct Sink {
    /// The client.
    pub handle: Arc<ClientHandle>,
    tx: mpsc::Sender<Bytes>,
    /// Bytes queued and not yet written to the socket.
    queued: AtomicU64,
    /// When the queue last went above the soft limit (None: below it).
    soft_since: Mutex<Option<Instant>>,
    /// The client speaks RESP3 (pushes are `>` frames).
    resp3: AtomicBool,
    /// Disconnected for its output buffer, or its connection is ending; nothing more is
    /// queued.
    closed: AtomicBool,
    /// Channels, patterns and shard channels subscribed (CLIENT LIST's `sub`, `psub`
    /// and `ssub`; a RESP2 redirect target of client-side caching gets its messages
    /// only while it has one).
    counts: [AtomicUsize; 3],
}

impl Sink {
    /// The client speaks RESP3.
    pub fn resp3(&self) -> bool {
        self.resp3.load(Ordering::Relaxed)
    }

    /// The client is subscribed to a channel, pattern or shard channel.
    pub fn subscribed(&self) -> bool {
        self.subscription_counts().iter().any(|n| *n > 0)
    }

    /// How many channels, patterns and shard channels the client is subscribed to.
    pub fn subscription_counts(&self) -> [usize; 3] {
        self.counts.each_ref().map(|c| c.load(Ordering::Relaxed))
    }

    /// Nothing more is queued: the client is disconnected or leaving.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// The connection is ending (QUIT, an error): later frames are dropped, and a
    /// client-side caching redirect to it counts as broken from now on.
    pub fn mark_leaving(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    fn protocol(&self) -> Protocol {
        if self.resp3.load(Ordering::Relaxed) {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        }
    }

    /// Queues `frame`; disconnects the client when its output buffer limit is passed.
    fn push(&self, frame: Bytes, limit: OutputLimit) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        let len = frame.len() as u64;
        let queued = self.queued.fetch_add(len, Ordering::AcqRel) + len;
        let over = if limit.hard > 0 && queued > limit.hard {
            Some("hard")
        } else if limit.soft > 0 && queued > limit.soft {
            let mut since = self.soft_since.lock();
            let start = *since.get_or_insert_with(Instant::now);
            (start.elapsed() >= Duration::from_secs(limit.soft_secs)).then_some("soft")
        } else {
            if limit.soft > 0 {
                *self.soft_since.lock() = None;
            }
            None
        };
        if let Some(which) = over {
            self.close(queued, which);
            return;
        }
        if self.tx.try_send(frame).is_err() {
            self.close(queued, "queue");
        }
    }

    fn close(&self, queued: u64, which: &str) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(
            id = self.handle.id,
            addr = %self.handle.addr,
            queued,
            limit = which,
            "client scheduled to be closed ASAP for overcoming of output buffer limits (pubsub)"
        );
        self.handle.kill.notify_one();
    }

    /// The connection wrote `n` queued bytes to its socket.
    pub fn written(&self, n: u64) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
    }
}

/// A connection's pub/sub state (owned by its task).
#[derive(Debug)]
pub struct ClientPubSub {
    /// The push queue others write into.
    pub sink: Arc<Sink>,
    rx: Option<mpsc::Receiver<Bytes>>,
    /// Subscribed channels.
    pub channels: HashSet<Bytes>,
    /// Subscribed patterns.
    pub patterns: HashSet<Bytes>,
    /// Subscribed shard channels (SSUBSCRIBE), a namespace of their own.
    pub shard_channels: HashSet<Bytes>,
    /// In MONITOR mode.
    pub monitor: bool,
}

impl ClientPubSub {
    /// Fresh state for `handle`.
    pub fn new(handle: Arc<ClientHandle>) -> Self {
        let (tx, rx) = mpsc::channel(PUSH_QUEUE_FRAMES);
        let sink = Arc::new(Sink {
            handle: Arc::clone(&handle),
            tx,
            queued: AtomicU64::new(0),
            soft_since: Mutex::new(None),
            resp3: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            counts: Default::default(),
        });
        let _ = handle.pushes.set(Arc::downgrade(&sink));
        ClientPubSub {
            sink,
            rx: Some(rx),
            channels: HashSet::new(),
            patterns: HashSet::new(),
            shard_channels: HashSet::new(),
            monitor: false,
        }
    }

    /// The receiving end, taken once by the connection task.
    pub fn take_receiver(&mut self) -> Option<mpsc::Receiver<Bytes>> {
        self.rx.take()
    }

    /// Channels plus patterns (the count (p)subscribe replies carry).
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// Shard channels (the count ssubscribe and sunsubscribe replies carry).
    pub fn shard_count(&self) -> usize {
        self.shard_channels.len()
    }

    /// Subscribe mode (any channel, pattern or shard channel): RESP2 clients may then
    /// only run the subscribe-family commands.
    pub fn subscribed(&self) -> bool {
        self.count() + self.shard_count() > 0
    }

    /// Mirrors the subscription counts into the shared sink.
    fn note_mode(&self) {
        let counts = [
            self.channels.len(),
            self.patterns.len(),
            self.shard_channels.len(),
        ];
        for (slot, n) in self.sink.counts.iter().zip(counts) {
            slot.store(n, Ordering::Relaxed);
        }
    }

    /// Records the client's protocol for frames encoded by others.
    pub fn set_protocol(&self, p: Protocol) {
        self.sink
            .resp3
            .store(p == Protocol::Resp3, Ordering::Relaxed);
    }
}

type Subs = HashMap<Bytes, HashMap<u64, Arc<Sink>>>;

#[derive(Default)]
struct Registry {
    channels: Subs,
    patterns: Subs,
    shard: Subs,
    monitors: HashMap<u64, Arc<Sink>>,
}

/// notify-keyspace-events flag bits (Redis's letters).
pub mod notify {
    /// K: `__keyspace@<db>__` channel.
    pub const KEYSPACE: u32 = 1 << 0;
    /// E: `__keyevent@<db>__` channel.
    pub const KEYEVENT: u32 = 1 << 1;
    /// g.
    pub const GENERIC: u32 = 1 << 2;
    /// $.
    pub const STRING: u32 = 1 << 3;
    /// l.
    pub const LIST: u32 = 1 << 4;
    /// s.
    pub const SET: u32 = 1 << 5;
    /// h.
    pub const HASH: u32 = 1 << 6;
    /// z.
    pub const ZSET: u32 = 1 << 7;
    /// x.
    pub const EXPIRED: u32 = 1 << 8;
    /// e.
    pub const EVICTED: u32 = 1 << 9;
    /// t.
    pub const STREAM: u32 = 1 << 10;
    /// m.
    pub const KEY_MISS: u32 = 1 << 11;
    /// d.
    pub const MODULE: u32 = 1 << 12;
    /// n.
    pub const NEW: u32 = 1 << 13;
    /// A: every class but m and n.
    pub const ALL: u32 =
        GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

    const LETTERS: &[(char, u32)] = &[
        ('g', GENERIC),
        ('$', STRING),
        ('l', LIST),
        ('s', SET),
        ('h', HASH),
        ('z', ZSET),
        ('x', EXPIRED),
        ('e', EVICTED),
        ('t', STREAM),
        ('d', MODULE),
    ];

    /// Parses Redis's flag string; None on an unknown letter.
    pub fn parse(s: &str) -> Option<u32> {
        let mut f = 0;
        for c in s.chars() {
            f |= match c {
                'A' => ALL,
                'K' => KEYSPACE,
                'E' => KEYEVENT,
                'm' => KEY_MISS,
                'n' => NEW,
                c => LETTERS.iter().find(|(l, _)| *l == c)?.1,
            };
        }
        Some(f)
    }

    /// Renders flags as Redis prints them (CONFIG GET).
    pub fn render(f: u32) -> String {
        let mut s = String::new();
        if f & ALL == ALL {
            s.push('A');
        } else {
            for (c, bit) in LETTERS {
                if f & bit != 0 {
                    s.push(*c);
                }
            }
        }
        for (c, bit) in [
            ('K', KEYSPACE),
            ('E', KEYEVENT),
            ('m', KEY_MISS),
            ('n', NEW),
        ] {
            if f & bit != 0 {
                s.push(c);
            }
        }
        s
    }

    /// The flag of an engine event class letter.
    pub fn class_bit(class: char) -> u32 {
        match class {
            // Outside `A`, so not in LETTERS.
            'n' => NEW,
            'm' => KEY_MISS,
            _ => LETTERS
                .iter()
                .find(|(l, _)| *l == class)
                .map_or(0, |(_, b)| *b),
        }
    }
}

/// Whether notify-keyspace-events `flags` publish anything, i.e. whether the engine
/// should record keyspace events at all.
pub fn events_wanted(flags: u32) -> bool {
    flags & (notify::KEYSPACE | notify::KEYEVENT) != 0
}

/// The server-wide pub/sub registry.
pub struct PubSub {
    reg: RwLock<Registry>,
    limit: RwLock<OutputLimit>,
    notify_flags: AtomicU32,
    monitors: AtomicUsize,
}

impl PubSub {
    /// An empty registry with the pubsub output limit and notification flags.
    pub fn new(limit: OutputLimit, notify_flags: u32) -> Self {
        PubSub {
            reg: RwLock::new(Registry::default()),
            limit: RwLock::new(limit),
            notify_flags: AtomicU32::new(notify_flags),
            monitors: AtomicUsize::new(0),
        }
    }

    /// CONFIG SET client-output-buffer-limit.
    pub fn set_limit(&self, limit: OutputLimit) {
        *self.limit.write() = limit;
    }

    /// CONFIG SET notify-keyspace-events.
    pub fn set_notify_flags(&self, f: u32) {
        self.notify_flags.store(f, Ordering::Relaxed);
    }

    /// Current notify-keyspace-events flags.
    pub fn notify_flags(&self) -> u32 {
        self.notify_flags.load(Ordering::Relaxed)
    }

    /// SUBSCRIBE one channel; returns the client's new subscription count.
    pub fn subscribe(&self, c: &mut ClientPubSub, ch: &Bytes) -> usize {
        if c.channels.insert(ch.clone()) {
            self.reg
                .write()
                .channels
                .entry(ch.clone())
                .or_default()
                .insert(c.sink.handle.id, Arc::clone(&c.sink));
        }
        c.note_mode();
        c.count()
    }

    /// PSUBSCRIBE one pattern; returns the client's new subscription count.
    pub fn psubscribe(&self, c: &mut ClientPubSub, pat: &Bytes) -> usize {
        if c.patterns.insert(pat.clone()) {
            self.reg
                .write()
                .patterns
                .entry(pat.clone())
                .or_default()
                .insert(c.sink.handle.id, Arc::clone(&c.sink));
        }
        c.note_mode();
        c.count()
    }

    /// UNSUBSCRIBE one channel; returns the client's remaining count.
    pub fn unsubscribe(&self, c: &mut ClientPubSub, ch: &Bytes) -> usize {
        if c.channels.remove(ch) {
            Self::detach(&mut self.reg.write().channels, ch, c.sink.handle.id);
        }
        c.note_mode();
        c.count()
    }

    /// PUNSUBSCRIBE one pattern; returns the client's remaining count.
    pub fn punsubscribe(&self, c: &mut ClientPubSub, pat: &Bytes) -> usize {
        if c.patterns.remove(pat) {
            Self::detach(&mut self.reg.write().patterns, pat, c.sink.handle.id);
        }
        c.note_mode();
        c.count()
    }

    /// SSUBSCRIBE one shard channel; returns the client's new shard-channel count.
    pub fn ssubscribe(&self, c: &mut ClientPubSub, ch: &Bytes) -> usize {
        if c.shard_channels.insert(ch.clone()) {
            self.reg
                .write()
                .shard
                .entry(ch.clone())
                .or_default()
                .insert(c.sink.handle.id, Arc::clone(&c.sink));
        }
        c.note_mode();
        c.shard_count()
    }

    /// SUNSUBSCRIBE one shard channel; returns the client's remaining shard-channel
    /// count.
    pub fn sunsubscribe(&self, c: &mut ClientPubSub, ch: &Bytes) -> usize {
        if c.shard_channels.remove(ch) {
            Self::detach(&mut self.reg.write().shard, ch, c.sink.handle.id);
        }
        c.note_mode();
        c.shard_count()
    }

    /// The channels, the patterns and the shard channels client `id` subscribes to (ACL
    /// SETUSER checks them against the user's new rules).
    pub fn subscriptions_of(&self, id: u64) -> (Vec<Bytes>, Vec<Bytes>, Vec<Bytes>) {
        let reg = self.reg.read();
        let of = |m: &Subs| -> Vec<Bytes> {
            m.iter()
                .filter(|(_, subs)| subs.contains_key(&id))
                .map(|(name, _)| name.clone())
                .collect()
        };
        (of(&reg.channels), of(&reg.patterns), of(&reg.shard))
    }

    fn detach(map: &mut Subs, name: &Bytes, id: u64) {
        if let Some(m) = map.get_mut(name) {
            m.remove(&id);
            if m.is_empty() {
                map.remove(name);
            }
        }
    }

    /// Turns MONITOR on for the client.
    pub fn monitor(&self, c: &mut ClientPubSub) {
        if !c.monitor {
            c.monitor = true;
            self.reg
                .write()
                .monitors
                .insert(c.sink.handle.id, Arc::clone(&c.sink));
            self.monitors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Forgets every subscription and MONITOR of a closing (or RESET) client.
    pub fn drop_client(&self, c: &mut ClientPubSub) {
        if !c.subscribed() && !c.monitor {
            return;
        }
        let id = c.sink.handle.id;
        let mut reg = self.reg.write();
        for ch in c.channels.drain() {
            Self::detach(&mut reg.channels, &ch, id);
        }
        for p in c.patterns.drain() {
            Self::detach(&mut reg.patterns, &p, id);
        }
        for ch in c.shard_channels.drain() {
            Self::detach(&mut reg.shard, &ch, id);
        }
        if c.monitor {
            c.monitor = false;
            reg.monitors.remove(&id);
            self.monitors.fetch_sub(1, Ordering::Relaxed);
        }
        drop(reg);
        c.note_mode();
    }

    /// Queues `reply` as a push to `sink`'s client, encoded in its protocol, within the
    /// pubsub output limit.
    pub fn push_reply(&self, sink: &Sink, reply: &Reply) {
        let limit = *self.limit.read();
        let mut b = BytesMut::new();
        encode(reply, sink.protocol(), &mut b);
        sink.push(b.freeze(), limit);
    }

    /// PUBLISH: delivers to channel and pattern subscribers; returns how many received.
    pub fn publish(&self, channel: &[u8], payload: &[u8]) -> usize {
        let limit = *self.limit.read();
        let reg = self.reg.read();
        let mut n = 0;
        if let Some(subs) = reg.channels.get(channel) {
            let mut frames = Frames::new(Reply::Push(vec![
                Reply::bulk("message"),
                Reply::bulk(channel),
                Reply::bulk(payload),
            ]));
            for s in subs.values() {
                s.push(frames.get(s.protocol()), limit);
                n += 1;
            }
        }
        for (pat, subs) in &reg.patterns {
            if !glob_match(pat, channel) {
                continue;
            }
            let mut frames = Frames::new(Reply::Push(vec![
                Reply::bulk("pmessage"),
                Reply::Bulk(pat.clone()),
                Reply::bulk(channel),
                Reply::bulk(payload),
            ]));
            for s in subs.values() {
                s.push(frames.get(s.protocol()), limit);
                n += 1;
            }
        }
        n
    }

    /// SPUBLISH: delivers an `smessage` to the subscribers of shard channel `channel`
    /// (patterns and ordinary channels never see it); returns how many received.
    pub fn spublish(&self, channel: &[u8], payload: &[u8]) -> usize {
        let limit = *self.limit.read();
        let reg = self.reg.read();
        let Some(subs) = reg.shard.get(channel) else {
            return 0;
        };
        let mut frames = Frames::new(Reply::Push(vec![
            Reply::bulk("smessage"),
            Reply::bulk(channel),
            Reply::bulk(payload),
        ]));
        for s in subs.values() {
            s.push(frames.get(s.protocol()), limit);
        }
        subs.len()
    }

    fn names(map: &Subs, pattern: Option<&[u8]>) -> Vec<Bytes> {
        map.keys()
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c)))
            .cloned()
            .collect()
    }

    /// PUBSUB CHANNELS: active channels matching `pattern`.
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        Self::names(&self.reg.read().channels, pattern)
    }

    /// PUBSUB SHARDCHANNELS: active shard channels matching `pattern`.
    pub fn shard_channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        Self::names(&self.reg.read().shard, pattern)
    }

    /// PUBSUB NUMSUB for one channel.
    pub fn numsub(&self, ch: &[u8]) -> usize {
        self.reg.read().channels.get(ch).map_or(0, HashMap::len)
    }

    /// PUBSUB SHARDNUMSUB for one shard channel.
    pub fn shard_numsub(&self, ch: &[u8]) -> usize {
        self.reg.read().shard.get(ch).map_or(0, HashMap::len)
    }

    /// Distinct shard channels with a subscriber (INFO's `pubsubshard_channels`).
    pub fn shard_channel_count(&self) -> usize {
        self.reg.read().shard.len()
    }

    /// Channels with at least one subscriber (INFO's `pubsub_channels`).
    pub fn channel_count(&self) -> usize {
        self.reg.read().channels.len()
    }

    /// PUBSUB NUMPAT: distinct patterns subscribed.
    pub fn numpat(&self) -> usize {
        self.reg.read().patterns.len()
    }

    /// Publishes the keyspace notifications of one applied entry, and the messages its
    /// scripts published, in the order they were raised.
    pub fn keyspace_events(&self, events: &[KeyEvent]) {
        let flags = self.notify_flags();
        let wanted = events_wanted(flags);
        for ev in events {
            if ev.class == keel_engine::exec::PUBLISHED {
                self.publish(&ev.key, &ev.message);
                continue;
            }
            if !wanted || flags & notify::class_bit(ev.class) == 0 {
                continue;
            }
            if flags & notify::KEYSPACE != 0 {
                let mut ch = format!("__keyspace@{}__:", ev.db).into_bytes();
                ch.extend_from_slice(&ev.key);
                self.publish(&ch, ev.event.as_bytes());
            }
            if flags & notify::KEYEVENT != 0 {
                let ch = format!("__keyevent@{}__:{}", ev.db, ev.event);
                self.publish(ch.as_bytes(), &ev.key);
            }
        }
    }

    /// True when some client is in MONITOR mode (checked before formatting a line).
    pub fn has_monitors(&self) -> bool {
        self.monitors.load(Ordering::Relaxed) > 0
    }

    /// Sends one processed command to every MONITOR client.
    pub fn feed_monitors(&self, db: u8, addr: SocketAddr, args: &[Bytes]) {
        let line = monitor_line(db, addr, args);
        let limit = *self.limit.read();
        for s in self.reg.read().monitors.values() {
            s.push(line.clone(), limit);
        }
    }
}

/// Bytes of pushes moved into one socket write, at most.
const PUSH_BATCH: usize = 64 * 1024;

/// Appends `first` and whatever else is queued (up to a batch) to `out`; returns the
/// bytes appended.
pub fn drain_pushes(
    first: Bytes,
    rx: &mut Option<mpsc::Receiver<Bytes>>,
    out: &mut BytesMut,
) -> u64 {
    let mut n = first.len();
    out.extend_from_slice(&first);
    if let Some(rx) = rx {
        while n < PUSH_BATCH {
            match rx.try_recv() {
                Ok(f) => {
                    n += f.len();
                    out.extend_from_slice(&f);
                }
                Err(_) => break,
            }
        }
    }
    n as u64
}

/// One push reply encoded at most once per protocol.
struct Frames {
    reply: Reply,
    enc: [Option<Bytes>; 2],
}

impl Frames {
    fn new(reply: Reply) -> Self {
        Frames {
            reply,
            enc: [None, None],
        }
    }

    fn get(&mut self, p: Protocol) -> Bytes {
        let i = usize::from(p == Protocol::Resp3);
        let reply = &self.reply;
        self.enc
            .get_mut(i)
            .map(|slot| {
                slot.get_or_insert_with(|| {
                    let mut b = BytesMut::new();
                    encode(reply, p, &mut b);
                    b.freeze()
                })
                .clone()
            })
            .unwrap_or_default()
    }
}

/// Redis's MONITOR line: `+<secs>.<micros> [<db> <addr>] "cmd" "arg"...`, with the
/// secrets redacted ([`super::secrets`]).
pub fn monitor_line(db: u8, addr: SocketAddr, args: &[Bytes]) -> Bytes {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut s = format!(
        "+{}.{:06} [{} {}]",
        now.as_secs(),
        now.subsec_micros(),
        db,
        addr
    );
    let secrets = super::secrets::secrets(args);
    for (i, a) in args.iter().enumerate() {
        s.push(' ');
        if secrets.contains(i) {
            s.push('"');
            s.push_str(super::secrets::REDACTED);
            s.push('"');
        } else {
            repr(&mut s, a);
        }
    }
    s.push_str("\r\n");
    Bytes::from(s)
}

/// Quotes `b` as Redis's `sdscatrepr` does.
fn repr(out: &mut String, b: &[u8]) {
    out.push('"');
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            7 => out.push_str("\\a"),
            8 => out.push_str("\\b"),
            c if c.is_ascii_graphic() || c == b' ' => out.push(char::from(c)),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_flags_parse_and_render_like_redis() {
        assert_eq!(
            notify::parse("KEA").map(notify::render).as_deref(),
            Some("AKE")
        );
        assert_eq!(
            notify::parse("Kg$").map(notify::render).as_deref(),
            Some("g$K")
        );
        assert_eq!(notify::parse("").map(notify::render).as_deref(), Some(""));
        assert_eq!(notify::parse("Kq"), None);
    }

    #[test]
    fn monitor_line_quotes_and_redacts() {
        let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap_or_else(|_| unreachable!());
        let args = |v: &[&str]| {
            v.iter()
                .map(|s| Bytes::from(s.to_string()))
                .collect::<Vec<_>>()
        };
        let l = monitor_line(3, addr, &args(&["set", "k", "a\"b\n"]));
        let text = String::from_utf8_lossy(&l);
        assert!(
            text.ends_with(" [3 127.0.0.1:5000] \"set\" \"k\" \"a\\\"b\\n\"\r\n"),
            "{text}"
        );
        let l = monitor_line(0, addr, &args(&["auth", "secret"]));
        assert!(String::from_utf8_lossy(&l).ends_with("\"auth\" \"(redacted)\"\r\n"));
        let l = monitor_line(0, addr, &args(&["hello", "3", "AUTH", "u", "p"]));
        assert!(String::from_utf8_lossy(&l)
            .ends_with("\"hello\" \"3\" \"AUTH\" \"(redacted)\" \"(redacted)\"\r\n"));
    }
}
