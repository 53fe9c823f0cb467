//! The context a command runs in: where it reads, where it writes, which database, what
//! time it is, and the metadata helpers every type module shares.

use bytes::Bytes;
use keel_storage::{Direction, KvPair, ScanRange, ValueRef};

use crate::ctx::DetRng;
use crate::cursor::CursorTable;
use crate::error::{fail, CmdResult, Result};
use crate::keys;
use crate::kv::{KvRead, LatestReader, PairIter, SnapshotReader, WriteTx};
use crate::meta::{Body, KeyType, Meta};
use crate::reply::{errors, BulkList};

/// Where a command's reads and writes go.
pub enum Access<'a> {
    /// A read-only command on a snapshot.
    Read(SnapshotReader),
    /// A read-only command making one point read, on the latest state.
    Latest(LatestReader<'a>),
    /// A command inside the apply loop, buffering into its group's batch (borrowed from
    /// the group: moving the transaction in and out of every entry's context was a
    /// few hundred bytes of copies per write).
    Write(&'a mut WriteTx),
}

/// One keyspace event raised by a write (Redis's notify-keyspace-events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEvent {
    /// Database of the key.
    pub db: u8,
    /// Event name as Redis publishes it (`set`, `del`, `expired`, …).
    pub event: &'static str,
    /// The key.
    pub key: Bytes,
    /// Redis's class letter: `g` generic, `$` string, `l` list, `s` set, `h` hash,
    /// `z` zset, `x` expired, `e` evicted; or [`PUBLISHED`].
    pub class: char,
    /// The message of a script's PUBLISH to channel `key` (class [`PUBLISHED`]); empty
    /// for a keyspace event.
    pub message: Bytes,
}

/// The class of a [`KeyEvent`] that is a script's PUBLISH, not a keyspace event: it is
/// delivered after the entry is stored, in order with the keyspace events, whatever
/// notify-keyspace-events says.
pub const PUBLISHED: char = 'P';

/// The class of a [`KeyEvent`] that names a key a read-only command inside a script
/// read (client-side caching remembers it for the client that ran the script); never
/// published.
pub const SCRIPT_READ: char = 'R';

/// The class of a [`KeyEvent`] that is a call a script's gate refused (see
/// [`crate::gate`]): `event` is the gate's reason, `key` what it refused; the front-end
/// logs it for the client that ran the script. Never published.
pub const REFUSED_CALL: char = '!';

/// A key an entry changed, inline when short (most are), so that recording it allocates
/// nothing: a slice of the metadata key allocated a shared header on every write.
pub type TouchedKey = smallvec::SmallVec<[u8; 24]>;

/// Keys an entry changed, as (db, key): most entries change one, kept inline.
pub type Touched = smallvec::SmallVec<[(u8, TouchedKey); 1]>;

/// Room [`Exec::touch_in`] adds when the touched keys outgrow their inline slot.
const TOUCHED_SPILL: usize = 15;

/// The execution context of one command. It borrows the engine's shared tables rather
/// than holding `Arc`s: a read on every runtime thread cloning and dropping the same
/// reference counts made those counters' cache lines travel between cores per command.
pub struct Exec<'a> {
    access: Access<'a>,
    /// The selected database.
    pub db: u8,
    /// Current time in ms: the leader's stamp in apply, the local clock for reads.
    pub now_ms: u64,
    seq: u64,
    version_ctr: u64,
    /// Deterministic randomness (seeded by the log entry in apply).
    pub rng: DetRng,
    /// Keys this entry modified, as (db, key), for WATCH and notifications.
    pub touched: Touched,
    /// Keys a read found expired, as (db, key): the server deletes them through the log.
    pub expired: Vec<(u8, Bytes)>,
    /// Keyspace events this entry raised, for notify-keyspace-events.
    pub events: Vec<KeyEvent>,
    /// Whether `notify` records events (the apply path with notifications on).
    pub record_events: bool,
    /// SCAN-family cursors of this engine.
    pub cursors: &'a CursorTable,
    /// Access recency/frequency (OBJECT IDLETIME/FREQ), when the engine provides it.
    pub access_table: Option<&'a crate::eviction::AccessTable>,
    /// The check of each command a script runs, for a limited caller (see
    /// [`crate::gate`]).
    pub gate: Option<std::sync::Arc<dyn crate::gate::CallGate>>,
}

/// The class of a `del` event held back until the command ends (see
/// [`Exec::delete_emptied`]); never leaves the engine.
const EMPTIED: char = '\0';

impl<'a> Exec<'a> {
    /// A context over `access` for database `db` at time `now_ms`; `seq` is the log index
    /// (0 for reads) and seeds new collection versions, `seed` the generator.
    pub fn new(
        access: Access<'a>,
        db: u8,
        now_ms: u64,
        seq: u64,
        seed: u64,
        cursors: &'a CursorTable,
    ) -> Self {
        Exec {
            access,
            db,
            now_ms,
            seq,
            version_ctr: 0,
            rng: DetRng::new(seed),
            touched: Touched::new(),
            expired: Vec::new(),
            events: Vec::new(),
            record_events: true,
            cursors,
            access_table: None,
            gate: None,
        }
    }

    /// The context of a log entry applied through `tx` (database 0 until a command
    /// selects its own), with the engine's access table and events as `record_events`
    /// says. In one expression: made by `new` and then amended field by field at the
    /// caller, the 184-byte context was built in a temporary and copied into place, a
    /// `memcpy` per write.
    #[inline(always)]
    pub fn for_entry(
        tx: &'a mut WriteTx,
        ctx: &crate::ApplyCtx,
        cursors: &'a CursorTable,
        access_table: &'a crate::eviction::AccessTable,
        record_events: bool,
    ) -> Self {
        Exec {
            record_events,
            access_table: Some(access_table),
            ..Exec::new(Access::Write(tx), 0, ctx.now_ms, ctx.seq, ctx.seed, cursors)
        }
    }

    /// The log index of the entry being applied (0 on the read path).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// True inside the apply loop.
    pub fn is_write(&self) -> bool {
        matches!(self.access, Access::Write(_))
    }

    /// True when a point-read command read more than once from the latest state, so its
    /// answer must be computed again on a snapshot (see [`LatestReader`]).
    pub fn read_mixed(&self) -> bool {
        matches!(&self.access, Access::Latest(l) if l.mixed())
    }

    /// Mutable access to the write transaction, if any (MULTI undo scopes).
    pub fn tx_mut(&mut self) -> Option<&mut WriteTx> {
        match &mut self.access {
            Access::Write(tx) => Some(tx),
            Access::Read(_) | Access::Latest(_) => None,
        }
    }

    fn reader(&self) -> &dyn KvRead {
        match &self.access {
            Access::Read(r) => r,
            Access::Latest(l) => l,
            Access::Write(w) => &**w,
        }
    }

    /// Raw storage get.
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        self.reader().get(key)
    }

    /// Runs `f` on the value of `key` where it lies, copying nothing out; None if the
    /// key is absent.
    pub fn read_value<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        self.read_ref(key, |v| f(v.as_slice()))
    }

    /// [`Exec::read_value`] given the value as storage hands it over (lent or owned).
    fn read_ref<R>(&self, key: &[u8], f: impl FnOnce(ValueRef<'_>) -> R) -> Result<Option<R>> {
        let mut f = Some(f);
        let mut out = None;
        self.reader().read_with(key, &mut |v| {
            if let (Some(v), Some(f)) = (v, f.take()) {
                out = Some(f(v));
            }
        })?;
        Ok(out)
    }

    /// True if `key` holds a value; nothing is copied out.
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.read_value(key, |_| ())?.is_some())
    }

    /// Raw storage scan.
    pub fn scan(&self, range: ScanRange, dir: Direction) -> PairIter<'_> {
        self.reader().scan(range, dir)
    }

    /// The entry at position `n` of `range`, which holds `live` keys, without walking
    /// to it where storage can tell (see [`crate::kv::KvRead::entry_at`]).
    pub fn entry_at(&self, range: &ScanRange, live: u64, n: u64) -> Result<Option<KvPair>> {
        self.reader().entry_at(range, live, n)
    }

    /// How many entries of `range`, which holds `live` keys, lie in `within`, without
    /// walking them where storage can tell (see [`crate::kv::KvRead::count_within`]).
    pub fn count_within(
        &self,
        range: &ScanRange,
        live: u64,
        within: &ScanRange,
    ) -> Result<Option<u64>> {
        self.reader().count_within(range, live, within)
    }

    /// Raw storage scan of values only: the first `limit` of `range` in `dir` order, held
    /// back to back in one buffer.
    pub fn scan_values(&self, range: ScanRange, dir: Direction, limit: usize) -> Result<BulkList> {
        let mut out = BulkList::with_capacity(limit);
        self.reader()
            .visit_entries(range, dir, limit, &mut |_, v| out.push(v))?;
        Ok(out)
    }

    /// Lends `f` the key and value of each of the first `limit` entries of `range` in
    /// `dir` order, for a reader that copies out only what it keeps (see
    /// [`crate::kv::KvRead::visit_entries`]); an empty range visits nothing.
    pub fn visit_entries(
        &self,
        range: ScanRange,
        dir: Direction,
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<()> {
        if range.is_empty() {
            return Ok(());
        }
        self.reader().visit_entries(range, dir, limit, f)
    }

    fn tx(&mut self) -> CmdResult<&mut WriteTx> {
        match &mut self.access {
            Access::Write(tx) => Ok(tx),
            // A write reached the read path: a routing bug, reported, never applied.
            Access::Read(_) | Access::Latest(_) => fail("ERR write attempted on the read path"),
        }
    }

    /// Raw storage put.
    pub fn put(&mut self, key: Bytes, value: Bytes) -> CmdResult<()> {
        self.tx()?.put(key, value);
        Ok(())
    }

    /// Raw storage delete.
    pub fn delete(&mut self, key: Bytes) -> CmdResult<()> {
        self.tx()?.delete(key);
        Ok(())
    }

    /// Raw storage delete of every key starting with `prefix` (internal records: the
    /// script cache, function libraries).
    pub fn delete_prefixed(&mut self, prefix: &[u8]) -> CmdResult<()> {
        let mut doomed = Vec::new();
        for pair in self.scan(ScanRange::prefix(prefix), Direction::Forward) {
            doomed.push(pair?.0);
        }
        for key in doomed {
            self.delete(key)?;
        }
        Ok(())
    }

    /// Raw storage put of a key the transaction may hold already (its bytes are copied
    /// only if not): see `WriteTx::put_slice`.
    pub fn put_slice(&mut self, key: &[u8], value: Bytes) -> CmdResult<()> {
        self.tx()?.put_slice(key, value);
        Ok(())
    }

    /// Raw storage delete of a key given as a slice (see [`Exec::put_slice`]).
    pub fn delete_slice(&mut self, key: &[u8]) -> CmdResult<()> {
        self.tx()?.delete_slice(key);
        Ok(())
    }

    /// A fresh collection version, unique and larger than any earlier one: log index in
    /// the high bits, a per-entry counter in the low 20.
    pub fn new_version(&mut self) -> u64 {
        self.version_ctr += 1;
        (self.seq << 20) | (self.version_ctr & 0xF_FFFF)
    }

    /// Records that `key` of the current database changed.
    pub fn touch(&mut self, key: &[u8]) {
        self.touch_in(self.db, key);
    }

    /// Raises keyspace event `event` of class `class` (Redis's flag letter) on `key` of
    /// the current database.
    pub fn notify(&mut self, class: char, event: &'static str, key: &[u8]) {
        let db = self.db;
        self.notify_in(db, class, event, key);
    }

    /// Deletes `key`, whose collection the running command emptied, and holds back its
    /// `del` event until [`Exec::raise_emptied`] puts it after the command's own events,
    /// where Redis raises it. No state beyond the event list, so a server with
    /// notifications off pays nothing.
    pub fn delete_emptied(&mut self, key: &[u8], meta: &Meta) -> CmdResult<()> {
        self.delete_key(key, meta)?;
        let db = self.db;
        self.notify_in(db, EMPTIED, "del", key);
        Ok(())
    }

    /// Moves the held-back `del` events (see [`Exec::delete_emptied`]) after the others,
    /// in order, and releases them. Only the running command can have any: every
    /// command that succeeds ends with this.
    pub fn raise_emptied(&mut self) {
        if !self.events.iter().any(|e| e.class == EMPTIED) {
            return;
        }
        let (mut dels, rest): (Vec<KeyEvent>, Vec<KeyEvent>) = std::mem::take(&mut self.events)
            .into_iter()
            .partition(|e| e.class == EMPTIED);
        for d in &mut dels {
            d.class = 'g';
        }
        self.events = rest;
        self.events.append(&mut dels);
    }

    /// Withdraws the `new` event raised for `key` of the current database, for a key a
    /// command deleted and wrote again: to Redis that is an overwrite, not an addition.
    pub fn take_back_new(&mut self, key: &[u8]) {
        let db = self.db;
        if let Some(i) = self
            .events
            .iter()
            .rposition(|e| e.event == "new" && e.db == db && e.key[..] == *key)
        {
            self.events.remove(i);
        }
    }

    /// Raises keyspace event `event` on `key` of `db`; only the apply path keeps them.
    pub fn notify_in(&mut self, db: u8, class: char, event: &'static str, key: &[u8]) {
        if self.record_events && self.is_write() {
            self.events.push(KeyEvent {
                db,
                event,
                key: Bytes::copy_from_slice(key),
                class,
                message: Bytes::new(),
            });
        }
    }

    /// Records a PUBLISH of `message` to `channel` for delivery once the entry is
    /// stored (see [`PUBLISHED`]); only the apply path publishes.
    pub fn publish(&mut self, channel: Bytes, message: Bytes) {
        if self.is_write() {
            self.events.push(KeyEvent {
                db: self.db,
                event: "message",
                key: channel,
                class: PUBLISHED,
                message,
            });
        }
    }

    /// Records a call the script's gate refused (see [`REFUSED_CALL`]), on either path.
    pub fn note_refused_call(&mut self, refusal: &crate::gate::Refusal) {
        self.events.push(KeyEvent {
            db: self.db,
            event: refusal.reason,
            key: refusal.object.clone(),
            class: REFUSED_CALL,
            message: Bytes::new(),
        });
    }

    /// Records that a read-only command a script ran named `key` (see [`SCRIPT_READ`]).
    pub fn note_script_read(&mut self, key: Bytes) {
        self.events.push(KeyEvent {
            db: self.db,
            event: "read",
            key,
            class: SCRIPT_READ,
            message: Bytes::new(),
        });
    }

    /// Records that `key` of `db` changed.
    pub fn touch_in(&mut self, db: u8, key: &[u8]) {
        if self.touched.len() == self.touched.capacity() {
            // A multi-key write leaves the inline slot with room for 16 at once instead of
            // doubling from one (MSET of 10 keys: four reallocations, ~800 instructions).
            self.touched.reserve(self.touched.len().max(TOUCHED_SPILL));
        }
        self.touched.push((db, TouchedKey::from_slice(key)));
    }

    /// The live metadata of `key` in the current database (None if absent or expired).
    pub fn meta(&mut self, key: &[u8]) -> CmdResult<Option<Meta>> {
        self.meta_in(self.db, key)
    }

    /// [`Exec::meta`] with a string's body left empty, for a writer that replaces the
    /// value without looking at it (SET): the old value is not copied out.
    pub fn meta_head(&mut self, key: &[u8]) -> CmdResult<Option<Meta>> {
        Ok(self.meta_and(key, |_| ())?.map(|(m, ())| m))
    }

    /// [`Exec::meta`] with a string's body left empty, and `f`'s reading of that body
    /// where storage holds it (an empty body for a collection): INCR parses its number
    /// without copying the old value out.
    pub fn meta_and<T>(
        &mut self,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> T,
    ) -> CmdResult<Option<(Meta, T)>> {
        self.meta_read(self.db, key, |mk, raw| {
            let (meta, body) = Meta::decode_head(mk, raw.as_slice())?;
            Ok((meta, f(body)))
        })
    }

    /// The live metadata of `key` in `db`. An expired key counts as absent; in the apply
    /// loop it is deleted as part of this entry (deterministic: the time is the entry's).
    pub fn meta_in(&mut self, db: u8, key: &[u8]) -> CmdResult<Option<Meta>> {
        if !self.is_write() {
            // A read takes the engine's copy: GET's body is that copy advanced past the
            // header. Lending the record and copying the body out through the generic
            // path below cost GET -P 16 ~90 more instructions (2,484 -> 2,571).
            let mk = keys::meta_key_buf(db, key);
            let Some(raw) = self.get(&mk)? else {
                return Ok(None);
            };
            let meta = Meta::decode(&mk, raw)?;
            if meta.is_expired(self.now_ms) {
                self.drop_expired(db, key, &meta)?;
                return Ok(None);
            }
            return Ok(Some(meta));
        }
        let meta = self.meta_read(db, key, |mk, raw| Ok((Meta::decode_ref(mk, raw)?, ())))?;
        Ok(meta.map(|(m, ())| m))
    }

    /// [`Exec::meta_in`] with the record decoded by `decode` (given the storage key and
    /// the record), which may also read something of its own from the record.
    fn meta_read<T>(
        &mut self,
        db: u8,
        key: &[u8],
        decode: impl FnOnce(&[u8], ValueRef<'_>) -> Result<(Meta, T)>,
    ) -> CmdResult<Option<(Meta, T)>> {
        let mk = keys::meta_key_buf(db, key);
        // Decoded where storage or the write overlay holds the record: a collection's
        // header is read in place instead of copied or cloned out (HSET -P 16: one
        // allocation less per request), a replaced string's body not at all.
        let Some((meta, extra)) = self.read_ref(&mk, |raw| decode(&mk, raw))?.transpose()? else {
            return Ok(None);
        };
        if meta.is_expired(self.now_ms) {
            self.drop_expired(db, key, &meta)?;
            return Ok(None);
        }
        Ok(Some((meta, extra)))
    }

    /// Handles `key` of `db` found expired (`meta`): deleted in the apply loop, reported
    /// for deletion by a read.
    #[cold]
    fn drop_expired(&mut self, db: u8, key: &[u8], meta: &Meta) -> CmdResult<()> {
        if self.is_write() {
            self.delete_key_in(db, key, meta)?;
            self.notify_in(db, 'x', "expired", key);
        } else {
            self.expired.push((db, Bytes::copy_from_slice(key)));
        }
        Ok(())
    }

    /// Metadata of `key` that must be of `kind`: WRONGTYPE otherwise.
    pub fn typed(&mut self, key: &[u8], kind: KeyType) -> CmdResult<Option<Meta>> {
        match self.meta(key)? {
            Some(m) if m.kind != kind => fail(errors::WRONGTYPE),
            other => Ok(other),
        }
    }

    /// [`Exec::typed`], asking first for the metadata an earlier write of this group left
    /// held (see [`Exec::held_meta`]): for the commands flagged
    /// [`crate::command::flags::HOLDS_META`]. A held record has no expiry, so there is
    /// no expiry to check.
    #[inline(always)]
    pub fn typed_or_held(&mut self, key: &[u8], kind: KeyType) -> CmdResult<Option<Meta>> {
        match self.held_meta(key) {
            Some(m) if m.kind != kind => fail(errors::WRONGTYPE),
            Some(m) => Ok(Some(m)),
            None => self.typed(key, kind),
        }
    }

    /// Writes `meta` for `key` in the current database, keeping the expiry index in step
    /// with `old` (the metadata it replaces, if any).
    pub fn put_meta(&mut self, key: &[u8], meta: &Meta, old: Option<&Meta>) -> CmdResult<()> {
        self.put_meta_in(self.db, key, meta, old)
    }

    /// [`Exec::put_meta`] for database `db`.
    pub fn put_meta_in(
        &mut self,
        db: u8,
        key: &[u8],
        meta: &Meta,
        old: Option<&Meta>,
    ) -> CmdResult<()> {
        self.put_record_in(db, key, meta.expire_at, meta.version(), old, |tx, seq| {
            tx.put_meta_record(db, key, meta, seq)
        })
    }

    /// [`Exec::put_meta`] of the string `value` expiring at `expire_at`, from a borrowed
    /// value (see `Meta::encode_string_into`).
    pub fn put_string(
        &mut self,
        key: &[u8],
        value: &[u8],
        expire_at: Option<u64>,
        old: Option<&Meta>,
    ) -> CmdResult<()> {
        let db = self.db;
        self.put_record_in(db, key, expire_at, None, old, |tx, seq| {
            tx.put_string_record(db, key, expire_at, value, seq)
        })
    }

    /// Writes `key`'s metadata record in `db` with `write`, for metadata expiring at
    /// `expire_at` with collection `version` that replaces `old`: keeps the expiry
    /// index in step and queues a replaced collection's members for collection.
    fn put_record_in(
        &mut self,
        db: u8,
        key: &[u8],
        expire_at: Option<u64>,
        version: Option<u64>,
        old: Option<&Meta>,
        write: impl FnOnce(&mut WriteTx, u64),
    ) -> CmdResult<()> {
        let old_exp = old.and_then(|m| m.expire_at);
        if old_exp != expire_at {
            if let Some(at) = old_exp {
                self.delete(keys::expiry_key(db, at, key))?;
            }
            if let Some(at) = expire_at {
                self.put(keys::expiry_key(db, at, key), Bytes::new())?;
            }
        }
        if let (Some(o), Some(n)) = (old.and_then(Meta::version), version) {
            if o != n {
                // The collection was replaced under a new version: the old members are
                // orphans now, collected in the background.
                self.put(keys::gc_key(db, key, o), Bytes::new())?;
            }
        }
        let seq = self.seq;
        write(self.tx()?, seq);
        self.touch_in(db, key);
        if old.is_none() {
            // Redis raises `new` whenever a key is added to a database.
            self.notify_in(db, 'n', "new", key);
        }
        Ok(())
    }

    /// The metadata of `key` in the current database that an earlier write of this
    /// group left held (see [`WriteTx::hold`]); None on the read path.
    #[inline]
    pub fn held_meta(&self, key: &[u8]) -> Option<Meta> {
        match &self.access {
            Access::Write(tx) => tx.held(self.db, key).cloned(),
            Access::Read(_) | Access::Latest(_) => None,
        }
    }

    /// [`Exec::put_meta`], for a command flagged [`crate::command::flags::HOLDS_META`]
    /// whose new `meta` keeps `old`'s version and expiry: a key that was there before
    /// and has no expiry keeps its metadata held instead (see `Exec::hold_meta`), so
    /// that a held record never needs the expiry check.
    pub fn put_or_hold_meta(
        &mut self,
        key: &[u8],
        meta: Meta,
        old: Option<&Meta>,
    ) -> CmdResult<()> {
        match old {
            Some(o) if o.expire_at.is_none() => self.hold_meta(key, meta),
            _ => self.put_meta(key, &meta, old),
        }
    }

    /// Writes `meta` for `key` in the current database like [`Exec::put_meta`] does for
    /// a key that exists, with the same expiry and version, but keeps it held instead of
    /// encoding it (see [`WriteTx::hold`]). Only a command flagged
    /// [`crate::command::flags::HOLDS_META`] may leave metadata held.
    fn hold_meta(&mut self, key: &[u8], meta: Meta) -> CmdResult<()> {
        let (db, seq) = (self.db, self.seq);
        self.tx()?.hold(db, key, meta, seq);
        self.touch_in(db, key);
        Ok(())
    }

    /// Deletes `key` (described by `meta`) from the current database in O(1): the
    /// metadata goes, a collection's sub-keys are queued for background collection.
    pub fn delete_key(&mut self, key: &[u8], meta: &Meta) -> CmdResult<()> {
        self.delete_key_in(self.db, key, meta)
    }

    /// [`Exec::delete_key`] for database `db`.
    pub fn delete_key_in(&mut self, db: u8, key: &[u8], meta: &Meta) -> CmdResult<()> {
        if let Body::Collection { version, len, .. } = meta.body {
            // An empty stream still has sub-keys: its state, its groups.
            if len > 0 || meta.kind == crate::meta::KeyType::Stream {
                self.put(keys::gc_key(db, key, version), Bytes::new())?;
            }
        }
        self.forget_key_in(db, key, meta)
    }

    /// Removes `key`'s metadata and expiry-index entry from `db` without releasing its
    /// collection: the caller gave the collection (its version) to another key — RENAME,
    /// MOVE, SWAPDB — which is O(1) because sub-keys hang off the version alone.
    pub fn forget_key_in(&mut self, db: u8, key: &[u8], meta: &Meta) -> CmdResult<()> {
        if let Some(at) = meta.expire_at {
            self.delete(keys::expiry_key(db, at, key))?;
        }
        self.tx()?.delete_meta_record(db, key);
        self.touch_in(db, key);
        Ok(())
    }
}
