//! Damaged files: torn tails, flipped bytes, impossible lengths and bad hint files for
//! bitcask, and damaged checkpoints for the memory engine. (The lsm engine's files are
//! fjall's format; its own tests cover them.)
//!
//! Bitcask file layout these tests rely on (the engine's contract): the data directory
//! holds `LOCK`, segments `{id:010}.data` (ids from 1), hints `{id:010}.hint`, and
//! `merge/` only while merging. A data record is a 21-byte little-endian header
//! `crc32 u32 | seq u64 | flags u8 | klen u32 | vlen u32`, then key and value; the CRC
//! covers everything after the crc field; flags bit 0 = TOMBSTONE, bit 1 = BATCH_END (set
//! on the last record of each write batch).
//!
//! Memory checkpoint layout (`memory.snap`, see src/memory/checkpoint.rs): 20-byte header
//! (`KEELMEM1`, seq u64, crc u32), records `crc u32 | klen u32 | vlen u32 | key | value`,
//! and a 16-byte trailer `crc u32 | u32::MAX | count u64`.

mod common;

use std::path::{Path, PathBuf};

use keel_storage::{
    EngineKind, OpenOptions, Storage, StorageError, SyncPolicy, WriteBatch, WriteOptions,
};

use common::{copy_dir, dump, Model};

engine_tests!(only [bitcask => Bitcask]:
    torn_tail_at_every_offset_of_the_last_record,
    torn_multi_record_batch_is_dropped_whole,
    flipped_byte_mid_segment_is_corrupt_and_repairable,
    impossible_length_mid_segment_is_corrupt,
    bad_hint_files_fall_back_to_data,
    flipped_byte_in_hinted_sealed_segment_is_corrupt,
);

engine_tests!(only [memory => Memory]:
    checkpoint_flipped_byte_is_corrupt_and_repairable,
    checkpoint_truncated_is_corrupt_and_repairable,
);

// ---------------------------------------------------------------------------------------
// Bitcask layout.

const HEADER: usize = 21;
const TOMBSTONE: u8 = 1;
const BATCH_END: u8 = 2;

#[derive(Debug, Clone)]
struct Record {
    /// Offset of the record's first byte in its segment.
    off: u64,
    /// Header + key + value length.
    len: u64,
    flags: u8,
    key: Vec<u8>,
}

impl Record {
    fn end(&self) -> u64 {
        self.off + self.len
    }
    /// Offset of the first byte of the key inside the file.
    fn key_off(&self) -> u64 {
        self.off + HEADER as u64
    }
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Parses a whole segment, asserting it follows the layout contract.
fn parse_segment(path: &Path) -> Vec<Record> {
    let bytes = std::fs::read(path).expect("read segment");
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        assert!(
            at + HEADER <= bytes.len(),
            "{}: record header at {at} runs past the end; layout differs from the contract",
            path.display()
        );
        let crc = le_u32(&bytes, at);
        let flags = bytes[at + 12];
        let klen = le_u32(&bytes, at + 13) as usize;
        let vlen = le_u32(&bytes, at + 17) as usize;
        let end = at + HEADER + klen + vlen;
        assert!(
            end <= bytes.len(),
            "{}: record at {at} runs past the end; layout differs from the contract",
            path.display()
        );
        assert_eq!(
            crc32fast::hash(&bytes[at + 4..end]),
            crc,
            "{}: record at {at} fails its CRC; layout differs from the contract",
            path.display()
        );
        out.push(Record {
            off: at as u64,
            len: (end - at) as u64,
            flags,
            key: bytes[at + HEADER..at + HEADER + klen].to_vec(),
        });
        at = end;
    }
    out
}

/// Segments of `dir` in id order.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .expect("read data dir")
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".data")?;
            (id.len() == 10).then_some(())?;
            Some((id.parse().ok()?, e.path()))
        })
        .collect();
    segs.sort();
    segs.into_iter().map(|(_, p)| p).collect()
}

fn hint_files(dir: &Path) -> Vec<PathBuf> {
    let mut hints: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read data dir")
        .filter_map(|e| {
            let p = e.ok()?.path();
            p.extension().is_some_and(|x| x == "hint").then_some(p)
        })
        .collect();
    hints.sort();
    hints
}

/// Copies a data dir without hint files (so open must read the data files themselves).
fn copy_without_hints(from: &Path, to: &Path) {
    copy_dir(from, to, |name| name.ends_with(".hint"));
}

fn opts(max_segment_bytes: u64) -> OpenOptions {
    let mut o = common::test_options(EngineKind::Bitcask).sync_policy(SyncPolicy::Always);
    o.bitcask.max_segment_bytes = max_segment_bytes;
    o
}

fn single_put(store: &dyn Storage, model: &mut Model, k: &[u8], v: &[u8]) {
    let mut b = WriteBatch::new();
    b.put(k.to_vec(), v.to_vec());
    store.write(b, WriteOptions::SYNC).expect("write");
    model.insert(k.to_vec(), v.to_vec());
}

fn value_for(i: usize) -> Vec<u8> {
    format!("value-{i:04}-").repeat(1 + i % 4).into_bytes()
}

fn flip(path: &Path, off: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[off as usize] ^= 0x5a;
    std::fs::write(path, bytes).expect("write");
}

fn truncate(path: &Path, len: u64) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for truncate");
    f.set_len(len).expect("truncate");
}

fn expect_corrupt(
    res: keel_storage::Result<std::sync::Arc<dyn Storage>>,
    file: &Path,
    offset: u64,
    ctx: &str,
) {
    match res {
        Err(StorageError::Corrupt {
            path, offset: got, ..
        }) => {
            assert_eq!(
                path.file_name(),
                file.file_name(),
                "{ctx}: Corrupt names {} instead of {}",
                path.display(),
                file.display()
            );
            assert_eq!(got, offset, "{ctx}: Corrupt offset");
        }
        Err(e) => panic!("{ctx}: open failed with {e:?}, want Corrupt at {offset}"),
        Ok(s) => {
            let scan = common::collect(s.scan(
                keel_storage::ScanRange::all(),
                keel_storage::Direction::Forward,
            ));
            panic!(
                "{ctx}: open succeeded, want Corrupt at {offset}; a full scan then gives {:?}",
                scan.map(|v| v.len())
            )
        }
    }
}

// ---------------------------------------------------------------------------------------
// (a) torn tails.

fn torn_tail_at_every_offset_of_the_last_record(kind: EngineKind) {
    let _serial = common::serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let o = opts(4 * 1024);
    let store = common::open_with(&src, &o);
    let mut model = Model::new();
    for i in 0..150 {
        single_put(
            &*store,
            &mut model,
            format!("k{i:03}").as_bytes(),
            &value_for(i),
        );
    }
    let before_last = model.clone();
    single_put(&*store, &mut Model::new(), b"tail", &[0xee; 64]);
    store.close().expect("close");
    drop(store);

    let segs = segments(&src);
    assert!(
        segs.len() >= 2,
        "{kind}: expected several segments, got {segs:?}"
    );
    let last_seg = segs.last().expect("a segment").clone();
    let recs = parse_segment(&last_seg);
    let last = recs.last().expect("a record in the last segment").clone();
    assert_eq!(last.key, b"tail", "{kind}: last record of the last segment");
    assert_eq!(
        last.flags & BATCH_END,
        BATCH_END,
        "{kind}: single-record batch ends the batch"
    );
    let seg_name = last_seg.file_name().expect("name").to_owned();

    let failures: Vec<String> = (last.off..last.end())
        .filter_map(|cut| {
            let ctx = format!(
                "{kind}: last segment cut to {cut} (last record {}..{})",
                last.off,
                last.end()
            );
            let dir = tmp.path().join(format!("cut{cut}"));
            check_torn_cut(&src, &dir, &seg_name, cut, last.off, &before_last, &o)
                .err()
                .map(|e| format!("{ctx}: {e}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{kind}: {} of {} cuts failed:\n{}",
        failures.len(),
        last.len,
        failures.join("\n")
    );
}

/// Opens a copy of `src` (without hints) whose segment `seg_name` is cut to `cut` bytes,
/// where the last batch starts at `start`: it must hold exactly `want`, report the
/// dropped bytes, take a new write and keep it across a reopen.
fn check_torn_cut(
    src: &Path,
    dir: &Path,
    seg_name: &std::ffi::OsStr,
    cut: u64,
    start: u64,
    want: &Model,
    o: &OpenOptions,
) -> Result<(), String> {
    copy_without_hints(src, dir);
    truncate(&dir.join(seg_name), cut);
    let result = (|| {
        let store = keel_storage::open(dir, o).map_err(|e| format!("open: {e:?}"))?;
        if dump(&*store) != *want {
            return Err("contents are not exactly the batches before the torn one".into());
        }
        let torn = store.stats().torn_bytes_dropped;
        if torn != cut - start {
            return Err(format!("torn_bytes_dropped {torn}, want {}", cut - start));
        }
        let mut model = want.clone();
        single_put(&*store, &mut model, b"after", b"cut");
        store.close().map_err(|e| format!("close: {e:?}"))?;
        drop(store);
        let store =
            keel_storage::open(dir, o).map_err(|e| format!("reopen after a write: {e:?}"))?;
        if dump(&*store) != model {
            return Err("contents after write + reopen differ".into());
        }
        let torn = store.stats().torn_bytes_dropped;
        if torn != 0 {
            return Err(format!("second open dropped {torn} bytes"));
        }
        store.close().map_err(|e| format!("close: {e:?}"))
    })();
    std::fs::remove_dir_all(dir).map_err(|e| format!("cleanup: {e}"))?;
    result
}

fn torn_multi_record_batch_is_dropped_whole(kind: EngineKind) {
    let _serial = common::serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let o = opts(1 << 20);
    let store = common::open_with(&src, &o);
    let mut model = Model::new();
    for i in 0..10 {
        single_put(
            &*store,
            &mut model,
            format!("k{i:03}").as_bytes(),
            &value_for(i),
        );
    }
    let before = model.clone();
    let mut b = WriteBatch::new();
    b.put(&b"m0"[..], vec![1u8; 40]);
    b.delete(&b"k003"[..]);
    b.put(&b"m2"[..], vec![2u8; 40]);
    b.put(&b"k005"[..], vec![3u8; 40]);
    store.write(b, WriteOptions::SYNC).expect("write batch");
    store.close().expect("close");
    drop(store);

    let seg = segments(&src).pop().expect("a segment");
    let recs = parse_segment(&seg);
    assert!(recs.len() >= 4, "{kind}: records: {recs:?}");
    let batch = &recs[recs.len() - 4..];
    assert_eq!(
        batch[0].key, b"m0",
        "{kind}: batch records in order: {batch:?}"
    );
    for (i, r) in batch.iter().enumerate() {
        let want = if i == 3 { BATCH_END } else { 0 };
        assert_eq!(
            r.flags & BATCH_END,
            want,
            "{kind}: BATCH_END on record {i} of the batch"
        );
    }
    assert_eq!(
        batch[1].flags & TOMBSTONE,
        TOMBSTONE,
        "{kind}: delete is a tombstone"
    );
    let start = batch[0].off;
    let cuts = [
        start + 1,
        start + (batch[0].len / 2),
        batch[1].off,
        batch[1].off + 5,
        batch[2].off,
        batch[2].off + batch[2].len / 2,
        batch[3].off,
        batch[3].off + HEADER as u64,
        batch[3].end() - 1,
    ];
    let seg_name = seg.file_name().expect("name").to_owned();
    let failures: Vec<String> = cuts
        .iter()
        .filter_map(|&cut| {
            let ctx = format!("{kind}: batch {start}..{} cut at {cut}", batch[3].end());
            let dir = tmp.path().join(format!("cut{cut}"));
            check_torn_cut(&src, &dir, &seg_name, cut, start, &before, &o)
                .err()
                .map(|e| format!("{ctx}: {e}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{kind}: {} of {} cuts failed:\n{}",
        failures.len(),
        cuts.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// (b), (c) damage before the tail.

/// Writes 20 single-record batches into one segment and returns (dir, segment, records,
/// models[i] = contents after batches 0..i).
fn twenty_batches(tmp: &Path) -> (PathBuf, PathBuf, Vec<Record>, Vec<Model>) {
    let src = tmp.join("src");
    let store = common::open_with(&src, &opts(1 << 20));
    let mut model = Model::new();
    let mut models = vec![model.clone()];
    for i in 0..20 {
        single_put(
            &*store,
            &mut model,
            format!("k{i:03}").as_bytes(),
            &value_for(i),
        );
        models.push(model.clone());
    }
    store.close().expect("close");
    drop(store);
    let segs = segments(&src);
    assert_eq!(
        segs.len(),
        1,
        "one segment expected with 1 MiB segments: {segs:?}"
    );
    let recs = parse_segment(&segs[0]);
    assert_eq!(recs.len(), 20, "one record per batch");
    (src, segs[0].clone(), recs, models)
}

/// Damage in a sealed segment that has a hint file: the hint alone would let open skip
/// the data file, but the damaged value would then be served later; open must notice.
fn flipped_byte_in_hinted_sealed_segment_is_corrupt(kind: EngineKind) {
    let _serial = common::serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let o = opts(2 * 1024);
    let store = common::open_with(&src, &o);
    let mut model = Model::new();
    for i in 0..120 {
        single_put(
            &*store,
            &mut model,
            format!("k{i:03}").as_bytes(),
            &value_for(i),
        );
    }
    store.close().expect("close");
    drop(store);
    let segs = segments(&src);
    let hinted: Vec<&PathBuf> = segs
        .iter()
        .filter(|seg| seg.with_extension("hint").exists())
        .collect();
    let Some(seg) = hinted.first() else {
        panic!("{kind}: no sealed segment has a hint file after close: {segs:?}");
    };
    let recs = parse_segment(seg);
    let r = &recs[recs.len() / 2];
    let seg_name = seg.file_name().expect("name").to_owned();
    // The middle of the value (the key's byte when the value is short).
    let pos = r.key_off() + (r.len - HEADER as u64) / 2 + 1;
    let ctx = format!(
        "{kind}: byte {pos} flipped in record at {} of hinted {}",
        r.off,
        seg_name.to_string_lossy()
    );
    let dir = tmp.path().join("damaged");
    copy_dir(&src, &dir, |_| false);
    let file = dir.join(&seg_name);
    flip(&file, pos);
    expect_corrupt(keel_storage::open(&dir, &o), &file, r.off, &ctx);
}

fn flipped_byte_mid_segment_is_corrupt_and_repairable(kind: EngineKind) {
    let _serial = common::serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, seg, recs, models) = twenty_batches(tmp.path());
    let seg_name = seg.file_name().expect("name").to_owned();
    let damaged = 10;
    let r = &recs[damaged];
    // Every byte of the record except the two length fields (a damaged length is (c)).
    let positions: Vec<u64> = (r.off..r.end())
        .filter(|p| !(r.off + 13..r.off + 21).contains(p))
        .collect();
    for (n, pos) in positions.iter().copied().enumerate() {
        let ctx = format!(
            "{kind}: byte {pos} flipped in record {damaged} at {}",
            r.off
        );
        let dir = tmp.path().join(format!("flip{pos}"));
        copy_without_hints(&src, &dir);
        let file = dir.join(&seg_name);
        flip(&file, pos);
        expect_corrupt(keel_storage::open(&dir, &opts(1 << 20)), &file, r.off, &ctx);
        // Repair for a sample of positions (header, key, value): keeps what precedes.
        if n % 9 == 0 || pos == r.key_off() {
            let store = keel_storage::open(&dir, &opts(1 << 20).repair(true))
                .unwrap_or_else(|e| panic!("{ctx}: repair open: {e:?}"));
            assert!(
                dump(&*store) == models[damaged],
                "{ctx}: repair keeps batches 0..{damaged}"
            );
            let mut model = models[damaged].clone();
            single_put(&*store, &mut model, b"after", b"repair");
            store.close().expect("close");
            drop(store);
            let store = keel_storage::open(&dir, &opts(1 << 20))
                .unwrap_or_else(|e| panic!("{ctx}: open after repair: {e:?}"));
            assert!(
                dump(&*store) == model,
                "{ctx}: contents after repair + write + reopen"
            );
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}

const HUGE_CHILD_ENV: &str = "KEEL_CORRUPT_HUGE_CHILD";
/// Address-space cap of the child that opens a file with an impossible length: far
/// above what opening a small store needs, far below the 4 GiB the length claims.
const CHILD_ADDRESS_SPACE: u64 = 1 << 30;

fn impossible_length_mid_segment_is_corrupt(kind: EngineKind) {
    let _serial = common::serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, seg, recs, models) = twenty_batches(tmp.path());
    let seg_name = seg.file_name().expect("name").to_owned();
    let damaged = 10;
    let r = &recs[damaged];
    for (field, field_off) in [("klen", 13u64), ("vlen", 17u64)] {
        let ctx = format!(
            "{kind}: {field} = 0xFFFFFFF0 in record {damaged} at {}",
            r.off
        );
        let dir = tmp.path().join(field);
        copy_without_hints(&src, &dir);
        let file = dir.join(&seg_name);
        let mut bytes = std::fs::read(&file).expect("read");
        let at = (r.off + field_off) as usize;
        bytes[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        std::fs::write(&file, bytes).expect("write");

        // In a child process whose address space is capped: a 4 GiB allocation from the
        // length field aborts it instead of passing unnoticed thanks to overcommit.
        let mut child =
            common::spawn_self("huge_len_child", HUGE_CHILD_ENV, &dir.display().to_string());
        let lines = child.drain(std::time::Duration::from_secs(60));
        let status = child.child.wait().expect("wait child");
        let stderr = child.stderr();
        let result = lines.iter().find_map(|l| l.strip_prefix("result "));
        assert!(
            status.success() && result == Some(&format!("corrupt {} {}", seg_name.to_string_lossy(), r.off)),
            "{ctx}: child under a {CHILD_ADDRESS_SPACE}-byte address-space cap: {status:?}, result {result:?}\nstderr:\n{stderr}"
        );

        expect_corrupt(keel_storage::open(&dir, &opts(1 << 20)), &file, r.off, &ctx);
        let store = keel_storage::open(&dir, &opts(1 << 20).repair(true))
            .unwrap_or_else(|e| panic!("{ctx}: repair open: {e:?}"));
        assert!(
            dump(&*store) == models[damaged],
            "{ctx}: repair keeps batches 0..{damaged}"
        );
    }
}

#[test]
#[ignore = "child process of impossible_length_mid_segment_is_corrupt; no-op without its env var"]
fn huge_len_child() {
    let Ok(dir) = std::env::var(HUGE_CHILD_ENV) else {
        return;
    };
    let cap = rustix::process::Rlimit {
        current: Some(CHILD_ADDRESS_SPACE),
        maximum: Some(CHILD_ADDRESS_SPACE),
    };
    rustix::process::setrlimit(rustix::process::Resource::As, cap).expect("setrlimit");
    let res = keel_storage::open(Path::new(&dir), &opts(1 << 20));
    match res {
        Err(StorageError::Corrupt { path, offset, .. }) => println!(
            "\nresult corrupt {} {offset}",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ),
        Err(e) => println!("\nresult error {e:?}"),
        Ok(_) => println!("\nresult opened"),
    }
}

// ---------------------------------------------------------------------------------------
// (e) hint files.

enum Damage {
    Flip(u64),
    Truncate(u64),
    Append(Vec<u8>),
}

impl Damage {
    fn apply(&self, path: &Path) {
        match self {
            Damage::Flip(at) => flip(path, *at),
            Damage::Truncate(len) => truncate(path, *len),
            Damage::Append(junk) => {
                let mut b = std::fs::read(path).expect("read");
                b.extend_from_slice(junk);
                std::fs::write(path, b).expect("write");
            }
        }
    }
}

fn bad_hint_files_fall_back_to_data(kind: EngineKind) {
    let _serial = common::serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let o = opts(2 * 1024);
    let store = common::open_with(&src, &o);
    let mut model = Model::new();
    // Overwrites and deletes leave garbage, so the merge has work and writes hints.
    for round in 0..4 {
        for i in 0..40 {
            let k = format!("k{i:03}");
            if (i + round) % 7 == 0 {
                let mut b = WriteBatch::new();
                b.delete(k.clone());
                store.write(b, WriteOptions::DEFAULT).expect("delete");
                model.remove(k.as_bytes());
            } else {
                single_put(&*store, &mut model, k.as_bytes(), &value_for(i + round));
            }
        }
        if round == 2 {
            store.compact().expect("compact");
        }
    }
    store.close().expect("close");
    drop(store);
    let hints = hint_files(&src);
    assert!(
        !hints.is_empty(),
        "{kind}: no .hint file after merge + more writes + close; files: {:?}",
        std::fs::read_dir(&src)
            .expect("ls")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect::<Vec<_>>()
    );
    let clean = common::open_with(&src, &o);
    assert!(dump(&*clean) == model, "{kind}: contents with intact hints");
    clean.close().expect("close");
    drop(clean);

    for hint in &hints {
        let name = hint.file_name().expect("name").to_owned();
        let len = std::fs::metadata(hint).expect("stat hint").len();
        let damages = [
            ("flip middle byte", Damage::Flip(len / 2)),
            ("flip last byte", Damage::Flip(len.saturating_sub(1))),
            ("truncate to half", Damage::Truncate(len / 2)),
            (
                "truncate by one byte",
                Damage::Truncate(len.saturating_sub(1)),
            ),
            ("truncate to zero", Damage::Truncate(0)),
            ("garbage appended", Damage::Append(vec![0xff; 37])),
        ];
        for (what, damage) in damages {
            if len == 0 {
                break;
            }
            let ctx = format!(
                "{kind}: hint {} ({len} bytes): {what}",
                name.to_string_lossy()
            );
            let dir = tmp.path().join("damaged");
            let _ = std::fs::remove_dir_all(&dir);
            copy_dir(&src, &dir, |_| false);
            damage.apply(&dir.join(&name));
            let store =
                keel_storage::open(&dir, &o).unwrap_or_else(|e| panic!("{ctx}: open: {e:?}"));
            assert!(
                dump(&*store) == model,
                "{ctx}: contents differ from before the damage"
            );
            for (k, v) in &model {
                assert_eq!(
                    store.get(k).expect("get").as_deref(),
                    Some(v.as_slice()),
                    "{ctx}: get"
                );
            }
            assert_eq!(
                store.stats().live_keys,
                model.len() as u64,
                "{ctx}: live_keys"
            );
            store.close().expect("close");
        }
    }
}

// ---------------------------------------------------------------------------------------
// (d) memory checkpoint.

const CP_HEADER: u64 = 20;
const CP_RECORD_HEADER: u64 = 12;

/// A memory checkpoint on disk and where its parts are.
struct Checkpoint {
    dir: PathBuf,
    file: PathBuf,
    /// (start, end) of each record.
    spans: Vec<(u64, u64)>,
    trailer: u64,
    entries: common::Pairs,
}

/// Writes a memory checkpoint of 12 entries (one with an empty value).
fn memory_checkpoint(tmp: &Path) -> Checkpoint {
    let live = tmp.join("live");
    let store = common::open(EngineKind::Memory, &live);
    let mut entries = Vec::new();
    for i in 0..12usize {
        let k = format!("key{i:02}").into_bytes();
        let v = if i == 4 { Vec::new() } else { value_for(i) };
        let mut b = WriteBatch::new();
        b.put(k.clone(), v.clone());
        store.write(b, WriteOptions::DEFAULT).expect("write");
        entries.push((k, v));
    }
    let cp = tmp.join("cp");
    store.checkpoint(&cp).expect("checkpoint");
    store.close().expect("close");
    let file = cp.join("memory.snap");
    let len = std::fs::metadata(&file).expect("stat").len();
    let mut spans = Vec::new();
    let mut at = CP_HEADER;
    for (k, v) in &entries {
        let end = at + CP_RECORD_HEADER + (k.len() + v.len()) as u64;
        spans.push((at, end));
        at = end;
    }
    assert_eq!(
        at + 16,
        len,
        "checkpoint size differs from the documented layout"
    );
    Checkpoint {
        dir: cp,
        file,
        spans,
        trailer: at,
        entries,
    }
}

fn open_memory(dir: &Path, repair: bool) -> keel_storage::Result<std::sync::Arc<dyn Storage>> {
    keel_storage::open(
        dir,
        &common::test_options(EngineKind::Memory).repair(repair),
    )
}

fn assert_prefix(dir: &Path, entries: &[(Vec<u8>, Vec<u8>)], n: usize, ctx: &str) {
    let store = open_memory(dir, true).unwrap_or_else(|e| panic!("{ctx}: repair open: {e:?}"));
    let want: Model = entries[..n].iter().cloned().collect();
    assert!(
        dump(&*store) == want,
        "{ctx}: repair must keep exactly the first {n} entries"
    );
    store.close().expect("close");
}

fn checkpoint_flipped_byte_is_corrupt_and_repairable(kind: EngineKind) {
    let _serial = common::serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let Checkpoint {
        dir: cp,
        file,
        spans,
        trailer,
        entries,
    } = memory_checkpoint(tmp.path());
    let len = std::fs::metadata(&file).expect("stat").len();
    let dir = tmp.path().join("damaged");
    for pos in 0..len {
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::copy(&file, dir.join("memory.snap")).expect("copy");
        flip(&dir.join("memory.snap"), pos);
        let rec = spans.iter().position(|(s, e)| (*s..*e).contains(&pos));
        let want_off = match rec {
            Some(i) => spans[i].0,
            None if pos < CP_HEADER => 0,
            None => trailer,
        };
        let ctx = format!("{kind}: checkpoint byte {pos} flipped (record {rec:?})");
        expect_corrupt(open_memory(&dir, false), &file, want_off, &ctx);
        // Repair once per record (at its first key byte) and once in the trailer.
        match rec {
            Some(i) if pos == spans[i].0 + CP_RECORD_HEADER => {
                assert_prefix(&dir, &entries, i, &ctx)
            }
            None if pos == trailer + 1 => assert_prefix(&dir, &entries, entries.len(), &ctx),
            _ => {}
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
    // The undamaged original still loads in full.
    let store = open_memory(&cp, false).expect("open intact checkpoint");
    assert_eq!(dump(&*store).len(), entries.len());
}

fn checkpoint_truncated_is_corrupt_and_repairable(kind: EngineKind) {
    let _serial = common::serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let Checkpoint {
        file,
        spans,
        trailer,
        entries,
        ..
    } = memory_checkpoint(tmp.path());
    let len = std::fs::metadata(&file).expect("stat").len();
    let dir = tmp.path().join("damaged");
    for cut in 0..len {
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::copy(&file, dir.join("memory.snap")).expect("copy");
        truncate(&dir.join("memory.snap"), cut);
        let rec = spans.iter().position(|(s, e)| (*s..*e).contains(&cut));
        let ctx = format!("{kind}: checkpoint cut to {cut} bytes (inside record {rec:?})");
        match open_memory(&dir, false) {
            Err(StorageError::Corrupt { path, offset, .. }) => {
                assert_eq!(path.file_name(), file.file_name(), "{ctx}: file named");
                match rec {
                    Some(i) => assert_eq!(offset, spans[i].0, "{ctx}: offset of the cut record"),
                    None if cut < CP_HEADER => assert_eq!(offset, 0, "{ctx}: header offset"),
                    None => assert!(
                        (trailer..=cut).contains(&offset),
                        "{ctx}: offset {offset} outside the trailer {trailer}..={cut}"
                    ),
                }
            }
            Err(e) => panic!("{ctx}: {e:?}, want Corrupt"),
            Ok(_) => panic!("{ctx}: a truncated checkpoint opened"),
        }
        match rec {
            Some(i) if cut == spans[i].0 || cut == spans[i].1 - 1 => {
                assert_prefix(&dir, &entries, i, &ctx)
            }
            None if cut == trailer + 3 => assert_prefix(&dir, &entries, entries.len(), &ctx),
            _ => {}
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
