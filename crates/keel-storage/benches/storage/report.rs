//! Renders a run as markdown: machine, configuration, the per-engine table, the physical
//! limits, the targets with their ratios, and the caveats that go with the figures.

use std::fmt::Write as _;
use std::time::Duration;

use keel_storage::EngineKind;

use crate::cli::Config;
use crate::engine_runs::{Availability, EngineResult, CACHED_BYTES};
use crate::figures::{GetFigures, SyncFigures};
use crate::machine::Machine;
use crate::physical::{RawSync, SeqWrite};
use crate::workload::{KEY_LEN, VALUE_LEN};

/// Everything one run produced.
pub struct Run<'a> {
    /// The configuration it ran with.
    pub cfg: &'a Config,
    /// The machine it ran on.
    pub machine: &'a Machine,
    /// Start time.
    pub started_utc: String,
    /// Load averages at the start.
    pub load_before: String,
    /// Load averages at the end.
    pub load_after: String,
    /// Wall time of the whole run.
    pub wall: Duration,
    /// Cost of timing one operation with `Instant`, p50.
    pub timer_overhead_ns: Option<u64>,
    /// Raw append+fdatasync at the start of the run, one per batch size.
    pub raw: Vec<RawSync>,
    /// Sequential write bandwidth.
    pub seq: Option<SeqWrite>,
    /// Per-engine results.
    pub engines: Vec<EngineResult>,
    /// Problems outside any engine (raw or sequential tests).
    pub notes: Vec<String>,
}

/// Thousands-separated integer rate, or one decimal below 100.
pub fn rate(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    if x < 100.0 {
        return format!("{x:.1}");
    }
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration in ns, µs, ms or s, whichever reads best.
pub fn ns(ns: u64) -> String {
    let f = ns as f64;
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.2} µs", f / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2} ms", f / 1e6)
    } else {
        format!("{:.2} s", f / 1e9)
    }
}

fn dur(d: Duration) -> String {
    ns(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// What a cell says when there is nothing to show for `r`.
fn absent(r: Option<&EngineResult>, section_on: bool) -> Option<String> {
    match r {
        None => Some("not run (engine not selected)".into()),
        Some(r) => match &r.availability {
            Availability::NotBuilt(_) => Some("not measured (engine not built at the time)".into()),
            Availability::Failed(_) => Some("not measured (open failed, see notes)".into()),
            Availability::Ready if !section_on => Some("not run (section off)".into()),
            Availability::Ready => None,
        },
    }
}

struct Table<'a> {
    run: &'a Run<'a>,
    out: String,
}

impl Table<'_> {
    fn row(&mut self, label: &str, section_on: bool, f: impl Fn(&EngineResult) -> Option<String>) {
        let mut line = format!("| {label} |");
        for kind in EngineKind::ALL {
            let r = self.run.engines.iter().find(|e| e.kind == kind);
            let text = absent(r, section_on)
                .or_else(|| r.and_then(&f))
                .unwrap_or_else(|| "not measured (see notes)".into());
            let _ = write!(line, " {text} |");
        }
        self.out.push_str(&line);
        self.out.push('\n');
    }
}

fn latency(g: &GetFigures, cfg: &Config) -> String {
    let capped = if g.samples < cfg.latency_samples {
        format!(" ({} samples, time-capped)", g.samples)
    } else {
        String::new()
    };
    match &g.latency {
        Some(l) => format!("{} / {}{capped}", ns(l.p50_ns), ns(l.p99_ns)),
        None => "no sample".into(),
    }
}

fn get_rate(g: &GetFigures, cfg: &Config) -> String {
    let miss = if g.misses > 0 {
        format!(" ({} misses!)", g.misses)
    } else {
        String::new()
    };
    let capped = if (g.rate.ops as usize) < cfg.get_ops {
        format!(" ({} gets, time-capped)", g.rate.ops)
    } else {
        String::new()
    };
    format!("{}{miss}{capped}", rate(g.rate.per_s()))
}

/// The raw reference for a synced row: the slices interleaved with it if measured, else
/// the run at the start with the same batch size.
fn raw_for(run: &Run<'_>, f: &SyncFigures) -> Option<RawSync> {
    f.raw
        .or_else(|| run.raw.iter().find(|r| r.batch == f.batch).copied())
}

/// Upper or lower limit of a target.
enum Limit {
    AtMost(f64),
    AtLeast(f64),
}

/// "ratio" and "verdict" columns for `measured` against `limit`.
fn judge(measured: f64, limit: Limit) -> (String, String) {
    match limit {
        Limit::AtMost(l) => {
            let ratio = measured / l;
            let v = if ratio <= 1.0 {
                format!("**met** ({:.0}% under the limit)", (1.0 - ratio) * 100.0)
            } else {
                format!("**not met** ({:.0}% over the limit)", (ratio - 1.0) * 100.0)
            };
            (format!("{ratio:.2}"), v)
        }
        Limit::AtLeast(l) => {
            let ratio = measured / l;
            let v = if ratio >= 1.0 {
                format!("**met** ({:.0}% above the target)", (ratio - 1.0) * 100.0)
            } else {
                format!(
                    "**not met** ({:.0}% short of the target)",
                    (1.0 - ratio) * 100.0
                )
            };
            (format!("{ratio:.2}"), v)
        }
    }
}

fn engine<'a>(run: &'a Run<'a>, kind: EngineKind) -> Option<&'a EngineResult> {
    run.engines
        .iter()
        .find(|e| e.kind == kind && e.availability == Availability::Ready)
}

fn why_absent(run: &Run<'_>, kind: EngineKind) -> String {
    match run.engines.iter().find(|e| e.kind == kind) {
        None => "not run (engine not selected)".into(),
        Some(e) => match e.availability {
            Availability::NotBuilt(_) => "not measured (engine not built at the time)".into(),
            Availability::Failed(_) => "not measured (open failed)".into(),
            Availability::Ready => "not measured (section off or failed, see notes)".into(),
        },
    }
}

fn targets(run: &Run<'_>, out: &mut String) {
    let cfg = run.cfg;
    let full_size = if cfg.keys == 1_000_000 {
        String::new()
    } else {
        format!(
            " — measured with {} keys, not the 1M the target names",
            cfg.keys
        )
    };
    out.push_str("| target | measured | ratio to target | verdict |\n|---|---|---|---|\n");
    let mut line = |t: &str, m: String, jr: Option<(String, String)>| {
        let (r, v) = jr.unwrap_or_else(|| ("—".into(), "—".into()));
        let _ = writeln!(out, "| {t} | {m} | {r} | {v} |");
    };

    let t = "memory: point get p50 ≤ 1 µs with 1M keys (cached path)";
    match engine(run, EngineKind::Memory)
        .and_then(|e| e.get_cached.as_ref())
        .and_then(|g| g.latency)
    {
        Some(l) => line(
            t,
            format!("p50 {}{full_size}", ns(l.p50_ns)),
            Some(judge(l.p50_ns as f64, Limit::AtMost(1000.0))),
        ),
        None => line(t, why_absent(run, EngineKind::Memory), None),
    }

    for &batch in &cfg.batches {
        let t = format!(
            "bitcask: synced write throughput with group commit ≥ 80% of raw append+fdatasync, batch {batch}"
        );
        let bitcask = engine(run, EngineKind::Bitcask);
        let best = bitcask.and_then(|e| {
            e.sync
                .iter()
                .filter(|s| s.batch == batch)
                .max_by(|a, b| a.ops_per_s().total_cmp(&b.ops_per_s()))
        });
        match (best, best.and_then(|f| raw_for(run, f))) {
            (Some(s), Some(raw)) => {
                let frac = s.ops_per_s() / raw.records_per_s();
                let single = bitcask
                    .and_then(|e| e.sync.iter().find(|f| f.batch == batch && f.writers == 1))
                    .and_then(|f| raw_for(run, f).map(|raw| (f, raw)))
                    .map(|(f, raw)| {
                        format!(
                            "; 1 writer: {} ops/s vs raw {}/s = {:.2} of raw",
                            rate(f.ops_per_s()),
                            rate(raw.records_per_s()),
                            f.ops_per_s() / raw.records_per_s()
                        )
                    })
                    .unwrap_or_default();
                line(
                    &t,
                    format!(
                        "best {} ops/s ({} writers) vs raw {} records/s = {:.2} of raw{single}",
                        rate(s.ops_per_s()),
                        s.writers,
                        rate(raw.records_per_s()),
                        frac
                    ),
                    Some(judge(frac, Limit::AtLeast(0.8))),
                )
            }
            (None, _) => line(&t, why_absent(run, EngineKind::Bitcask), None),
            (_, None) => line(&t, "raw append+fdatasync not measured".into(), None),
        }
    }

    let t = "bitcask: open of 1M keys from hints ≤ 1 s";
    match engine(run, EngineKind::Bitcask).and_then(|e| e.open.as_ref()) {
        Some(o) => line(
            t,
            format!("{}{} ({}){full_size}", dur(o.elapsed), cpu(o.cpu), o.label),
            Some(judge(o.elapsed.as_secs_f64(), Limit::AtMost(1.0))),
        ),
        None => line(t, why_absent(run, EngineKind::Bitcask), None),
    }

    let t = "bitcask: keydir overhead ≤ 64 bytes/key beyond the key — heap after loading, cache 0";
    match engine(run, EngineKind::Bitcask).and_then(|e| e.mem) {
        Some(m) => {
            let over = m.per_key() - KEY_LEN as f64;
            line(
                t,
                format!(
                    "{:.1} B/key heap − {KEY_LEN} B key = {over:.1} B{full_size}",
                    m.per_key()
                ),
                Some(judge(over, Limit::AtMost(64.0))),
            )
        }
        None => line(t, why_absent(run, EngineKind::Bitcask), None),
    }
    let t = "bitcask: keydir overhead ≤ 64 bytes/key beyond the key — heap after reopening without hints, cache 0";
    match engine(run, EngineKind::Bitcask).and_then(|e| e.open_no_hints.as_ref()) {
        Some(o) => {
            let per_key = o.heap_per_key(cfg.keys);
            let over = per_key - KEY_LEN as f64;
            line(
                t,
                format!("{per_key:.1} B/key heap − {KEY_LEN} B key = {over:.1} B{full_size}"),
                Some(judge(over, Limit::AtMost(64.0))),
            )
        }
        None => line(t, why_absent(run, EngineKind::Bitcask), None),
    }

    let t = "bitcask: merge with 50% garbage ≥ 50% of sequential write bandwidth (bytes read)";
    match (
        engine(run, EngineKind::Bitcask).and_then(|e| e.merge),
        run.seq.as_ref(),
    ) {
        (Some(m), Some(seq)) => {
            let frac = m.read_mb_per_s() / seq.mb_per_s();
            line(
                t,
                format!(
                    "read {:.0} MB/s (wrote {:.0} MB/s) vs sequential {:.0} MB/s = {:.2} (by bytes written: {:.2})",
                    m.read_mb_per_s(),
                    m.written_mb_per_s(),
                    seq.mb_per_s(),
                    frac,
                    m.written_mb_per_s() / seq.mb_per_s()
                ),
                Some(judge(frac, Limit::AtLeast(0.5))),
            )
        }
        (None, _) => line(t, why_absent(run, EngineKind::Bitcask), None),
        (_, None) => line(t, "sequential bandwidth not measured".into(), None),
    }
}

/// The whole report.
pub fn render(run: &Run<'_>) -> String {
    let cfg = run.cfg;
    let m = run.machine;
    let s = &cfg.sections;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## keel-storage benchmark — {} ({} mode)\n",
        run.started_utc,
        cfg.mode.as_str()
    );
    let _ = writeln!(
        out,
        "- machine: {} CPUs ({}), {} RAM, kernel {}, {}",
        m.nproc, m.cpu, m.mem_total, m.kernel, m.rustc
    );
    let _ = writeln!(
        out,
        "- temp dir: `{}` ({}), file system: {}",
        m.tmp_dir.display(),
        m.tmp_origin,
        m.tmp_fs
    );
    let _ = writeln!(
        out,
        "- load average before / after: {} / {}; wall time {:.0} s",
        run.load_before,
        run.load_after,
        run.wall.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "- sizes: {} keys of {KEY_LEN} B with {VALUE_LEN} B values; {} random gets + {} timed one by one; {} scans × {} keys; synced runs {} s each; merge set {} keys",
        cfg.keys, cfg.get_ops, cfg.latency_samples, cfg.scans, cfg.scan_len, cfg.sync_secs, cfg.merge_keys
    );
    if let Some(t) = run.timer_overhead_ns {
        let _ = writeln!(
            out,
            "- timer overhead (two `Instant::now()` calls), p50: {}",
            ns(t)
        );
    }

    out.push_str("\n### Engines\n\n| figure | memory | bitcask | lsm |\n|---|---|---|---|\n");
    let mut tb = Table { run, out };
    tb.row("status", true, |r| {
        Some(match &r.availability {
            Availability::Ready => "measured".into(),
            Availability::NotBuilt(m) => format!("not built yet ({m})"),
            Availability::Failed(m) => format!("open failed: {m}"),
        })
    });
    tb.row("put, no sync, 1 writer, batch 1 (ops/s)", s.put, |r| {
        r.put_nosync.map(|p| rate(p.per_s()))
    });
    for &batch in &cfg.batches {
        for &writers in &cfg.writers {
            let who = if writers == 1 { "writer" } else { "writers" };
            let label =
                format!("put synced, {writers} {who} × batch {batch}: ops/s · batches/s · vs raw");
            tb.row(&label, s.sync, |r| {
                r.sync
                    .iter()
                    .find(|f| f.batch == batch && f.writers == writers)
                    .map(|f| {
                        if r.kind == EngineKind::Memory {
                            return format!(
                                "{} · {} · no fsync",
                                rate(f.ops_per_s()),
                                rate(f.batches.per_s())
                            );
                        }
                        let vs = raw_for(run, f)
                            .map(|raw| {
                                format!(
                                    "{:.2}× raw ({}/s)",
                                    f.ops_per_s() / raw.records_per_s(),
                                    rate(raw.records_per_s())
                                )
                            })
                            .unwrap_or_else(|| "raw n/a".into());
                        format!(
                            "{} · {} · {vs}",
                            rate(f.ops_per_s()),
                            rate(f.batches.per_s())
                        )
                    })
            });
        }
    }
    tb.row("get, cached (ops/s)", s.get, |r| {
        r.get_cached.as_ref().map(|g| get_rate(g, cfg))
    });
    tb.row("get, cached: p50 / p99", s.get, |r| {
        r.get_cached.as_ref().map(|g| latency(g, cfg))
    });
    tb.row("get, cold (ops/s)", s.get, |r| match r.kind {
        EngineKind::Memory => Some("n/a (no cold path)".into()),
        _ => r.get_cold.as_ref().map(|g| get_rate(g, cfg)),
    });
    tb.row("get, cold: p50 / p99", s.get, |r| match r.kind {
        EngineKind::Memory => Some("n/a".into()),
        _ => r.get_cold.as_ref().map(|g| latency(g, cfg)),
    });
    let scan_label = format!("scan {} keys forward: scans/s · per scan", cfg.scan_len);
    tb.row(&scan_label, s.scan, |r| {
        r.scan.map(|sc| {
            let avg = sc.keys as f64 / sc.rate.ops.max(1) as f64;
            let short = if (avg as usize) < cfg.scan_len {
                format!(" (avg {avg:.0} keys)")
            } else {
                String::new()
            };
            format!("{} · {}{short}", rate(sc.rate.per_s()), dur(sc.rate.mean()))
        })
    });
    let open_label = format!("open with {} keys", cfg.keys);
    tb.row(&open_label, s.needs_load(), |r| {
        r.open.as_ref().map(|o| {
            let ck = r
                .checkpoint
                .map(|c| format!("; checkpoint written in {}", dur(c)))
                .unwrap_or_default();
            let keys = if o.live_keys == cfg.keys {
                String::new()
            } else {
                format!("; reported {} live keys!", o.live_keys)
            };
            format!("{}{} ({}{ck}{keys})", dur(o.elapsed), cpu(o.cpu), o.label)
        })
    });
    tb.row("open without hint files", s.needs_load(), |r| {
        match r.kind {
            EngineKind::Bitcask => r
                .open_no_hints
                .as_ref()
                .map(|o| format!("{}{} ({})", dur(o.elapsed), cpu(o.cpu), o.label)),
            _ => Some("n/a".into()),
        }
    });
    tb.row(
        "heap per key (requested bytes · blocks)",
        s.needs_load(),
        |r| {
            r.mem
                .map(|m| format!("{:.1} B · {:.2}", m.per_key(), m.blocks_per_key()))
        },
    );
    tb.row("heap per key after reopen (requested bytes)", s.needs_load(), |r| {
        let n = cfg.keys;
        match r.kind {
            EngineKind::Bitcask => match (&r.open, &r.open_no_hints) {
                (Some(a), Some(b)) => Some(format!(
                    "{:.1} B (with hints, cache empty) · {:.1} B (without hints, cache 0) = {:.1} B beyond the key",
                    a.heap_per_key(n),
                    b.heap_per_key(n),
                    b.heap_per_key(n) - KEY_LEN as f64
                )),
                (Some(a), None) => Some(format!("{:.1} B (with hints, cache empty)", a.heap_per_key(n))),
                _ => None,
            },
            EngineKind::Memory => r.open.as_ref().map(|o| {
                format!(
                    "{:.1} B = {:.1} B beyond key+value (from checkpoint)",
                    o.heap_per_key(n),
                    o.heap_per_key(n) - (KEY_LEN + VALUE_LEN) as f64
                )
            }),
            EngineKind::Lsm => r.open.as_ref().map(|o| format!("{:.1} B", o.heap_per_key(n))),
        }
    });
    tb.row("heap overhead per key after loading", s.needs_load(), |r| {
        r.mem.map(|m| match r.kind {
            EngineKind::Memory => format!(
                "{:.1} B beyond key+value",
                m.per_key() - (KEY_LEN + VALUE_LEN) as f64
            ),
            EngineKind::Bitcask => format!(
                "{:.1} B beyond the key (keydir; cache off)",
                m.per_key() - KEY_LEN as f64
            ),
            EngineKind::Lsm => "n/a (memtable and caches, no per-key index)".into(),
        })
    });
    tb.row("merge/compaction, 50% garbage", s.merge, |r| match r.kind {
        EngineKind::Memory => Some("n/a".into()),
        _ => r.merge.map(|m| {
            let seg = r
                .merge_segment_bytes
                .map(|b| format!("; segments {} MiB", b >> 20))
                .unwrap_or_default();
            let read = if m.bytes_read == 0 {
                "no file removed or shrunk".to_string()
            } else {
                format!("read {} ({:.0} MB/s)", mb(m.bytes_read), m.read_mb_per_s())
            };
            format!(
                "{}{}: {read}, wrote {} ({:.0} MB/s); dir {} → {}; garbage ratio before {:.2}{seg}",
                dur(m.elapsed),
                cpu(m.cpu),
                mb(m.bytes_written),
                m.written_mb_per_s(),
                mb(m.dir_bytes_before),
                mb(m.dir_bytes_after),
                m.garbage_ratio_before
            )
        }),
    });
    let mut out = tb.out;

    out.push_str("\n### Physical limits (same binary, same run, same directory)\n\n");
    out.push_str("| figure | result |\n|---|---|\n");
    for raw in &run.raw {
        let _ = writeln!(
            out,
            "| raw append + fdatasync, 1 writer, batch {} × {} B records, at the start of the run | {} records/s · {} syncs/s |",
            raw.batch,
            raw.record_bytes,
            rate(raw.records_per_s()),
            rate(raw.syncs_per_s())
        );
    }
    if run.raw.is_empty() {
        out.push_str("| raw append + fdatasync | not measured |\n");
    }
    match &run.seq {
        Some(q) => {
            let _ = writeln!(
                out,
                "| sequential write, {} MiB in {} KiB chunks + one fsync | {:.0} MB/s ({}) |",
                q.bytes >> 20,
                q.chunk >> 10,
                q.mb_per_s(),
                dur(q.elapsed)
            );
        }
        None => out.push_str("| sequential write bandwidth | not measured |\n"),
    }

    out.push_str("\n### Targets\n\n");
    targets(run, &mut out);

    out.push_str("\n### Notes\n\n");
    let mut notes: Vec<String> = vec![
        format!(
            "Cold gets: bitcask reopened without hints and with `cache_bytes = 0`, so every get is a pread; lsm reopened with block and row caches 0. The OS page cache still holds the files (they were just written and RAM is ample; caches are not dropped), so \"cold\" means \"not in keel's cache\", not \"from the device\". Cached gets: cache {} MiB, warmed by reading every key once.",
            CACHED_BYTES >> 20
        ),
        "Heap per key: a counting global allocator in the bench binary tracks live requested bytes. \"After loading\" = (heap after loading − heap after opening the empty store) / keys, which includes whatever the write path holds (e.g. buffers for the active segment); \"after reopen\" = heap the reopen of the loaded store left allocated / keys (caches still empty), i.e. what a restarted process holds. malloc's own per-block overhead is not included (blocks per key is shown; glibc adds about 8–16 B per block). bitcask runs these with `cache_bytes = 0` (the with-hints reopen has its cache configured but still empty), so its figure is the keydir.".into(),
        "Synced rows with several writers can exceed raw by far: with group commit one fdatasync acknowledges every batch waiting for it, while the raw loop pays one fdatasync per batch.".into(),
        "The memory engine has nothing to fsync (its durability comes from the log above it and from checkpoints), so its synced rows are apply rates.".into(),
        format!("Raw append+fdatasync writes batch × {} B (a {KEY_LEN} B key, a {VALUE_LEN} B value, about 12 B of framing) per append to a file in the temp dir and calls fdatasync after each, from one thread. \"vs raw\" divides an engine's ops/s by raw records/s at the same batch size, measured in slices interleaved with that row's own slices (raw and engine alternate in slices of about 0.25 s, so the row takes twice its engine time) when available, else at the start of the run. The disk is shared with other work and its fsync rate drifts by several times within minutes, which is why the reference is interleaved; the raw rate is shown in each cell.", cfg.record_bytes),
        "Merge: N keys, each overwritten once 5,000 keys after its first write, so half of all records, spread evenly over every segment, are garbage (the engine's own garbage ratio is shown); bitcask with segments of about 1/8 of the set so most of it sits in sealed segments. Bytes read = files that compact() removed or shrank, bytes written = files it created or grew (directory listing before/after; for lsm this file-level view says little, as old tables may outlive the call). The target ratio uses bytes read; the figure by bytes written is shown beside it. The segment files were just written, so the merge reads from the page cache.".into(),
        "Latency p50/p99: each get of a separate random sample timed with `Instant`; the throughput figure is a separate untimed loop over random existing keys. Each of the two loops stops after 6 s (marked time-capped). MB = 10^6 bytes.".into(),
        "The machine is shared with other builds; the load averages above show how busy it was.".into(),
    ];
    notes.extend(run.notes.iter().cloned());
    for e in &run.engines {
        for n in &e.notes {
            notes.push(format!("{}: {n}", e.kind));
        }
    }
    for n in notes {
        let _ = writeln!(out, "- {n}");
    }
    out
}

/// UTC wall-clock time as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// " (CPU x)" for a figure that has its process CPU time, else nothing.
fn cpu(c: Option<std::time::Duration>) -> String {
    c.map(|c| format!(" (CPU {})", dur(c))).unwrap_or_default()
}
