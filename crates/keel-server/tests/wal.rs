//! The write-ahead log end to end: round trips across segment rotations, group commit,
//! torn tails at every byte of the last record, damage before the tail, index gaps,
//! truncation, and acknowledged entries surviving SIGKILL of a real process.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use keel_server::wal::record::{self, Header, HEADER_LEN};
use keel_server::wal::segment::{list_segments, parse_segment_name, segment_file_name};
use keel_server::wal::{Wal, WalError, WalOptions};
use keel_storage::SyncPolicy;
use rand::{Rng, SeedableRng};

/// The payload of entry `i`: its length varies so records straddle segment ends.
fn payload(i: u64) -> Vec<u8> {
    let mut p = format!("entry {i}:").into_bytes();
    p.extend(std::iter::repeat_n((i % 251) as u8, (i % 97) as usize));
    p
}

fn opts(segment_size: u64, sync: SyncPolicy) -> WalOptions {
    WalOptions::default().segment_size(segment_size).sync(sync)
}

fn open(dir: &Path, o: WalOptions) -> (Wal, keel_server::wal::RecoveryReport) {
    Wal::open(dir, o).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

/// Appends `from..=to` with the standard payloads, committing every `every` entries.
fn fill(wal: &mut Wal, from: u64, to: u64, every: u64) {
    for i in from..=to {
        wal.append(i, &payload(i))
            .unwrap_or_else(|e| panic!("append {i}: {e}"));
        if (i - from + 1).is_multiple_of(every) {
            wal.commit()
                .unwrap_or_else(|e| panic!("commit at {i}: {e}"));
        }
    }
    wal.commit().unwrap_or_else(|e| panic!("final commit: {e}"));
}

fn read_all(wal: &Wal, after: u64) -> Vec<(u64, Bytes)> {
    wal.entries_after(after)
        .map(|r| r.unwrap_or_else(|e| panic!("replay after {after}: {e}")))
        .collect()
}

/// Checks that replay after `after` gives exactly `after+1..=last` with their payloads.
fn assert_entries(wal: &Wal, after: u64, last: u64) {
    let got = read_all(wal, after);
    let want: Vec<u64> = (after + 1..=last).collect();
    let got_idx: Vec<u64> = got.iter().map(|(i, _)| *i).collect();
    assert_eq!(got_idx, want, "indexes replayed after {after}");
    for (i, p) in &got {
        assert_eq!(p.as_ref(), payload(*i).as_slice(), "payload of entry {i}");
    }
}

fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    list_segments(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .into_iter()
        .map(|s| s.path)
        .collect()
}

/// (offset, index, record length) of every record in a clean segment file (the active
/// one may end in the zeros `always` writes ahead of its records).
fn records_of(path: &Path) -> Vec<(u64, u64, u64)> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() && data[pos..].iter().any(|&b| b != 0) {
        let mut raw = [0u8; HEADER_LEN];
        raw.copy_from_slice(&data[pos..pos + HEADER_LEN]);
        let h = Header::parse(&raw);
        assert!(
            h.verify(&data[pos + HEADER_LEN..pos + h.record_len() as usize]),
            "test setup: bad record in {}",
            path.display()
        );
        out.push((pos as u64, h.index, h.record_len()));
        pos += h.record_len() as usize;
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy dir");
    for p in segment_paths(from) {
        let name = p.file_name().expect("segment file name");
        std::fs::copy(&p, to.join(name)).expect("copy segment");
    }
}

fn flip_byte(path: &Path, offset: u64) {
    let mut data = std::fs::read(path).expect("read file to damage");
    data[offset as usize] ^= 0x5a;
    std::fs::write(path, data).expect("write damaged file");
}

#[test]
fn round_trip_across_rotations_and_reopens() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    let o = opts(4096, SyncPolicy::Always);
    let (mut wal, report) = open(&dir, o.clone());
    assert_eq!((report.records, report.last_index), (0, 0));
    fill(&mut wal, 1, 500, 7);
    assert_eq!(wal.last_index(), 500);
    assert_eq!(wal.last_synced_index(), 500);
    assert_entries(&wal, 0, 500);
    let segs = segment_paths(&dir);
    assert!(segs.len() >= 8, "only {} segments", segs.len());
    // Every segment respects the size (no record here is larger than a segment) and is
    // named after its first record.
    let mut next = 1;
    let mut total = 0;
    for p in &segs {
        let len = std::fs::metadata(p).expect("stat").len();
        assert!(len <= 4096, "{} has {len} bytes", p.display());
        let recs = records_of(p);
        total += recs.iter().map(|(_, _, n)| n).sum::<u64>();
        let name = p.file_name().and_then(|n| n.to_str()).expect("name");
        assert_eq!(parse_segment_name(name), Some(next), "{name}");
        for (_, idx, _) in &recs {
            assert_eq!(*idx, next);
            next += 1;
        }
    }
    assert_eq!(next, 501);
    let stats = wal.stats();
    assert_eq!(stats.bytes_on_disk, total);
    assert_eq!(stats.segments, segs.len() as u64);
    wal.close().expect("close");

    let (mut wal, report) = open(&dir, o.clone());
    assert_eq!(report.records, 500);
    assert_eq!((report.first_index, report.last_index), (1, 500));
    assert_eq!(report.torn_tail, None);
    assert_eq!(wal.last_synced_index(), 500);
    assert_entries(&wal, 0, 500);
    assert_entries(&wal, 250, 500);
    assert_entries(&wal, 499, 500);
    assert_eq!(wal.entries_after(500).count(), 0);
    // Appends continue where the log ended.
    let err = wal.append(502, b"x").err();
    assert!(
        matches!(err, Some(WalError::OutOfOrder { expected: 501, .. })),
        "{err:?}"
    );
    fill(&mut wal, 501, 640, 13);
    drop(wal);
    let (wal, report) = open(&dir, o);
    assert_eq!(report.last_index, 640);
    assert_entries(&wal, 123, 640);
}

/// The length of `path` on disk.
fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .len()
}

/// The records' bytes of every segment in `dir`.
fn record_bytes(dir: &Path) -> Vec<u64> {
    segment_paths(dir)
        .iter()
        .map(|p| records_of(p).iter().map(|(_, _, n)| n).sum())
        .collect()
}

/// A log of 64 KiB segments under `sync` holding entries 1..=20, and its one segment.
fn twenty_entries(sync: SyncPolicy) -> (tempfile::TempDir, PathBuf, Wal, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    let (mut wal, _) = open(&dir, opts(64 << 10, sync));
    fill(&mut wal, 1, 20, 5);
    let active = segment_paths(&dir).pop().expect("a segment");
    (tmp, dir, wal, active)
}

#[test]
fn always_writes_zeros_ahead_and_cuts_them_at_seal_and_close() {
    let (_tmp, dir, mut wal, active) = twenty_entries(SyncPolicy::Always);
    let used = record_bytes(&dir)[0];
    // The zeros run to the segment's size (64 KiB, under the 1 MiB written ahead).
    assert_eq!(file_len(&active), 64 << 10, "records take {used} bytes");
    assert_eq!(wal.stats().bytes_on_disk, used);
    // Sealing cuts them off the sealed segment, and the new one gets its own.
    wal.seal_active().expect("seal");
    fill(&mut wal, 21, 30, 5);
    let segs = segment_paths(&dir);
    assert_eq!(segs.len(), 2);
    assert_eq!(
        file_len(&segs[0]),
        used,
        "sealed segment ends at its last record"
    );
    assert_eq!(file_len(&segs[1]), 64 << 10);
    wal.close().expect("close");
    let lens: Vec<u64> = segs.iter().map(|p| file_len(p)).collect();
    assert_eq!(lens, record_bytes(&dir), "close cuts the zeros");
    let (wal, report) = open(&dir, opts(64 << 10, SyncPolicy::Always));
    assert_eq!((report.last_index, report.torn_tail), (30, None));
    assert_entries(&wal, 0, 30);
}

#[test]
fn everysec_writes_no_zeros_ahead() {
    let (_tmp, dir, _wal, active) = twenty_entries(SyncPolicy::EverySec);
    assert_eq!(file_len(&active), record_bytes(&dir)[0]);
}

#[test]
fn zeros_left_by_a_crash_are_a_clean_end_and_a_torn_record_in_them_is_not() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    let o = opts(1 << 20, SyncPolicy::Always);
    let (mut wal, _) = open(&dir, o.clone());
    fill(&mut wal, 1, 40, 7);
    // A crash: the WAL goes without `close`, its zeros stay.
    drop(wal);
    let active = segment_paths(&dir).pop().expect("a segment");
    let used = record_bytes(&dir)[0];
    assert!(file_len(&active) > used, "zeros were written ahead");
    let (mut wal, report) = open(&dir, o.clone());
    assert_eq!((report.last_index, report.torn_tail), (40, None));
    assert_eq!(file_len(&active), used, "the zeros are cut off");
    assert_entries(&wal, 0, 40);
    // Appends continue at the last record, with zeros ahead again.
    fill(&mut wal, 41, 50, 3);
    drop(wal);
    // Half a record written into the zeros (a write the crash tore) is a torn tail.
    let recs = records_of(&active);
    let &(at, idx, len) = recs.last().expect("records");
    assert_eq!(idx, 50);
    let mut data = std::fs::read(&active).expect("read");
    data[(at + len / 2) as usize..(at + len) as usize].fill(0);
    std::fs::write(&active, &data).expect("write");
    let (wal, report) = open(&dir, o);
    assert_eq!(report.last_index, 49);
    let torn = report.torn_tail.expect("a torn tail");
    assert_eq!(torn.offset, at);
    assert_eq!(file_len(&active), at);
    assert_entries(&wal, 0, 49);
}

#[test]
fn one_commit_covers_many_appends() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut wal, _) = open(tmp.path(), opts(1 << 20, SyncPolicy::Always));
    wal.append(1, &payload(1)).expect("append");
    wal.commit().expect("commit");
    let before = wal.stats();
    assert_eq!(before.last_synced_index, 1);
    for i in 2..=200 {
        wal.append(i, &payload(i)).expect("append");
    }
    // Appends are only buffered: nothing written, nothing synced.
    assert_eq!(wal.stats().bytes_on_disk, before.bytes_on_disk);
    assert_eq!(wal.last_synced_index(), 1);
    assert_eq!(wal.commit().expect("commit"), 200);
    let after = wal.stats();
    assert_eq!(
        after.fsyncs,
        before.fsyncs + 1,
        "one fdatasync for 199 entries"
    );
    assert_eq!(after.last_synced_index, 200);
    assert_eq!(after.last_index, 200);
    assert!(after.bytes_on_disk > before.bytes_on_disk);
    // Nothing new: no fdatasync at all.
    assert_eq!(wal.commit().expect("commit"), 200);
    assert_eq!(wal.stats().fsyncs, after.fsyncs);
}

#[test]
fn policy_no_never_syncs_on_commit_and_everysec_catches_up() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut wal, _) = open(&tmp.path().join("no"), opts(1 << 20, SyncPolicy::No));
    fill(&mut wal, 1, 50, 10);
    let s = wal.stats();
    assert_eq!((s.fsyncs, s.last_synced_index), (0, 0));
    assert_eq!(wal.sync().expect("explicit sync"), 50);
    assert_eq!(wal.stats().fsyncs, 1);

    let (mut wal, _) = open(
        &tmp.path().join("everysec"),
        opts(1 << 20, SyncPolicy::EverySec),
    );
    fill(&mut wal, 1, 50, 10);
    let handle = wal.stats_handle();
    let deadline = Instant::now() + Duration::from_secs(10);
    while handle.get().last_synced_index < 50 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = handle.get();
    assert_eq!(s.last_synced_index, 50, "the everysec thread never synced");
    assert!(s.fsyncs >= 1);
    wal.close().expect("close");
}

#[test]
fn appends_are_checked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut wal, _) = open(tmp.path(), opts(1 << 20, SyncPolicy::No));
    assert!(matches!(
        wal.append(0, b"x"),
        Err(WalError::OutOfOrder { got: 0, .. })
    ));
    // An empty log starts wherever the first entry says (after a snapshot, say).
    wal.append(41, b"a").expect("first append");
    assert_eq!(wal.first_index(), 41);
    assert!(matches!(
        wal.append(41, b"b"),
        Err(WalError::OutOfOrder {
            last: 41,
            expected: 42,
            got: 41
        })
    ));
    wal.append(42, b"b").expect("second append");
    wal.commit().expect("commit");
    let got = read_all(&wal, 40);
    assert_eq!(
        got,
        vec![
            (41, Bytes::from_static(b"a")),
            (42, Bytes::from_static(b"b"))
        ]
    );
}

/// Cuts a copy of the log inside its last record at every byte offset: the reopened log
/// has every record but the last, and appends continue correctly after it.
#[test]
fn torn_tail_at_every_offset_of_the_last_record() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let o = opts(2048, SyncPolicy::Always);
    let (mut wal, _) = open(&src, o.clone());
    const N: u64 = 60;
    fill(&mut wal, 1, N, 5);
    wal.close().expect("close");
    let segs = segment_paths(&src);
    assert!(segs.len() >= 2, "want the tail in a later segment");
    let last_seg = segs.last().expect("a segment");
    let name = last_seg.file_name().expect("file name");
    let recs = records_of(last_seg);
    let &(start, idx, len) = recs.last().expect("records in the last segment");
    assert_eq!(idx, N);
    for cut in start..start + len {
        let dir = tmp.path().join(format!("cut-{cut}"));
        copy_dir(&src, &dir);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join(name))
            .expect("open copy");
        f.set_len(cut).expect("truncate copy");
        drop(f);
        let (mut wal, report) = open(&dir, o.clone());
        assert_eq!(report.last_index, N - 1, "cut at {cut}");
        if cut == start {
            assert_eq!(
                report.torn_tail, None,
                "a cut on a record boundary is clean"
            );
        } else {
            let torn = report.torn_tail.expect("torn tail reported");
            assert_eq!(torn.path, dir.join(name));
            assert_eq!((torn.offset, torn.bytes_dropped), (start, cut - start));
        }
        assert_eq!(
            std::fs::metadata(dir.join(name)).expect("stat").len(),
            start,
            "file cut back to the last good record"
        );
        assert_entries(&wal, 0, N - 1);
        wal.append(N, b"rewritten").expect("append after torn tail");
        wal.append(N + 1, &payload(N + 1)).expect("append");
        wal.commit().expect("commit");
        drop(wal);
        let (wal, report) = open(&dir, o.clone());
        assert_eq!(report.torn_tail, None, "cut at {cut}: reopen after repair");
        assert_eq!(report.last_index, N + 1);
        let got = read_all(&wal, N - 1);
        assert_eq!(
            got,
            vec![
                (N, Bytes::from_static(b"rewritten")),
                (N + 1, Bytes::from(payload(N + 1)))
            ]
        );
        drop(wal);
        std::fs::remove_dir_all(&dir).expect("clean up copy");
    }
}

#[test]
fn garbage_after_the_last_record_is_a_torn_tail() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = opts(1 << 20, SyncPolicy::Always);
    let (mut wal, _) = open(tmp.path(), o.clone());
    fill(&mut wal, 1, 20, 4);
    wal.close().expect("close");
    let seg = segment_paths(tmp.path()).pop().expect("segment");
    let clean_len = std::fs::metadata(&seg).expect("stat").len();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let garbage: Vec<u8> = (0..3000).map(|_| rng.gen()).collect();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .expect("open");
    f.write_all(&garbage).expect("append garbage");
    drop(f);
    let (wal, report) = open(tmp.path(), o);
    let torn = report.torn_tail.expect("torn tail");
    assert_eq!((torn.offset, torn.bytes_dropped), (clean_len, 3000));
    assert_entries(&wal, 0, 20);
}

/// Flips a byte inside a record in the middle of the log: the open fails naming the
/// file and the record's offset; with repair the prefix before it survives.
#[test]
fn damage_before_the_tail_stops_the_open_and_repair_keeps_the_prefix() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let o = opts(2048, SyncPolicy::Always);
    let (mut wal, _) = open(&src, o.clone());
    fill(&mut wal, 1, 120, 9);
    wal.close().expect("close");
    let segs = segment_paths(&src);
    assert!(segs.len() >= 4);

    // Case 1: a middle segment; case 2: the last segment with valid records after.
    for (case, seg_no) in [(1, 1), (2, segs.len() - 1)] {
        let dir = tmp.path().join(format!("case-{case}"));
        copy_dir(&src, &dir);
        let name = segs[seg_no].file_name().expect("name");
        let path = dir.join(name);
        let recs = records_of(&path);
        assert!(recs.len() >= 3, "case {case}: too few records");
        let (off, bad_idx, _) = recs[1];
        // A payload byte: the checksum catches it.
        flip_byte(&path, off + HEADER_LEN as u64 + 3);
        let err = Wal::open(&dir, o.clone()).err();
        match &err {
            Some(WalError::Corrupt {
                path: p, offset, ..
            }) => {
                assert_eq!((p, *offset), (&path, off), "case {case}");
            }
            other => panic!("case {case}: expected Corrupt, got {other:?}"),
        }
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains(&off.to_string()),
            "case {case}: message names file and offset: {msg}"
        );

        let (wal, report) = open(&dir, o.clone().repair(true));
        assert_eq!(report.last_index, bad_idx - 1, "case {case}");
        let rep = report.repair.expect("repair reported");
        assert_eq!((rep.path.as_path(), rep.offset), (path.as_path(), off));
        assert_eq!(rep.segments_dropped.len(), segs.len() - 1 - seg_no);
        assert_eq!(segment_paths(&dir).len(), seg_no + 1);
        assert_entries(&wal, 0, bad_idx - 1);
        drop(wal);
        // The repaired log opens cleanly without repair.
        let (_, report) = open(&dir, o.clone());
        assert_eq!((report.last_index, report.repair), (bad_idx - 1, None));
    }

    // Case 3: a damaged length field in the first segment (impossible shape, not last).
    let dir = tmp.path().join("case-3");
    copy_dir(&src, &dir);
    let path = dir.join(segs[0].file_name().expect("name"));
    let recs = records_of(&path);
    let (off, _, _) = recs[recs.len() - 1];
    flip_byte(&path, off + 7);
    match Wal::open(&dir, o) {
        Err(WalError::Corrupt {
            path: p, offset, ..
        }) => assert_eq!((p, offset), (path, off)),
        other => panic!("case 3: expected Corrupt, got {other:?}"),
    }
}

#[test]
fn index_gaps_are_detected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let o = opts(2048, SyncPolicy::Always);
    let (mut wal, _) = open(&src, o.clone());
    fill(&mut wal, 1, 120, 9);
    wal.close().expect("close");
    let segs = segment_paths(&src);

    // A whole segment missing in the middle.
    let dir = tmp.path().join("missing-segment");
    copy_dir(&src, &dir);
    std::fs::remove_file(dir.join(segs[2].file_name().expect("name"))).expect("rm");
    let after_gap = dir.join(segs[3].file_name().expect("name"));
    match Wal::open(&dir, o.clone()) {
        Err(WalError::Corrupt {
            path,
            offset,
            reason,
        }) => {
            assert_eq!((path, offset), (after_gap, 0));
            assert!(reason.contains("gap"), "{reason}");
        }
        other => panic!("expected a gap error, got {other:?}"),
    }
    let (wal, report) = open(&dir, o.clone().repair(true));
    let last_kept = records_of(&dir.join(segs[1].file_name().expect("name")))
        .last()
        .map(|r| r.1)
        .expect("records");
    assert_eq!(report.last_index, last_kept);
    assert_entries(&wal, 0, last_kept);
    drop(wal);

    // A record with a valid checksum but a skipped index, at the very tail: not a torn
    // write, so still an error.
    let dir = tmp.path().join("skipped-index");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut buf = Vec::new();
    record::encode(1, b"one", &mut buf);
    record::encode(2, b"two", &mut buf);
    let gap_at = buf.len() as u64;
    record::encode(4, b"four", &mut buf);
    let path = dir.join(segment_file_name(1));
    std::fs::write(&path, &buf).expect("write segment");
    match Wal::open(&dir, o.clone()) {
        Err(WalError::Corrupt {
            path: p, offset, ..
        }) => assert_eq!((p, offset), (path, gap_at)),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let (wal, report) = open(&dir, o.repair(true));
    assert_eq!(report.last_index, 2);
    assert_eq!(read_all(&wal, 0).len(), 2);
}

/// A log of entries 1..=300 in 2 KiB segments: the log, its segments' paths and first
/// indexes, the middle segment `k` and the bytes of the segments before it.
fn half_covered_log(dir: &Path, o: WalOptions) -> (Wal, Vec<PathBuf>, Vec<u64>, usize, u64) {
    let (mut wal, _) = open(dir, o);
    fill(&mut wal, 1, 300, 10);
    let before = segment_paths(dir);
    let firsts: Vec<u64> = list_segments(dir)
        .expect("list")
        .iter()
        .map(|s| s.first_index)
        .collect();
    let k = firsts.len() / 2;
    let deleted_len: u64 = before[..k]
        .iter()
        .map(|p| std::fs::metadata(p).expect("stat").len())
        .sum();
    (wal, before, firsts, k, deleted_len)
}

#[test]
fn truncate_before_drops_covered_segments_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    let o = opts(2048, SyncPolicy::Always);
    let (mut wal, before, firsts, k, deleted_len) = half_covered_log(&dir, o.clone());
    // A cut in the middle of some segment k: segments before k go, k stays.
    let cut = firsts[k] + 1;
    let bytes_before = wal.stats().bytes_on_disk;
    assert_eq!(wal.truncate_before(cut).expect("truncate"), k);
    assert_eq!(segment_paths(&dir), before[k..].to_vec());
    assert_eq!(wal.first_index(), firsts[k]);
    assert_eq!(wal.stats().bytes_on_disk, bytes_before - deleted_len);
    assert_entries(&wal, cut - 1, 300);
    let first = wal.entries_after(0).next();
    assert!(
        matches!(first, Some(Err(WalError::Missing { after: 0, first })) if first == firsts[k]),
        "{first:?}"
    );
    // Exactly at a segment start: that segment's predecessor is covered too.
    assert_eq!(wal.truncate_before(firsts[k + 1]).expect("truncate"), 1);
    // Everything covered: the active segment stays.
    let n = wal.truncate_before(u64::MAX).expect("truncate all");
    assert_eq!(n, firsts.len() - k - 2);
    assert_eq!(segment_paths(&dir).len(), 1);
    fill(&mut wal, 301, 320, 10);
    drop(wal);
    let (wal, report) = open(&dir, o);
    assert_eq!(report.first_index, *firsts.last().expect("segments"));
    assert_eq!(report.last_index, 320);
    assert_entries(&wal, report.first_index - 1, 320);
}

/// Waits up to 10 s for `done`; false if it never held.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

#[test]
fn truncation_in_the_background_takes_segments_off_the_books_at_once() {
    for sync in [SyncPolicy::Always, SyncPolicy::EverySec, SyncPolicy::No] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("wal");
        let o = opts(2048, sync);
        let (mut wal, before, firsts, k, deleted_len) = half_covered_log(&dir, o.clone());
        let stats = wal.stats();
        assert_eq!(
            wal.truncate_before_in_background(firsts[k] + 1),
            k,
            "{sync:?}"
        );
        // The books move at once; the files go when the WAL's thread gets to them.
        assert_eq!(wal.first_index(), firsts[k], "{sync:?}");
        let after = wal.stats();
        assert_eq!(after.segments, stats.segments - k as u64, "{sync:?}");
        assert_eq!(
            after.bytes_on_disk,
            stats.bytes_on_disk - deleted_len,
            "{sync:?}"
        );
        assert!(
            eventually(|| segment_paths(&dir) == before[k..]),
            "{sync:?}: covered segments still there: {:?}",
            segment_paths(&dir)
        );
        assert_entries(&wal, firsts[k], 300);
        // Handed over and closed at once: close waits for the deletions.
        let n = wal.truncate_before_in_background(u64::MAX);
        assert_eq!(n, firsts.len() - k - 1, "{sync:?}");
        wal.close().expect("close");
        assert_eq!(segment_paths(&dir).len(), 1, "{sync:?}");
        let (wal, report) = open(&dir, o);
        assert_eq!(report.first_index, *firsts.last().expect("segments"));
        assert_entries(&wal, report.first_index - 1, 300);
    }
}

#[test]
fn writeback_starts_in_the_background_but_under_always() {
    let payload = vec![7u8; 64 << 10];
    for sync in [SyncPolicy::EverySec, SyncPolicy::No, SyncPolicy::Always] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut wal, _) = open(tmp.path(), opts(64 << 20, sync));
        // 3 MiB, flushed 64 KiB at a time: three rounds of the 1 MiB writeback step.
        for i in 1..=48 {
            wal.append(i, &payload).expect("append");
            wal.flush().expect("flush");
        }
        if sync == SyncPolicy::Always {
            wal.commit().expect("commit");
            assert_eq!(wal.stats().writebacks, 0, "every round is fdatasynced");
        } else {
            assert!(
                eventually(|| wal.stats().writebacks >= 1),
                "{sync:?}: no writeback started"
            );
        }
    }
}

#[test]
fn an_empty_log_replaces_a_leftover_segment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = opts(1 << 20, SyncPolicy::Always);
    let (mut wal, _) = open(tmp.path(), o.clone());
    wal.append(1, b"only").expect("append");
    wal.commit().expect("commit");
    drop(wal);
    // Tear the only record: the log is empty but its segment file is named for index 1.
    let seg = tmp.path().join(segment_file_name(1));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open");
    f.set_len(10).expect("truncate");
    drop(f);
    let (mut wal, report) = open(tmp.path(), o.clone());
    assert_eq!((report.last_index, report.segments), (0, 1));
    wal.append(9, b"nine").expect("append to an empty log");
    wal.commit().expect("commit");
    drop(wal);
    assert_eq!(
        segment_paths(tmp.path()),
        vec![tmp.path().join(segment_file_name(9))]
    );
    let (wal, report) = open(tmp.path(), o);
    assert_eq!((report.first_index, report.last_index), (9, 9));
    assert_eq!(read_all(&wal, 8), vec![(9, Bytes::from_static(b"nine"))]);
}

// ---- SIGKILL crash test -------------------------------------------------------------

const CHILD_ENV: &str = "KEEL_WAL_CRASH_CHILD";
const CHILD_TEST: &str = "wal_crash_child";
const CYCLES: usize = 10;
const CHILD_MAX_ENTRIES: u64 = 200_000;
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const CRASH_SEGMENT: u64 = 256 << 10;

/// Payloads of the crash test: every sixteenth run of 64 entries is 8 KiB per entry, so
/// some commits are one large write that a kill can interrupt midway.
fn crash_payload(i: u64) -> Vec<u8> {
    if (i / 64) % 16 == 15 {
        let mut p = payload(i);
        p.resize(8 << 10, (i % 253) as u8);
        p
    } else {
        payload(i)
    }
}

#[test]
#[ignore = "child process of the crash test; does nothing unless KEEL_WAL_CRASH_CHILD is set"]
fn wal_crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mut wal, _) = Wal::open(&dir, opts(CRASH_SEGMENT, SyncPolicy::Always))
        .unwrap_or_else(|e| panic!("child: open {dir}: {e}"));
    let start = wal.last_index() + 1;
    let mut out = std::io::stdout().lock();
    // libtest has printed "test wal_crash_child ... " without a newline.
    writeln!(out, "\nstart {start}").expect("child: stdout");
    out.flush().expect("child: stdout");
    let mut i = start;
    while i < start + CHILD_MAX_ENTRIES {
        // Group commits of 1..=8 entries, as an apply loop would make them.
        let n = 1 + (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 61);
        for _ in 0..n {
            wal.append(i, &crash_payload(i))
                .unwrap_or_else(|e| panic!("child: append {i}: {e}"));
            i += 1;
        }
        let durable = wal
            .commit()
            .unwrap_or_else(|e| panic!("child: commit: {e}"));
        assert_eq!(durable, i - 1, "child: commit covers every append");
        writeln!(out, "ack {durable}").expect("child: stdout");
        out.flush().expect("child: stdout");
    }
}

struct ChildRun {
    child: Child,
    lines: Receiver<String>,
}

impl ChildRun {
    fn spawn(dir: &Path) -> ChildRun {
        let exe = std::env::current_exe().expect("current_exe of the test binary");
        let mut child = Command::new(exe)
            .args([
                "--exact",
                CHILD_TEST,
                "--nocapture",
                "--test-threads",
                "1",
                "--include-ignored",
            ])
            .env(CHILD_ENV, dir)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child test process");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ChildRun { child, lines }
    }

    fn next_line(&mut self) -> Option<String> {
        match self.lines.recv_timeout(READ_TIMEOUT) {
            Ok(l) => Some(l),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                panic!("child produced no output for {READ_TIMEOUT:?}");
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildRun {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A child appends and commits under `always`, printing `ack N` after each commit; it
/// is killed with SIGKILL at random points. Every acked index must be there, with its
/// payload, and the log must reopen without repair. Reproduce with KEEL_WAL_CRASH_SEED.
#[test]
fn acked_entries_survive_sigkill() {
    let seed: u64 = std::env::var("KEEL_WAL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    let mut durable = 0u64;
    for cycle in 0..CYCLES {
        let ctx = format!("seed {seed} cycle {cycle}");
        let mut child = ChildRun::spawn(&dir);
        let target = if rng.gen_bool(0.15) {
            0
        } else {
            rng.gen_range(1..=300)
        };
        let mut acked = durable;
        let mut acks = 0;
        let mut started = false;
        let on_line = |line: &str, acked: &mut u64| {
            if let Some(s) = line.strip_prefix("start ") {
                let s: u64 = s.parse().expect("start line");
                assert_eq!(s, durable + 1, "{ctx}: child resumed at the wrong index");
            } else if let Some(a) = line.strip_prefix("ack ") {
                let a: u64 = a.parse().expect("ack line");
                assert!(a > *acked, "{ctx}: acks go backwards");
                *acked = a;
            }
        };
        while !started || acks < target {
            let Some(line) = child.next_line() else {
                panic!("{ctx}: child exited before it was killed");
            };
            started |= line.starts_with("start ");
            acks += usize::from(line.starts_with("ack "));
            on_line(&line, &mut acked);
        }
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..3000)));
        child.kill();
        while let Some(line) = child.next_line() {
            on_line(&line, &mut acked);
        }
        drop(child);

        let (wal, report) = Wal::open(&dir, opts(CRASH_SEGMENT, SyncPolicy::Always))
            .unwrap_or_else(|e| panic!("{ctx}: reopen after SIGKILL: {e}"));
        assert_eq!(report.repair, None, "{ctx}");
        assert!(
            report.last_index >= acked,
            "{ctx}: acked through {acked} but the log ends at {}",
            report.last_index
        );
        let mut n = 0;
        for (k, item) in wal.entries_after(0).enumerate() {
            let (i, p) = item.unwrap_or_else(|e| panic!("{ctx}: replay: {e}"));
            assert_eq!(i, k as u64 + 1, "{ctx}: replay order");
            assert_eq!(
                p.as_ref(),
                crash_payload(i).as_slice(),
                "{ctx}: payload of {i}"
            );
            n += 1;
        }
        assert_eq!(n, report.last_index, "{ctx}: replay count");
        eprintln!(
            "{ctx}: killed after {acks}+ acks; acked through {acked}, log holds {} (torn tail: {:?})",
            report.last_index,
            report.torn_tail.map(|t| t.bytes_dropped)
        );
        durable = report.last_index;
        drop(wal);
    }
    assert!(durable > 0, "seed {seed}: nothing was ever committed");
}

// ---- throughput figures (run with --ignored --nocapture) -----------------------------

#[test]
#[ignore = "prints throughput figures; run in release with --ignored --nocapture"]
fn wal_throughput() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let body = vec![0x42u8; 100];
    // Raw fdatasync rate of a small append-and-sync loop on this disk.
    {
        let path = tmp.path().join("raw");
        let mut f = std::fs::File::create(&path).expect("create");
        let n = 300;
        let t = Instant::now();
        for _ in 0..n {
            f.write_all(&body).expect("write");
            f.sync_data().expect("fdatasync");
        }
        let el = t.elapsed();
        println!(
            "raw write+fdatasync: {:.0}/s ({:.1} us each)",
            n as f64 / el.as_secs_f64(),
            el.as_micros() as f64 / n as f64
        );
    }
    for per_commit in [1u64, 16, 128] {
        let dir = tmp.path().join(format!("g{per_commit}"));
        let (mut wal, _) = open(&dir, opts(64 << 20, SyncPolicy::Always));
        let commits = if per_commit == 1 { 300 } else { 200 };
        let total = commits * per_commit;
        let t = Instant::now();
        let mut i = 0;
        for _ in 0..commits {
            for _ in 0..per_commit {
                i += 1;
                wal.append(i, &body).expect("append");
            }
            wal.commit().expect("commit");
        }
        let el = t.elapsed();
        let s = wal.stats();
        println!(
            "always, {per_commit:>3} entries/commit: {:>9.0} appends/s, {:>7.0} commits/s, fsyncs {}, last fsync {:?}",
            total as f64 / el.as_secs_f64(),
            commits as f64 / el.as_secs_f64(),
            s.fsyncs,
            s.last_fsync
        );
        assert_eq!(s.fsyncs, commits, "one fdatasync per commit");
    }
    {
        let dir = tmp.path().join("no");
        let (mut wal, _) = open(&dir, opts(64 << 20, SyncPolicy::No));
        let total = 200_000u64;
        let t = Instant::now();
        for i in 1..=total {
            wal.append(i, &body).expect("append");
            if i.is_multiple_of(128) {
                wal.commit().expect("commit");
            }
        }
        wal.commit().expect("commit");
        let el = t.elapsed();
        println!(
            "no fsync, 128 entries/flush: {:.0} appends/s",
            total as f64 / el.as_secs_f64()
        );
    }
}

// ---- model-based property test ------------------------------------------------------

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        /// Append entries with these payload lengths.
        Append(Vec<usize>),
        Commit,
        /// Drop the WAL (losing what was never flushed) and open it again.
        Reopen,
        /// truncate_before at this fraction of the way from first to last index.
        Truncate(u8),
        /// Commit, close, then cut this many bytes (modulo its length) off the last
        /// record of the last segment, and reopen.
        Tear(u16),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => prop::collection::vec(0usize..300, 1..12).prop_map(Step::Append),
            3 => Just(Step::Commit),
            1 => Just(Step::Reopen),
            1 => any::<u8>().prop_map(Step::Truncate),
            1 => any::<u16>().prop_map(Step::Tear),
        ]
    }

    fn body(i: u64, len: usize) -> Vec<u8> {
        (0..len).map(|k| (i as usize * 31 + k) as u8).collect()
    }

    /// Replay must give the flushed entries, then a prefix of the buffered ones (a
    /// rotation flushes the buffer early). Returns the length of that prefix.
    fn check(
        wal: &Wal,
        flushed: &[(u64, Vec<u8>)],
        pending: &[(u64, Vec<u8>)],
        ctx: &str,
    ) -> usize {
        let Some(first) = flushed.first().or(pending.first()).map(|e| e.0) else {
            return 0;
        };
        let got: Vec<(u64, Vec<u8>)> = wal
            .entries_after(first - 1)
            .map(|r| r.map(|(i, b)| (i, b.to_vec())))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{ctx}: replay: {e}"));
        let k = got
            .len()
            .checked_sub(flushed.len())
            .unwrap_or_else(|| panic!("{ctx}: replayed {} < flushed {}", got.len(), flushed.len()));
        assert!(k <= pending.len(), "{ctx}: replayed more than was appended");
        assert!(
            got[..flushed.len()] == *flushed,
            "{ctx}: flushed entries differ"
        );
        assert!(
            got[flushed.len()..] == pending[..k],
            "{ctx}: buffered entries differ"
        );
        k
    }

    /// How many buffered entries a rotation had flushed before the WAL was dropped.
    fn check_after_reopen(
        dir: &Path,
        o: &WalOptions,
        flushed: &[(u64, Vec<u8>)],
        pending: &[(u64, Vec<u8>)],
        ctx: &str,
    ) -> usize {
        let (wal, _) = open(dir, o.clone());
        check(&wal, flushed, pending, ctx)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn wal_matches_a_model(steps in prop::collection::vec(step(), 1..40)) {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path().join("wal");
            let o = opts(700, SyncPolicy::No);
            let (mut wal, _) = open(&dir, o.clone());
            // Entries written to the file, and entries only buffered.
            let mut flushed: Vec<(u64, Vec<u8>)> = Vec::new();
            let mut pending: Vec<(u64, Vec<u8>)> = Vec::new();
            let mut next = 1u64;
            for (n, s) in steps.iter().enumerate() {
                let ctx = format!("step {n} {s:?}");
                match s {
                    Step::Append(lens) => {
                        for len in lens {
                            let p = body(next, *len);
                            wal.append(next, &p).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                            pending.push((next, p));
                            next += 1;
                        }
                    }
                    Step::Commit => {
                        wal.commit().unwrap_or_else(|e| panic!("{ctx}: {e}"));
                        flushed.append(&mut pending);
                    }
                    Step::Reopen => {
                        drop(wal);
                        let k = check_after_reopen(&dir, &o, &flushed, &pending, &ctx);
                        flushed.extend(pending.drain(..k));
                        pending.clear();
                        let (w, report) = open(&dir, o.clone());
                        wal = w;
                        prop_assert_eq!(report.torn_tail, None);
                        next = flushed.last().map_or(1, |e| e.0 + 1);
                        if !flushed.is_empty() {
                            prop_assert_eq!(report.last_index, next - 1);
                        }
                    }
                    Step::Truncate(frac) => {
                        wal.commit().unwrap_or_else(|e| panic!("{ctx}: {e}"));
                        flushed.append(&mut pending);
                        if let (Some(f), Some(l)) = (flushed.first(), flushed.last()) {
                            let x = f.0 + (l.0 - f.0) * u64::from(*frac) / 255;
                            wal.truncate_before(x).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                            let first = wal.first_index();
                            prop_assert!(first <= x, "{}: first {} > cut {}", ctx, first, x);
                            flushed.retain(|e| e.0 >= first);
                        }
                    }
                    Step::Tear(cut) => {
                        wal.commit().unwrap_or_else(|e| panic!("{ctx}: {e}"));
                        flushed.append(&mut pending);
                        drop(wal);
                        let last_seg = segment_paths(&dir).pop();
                        let recs = last_seg.as_ref().map(|p| records_of(p)).unwrap_or_default();
                        if let (Some(path), Some(&(off, idx, len))) = (last_seg, recs.last()) {
                            let c = 1 + u64::from(*cut) % (len - 1);
                            let f = std::fs::OpenOptions::new().write(true).open(&path).expect("open");
                            f.set_len(off + len - c).expect("truncate");
                            drop(f);
                            prop_assert_eq!(flushed.pop().map(|e| e.0), Some(idx));
                        }
                        let (w, report) = open(&dir, o.clone());
                        wal = w;
                        next = flushed.last().map_or(1, |e| e.0 + 1);
                        prop_assert_eq!(report.last_index, next - 1);
                        // An emptied log accepts any first index; keep counting up.
                        if flushed.is_empty() {
                            next = wal.first_index().max(1);
                        }
                    }
                }
                let want_last = pending.last().or(flushed.last()).map_or(0, |e| e.0);
                prop_assert_eq!(wal.last_index(), want_last, "{}", ctx);
                check(&wal, &flushed, &pending, &ctx);
            }
        }
    }
}
