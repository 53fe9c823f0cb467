//! The summary in three forms: CSV and JSON for tools, markdown for docs/benchmarks.md.

use std::fmt::Write as _;

use crate::results::MemRow;
use crate::summary::{Cell, Row};

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map(|x| format!("{x:.decimals$}")).unwrap_or_default()
}

fn rps_text(v: f64) -> String {
    // Thousands separators make six-digit columns readable.
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn md_opt(v: Option<f64>, decimals: usize) -> String {
    v.map(|x| format!("{x:.decimals$}"))
        .unwrap_or_else(|| "–".into())
}

/// `summary.csv`: one line per row, both servers' medians and the ratios.
pub fn summary_csv(rows: &[Row]) -> String {
    let mut s = String::from(
        "section,variant,test,pipeline,runs,base_rps,keel_rps,rps_ratio,base_p50_ms,keel_p50_ms,\
         base_p99_ms,keel_p99_ms,base_cpu_us_per_req,keel_cpu_us_per_req,base_instr_per_req,\
         keel_instr_per_req,method\n",
    );
    for r in rows {
        let g = |c: &Option<Cell>, f: fn(&Cell) -> Option<f64>, d| opt(c.as_ref().and_then(f), d);
        let runs = r
            .base
            .as_ref()
            .or(r.keel.as_ref())
            .map(|c| c.runs)
            .unwrap_or(0);
        let method = r
            .keel
            .as_ref()
            .or(r.base.as_ref())
            .map(|c| c.method.as_str())
            .unwrap_or("");
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.section,
            r.variant,
            r.test,
            r.pipeline,
            runs,
            g(&r.base, |c| Some(c.rps), 0),
            g(&r.keel, |c| Some(c.rps), 0),
            opt(r.rps_ratio(), 3),
            g(&r.base, |c| Some(c.p50_ms), 3),
            g(&r.keel, |c| Some(c.p50_ms), 3),
            g(&r.base, |c| Some(c.p99_ms), 3),
            g(&r.keel, |c| Some(c.p99_ms), 3),
            g(&r.base, |c| c.cpu_us_per_req, 3),
            g(&r.keel, |c| c.cpu_us_per_req, 3),
            g(&r.base, |c| c.instr_per_req, 0),
            g(&r.keel, |c| c.instr_per_req, 0),
            method,
        );
    }
    s
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x}"),
        _ => "null".into(),
    }
}

fn json_cell(c: &Option<Cell>) -> String {
    match c {
        None => "null".into(),
        Some(c) => format!(
            "{{\"runs\":{},\"rps\":{},\"p50_ms\":{},\"p99_ms\":{},\"cpu_us_per_req\":{},\"instr_per_req\":{},\"method\":{}}}",
            c.runs,
            json_num(Some(c.rps)),
            json_num(Some(c.p50_ms)),
            json_num(Some(c.p99_ms)),
            json_num(c.cpu_us_per_req),
            json_num(c.instr_per_req),
            json_str(&c.method)
        ),
    }
}

/// `summary.json`: the rows and the memory figures.
pub fn summary_json(rows: &[Row], mem: &[MemRow]) -> String {
    let rows: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"section\":{},\"variant\":{},\"test\":{},\"pipeline\":{},\"base\":{},\"keel\":{},\"rps_ratio\":{}}}",
                json_str(&r.section),
                json_str(&r.variant),
                json_str(&r.test),
                r.pipeline,
                json_cell(&r.base),
                json_cell(&r.keel),
                json_num(r.rps_ratio())
            )
        })
        .collect();
    let mem: Vec<String> = mem
        .iter()
        .map(|m| {
            format!(
                "{{\"server\":{},\"engine\":{},\"keys\":{},\"rss_empty_kb\":{},\"rss_loaded_kb\":{},\"bytes_per_key\":{}}}",
                json_str(&m.server),
                json_str(&m.engine),
                m.keys,
                m.rss_empty_kb,
                m.rss_loaded_kb,
                json_num(Some(m.bytes_per_key()))
            )
        })
        .collect();
    format!(
        "{{\"rows\":[\n{}\n],\"memory\":[\n{}\n]}}\n",
        rows.join(",\n"),
        mem.join(",\n")
    )
}

fn upper(test: &str) -> String {
    test.to_ascii_uppercase()
}

/// The markdown report: machine notes (given as markdown), then one table per section.
pub fn markdown(rows: &[Row], mem: &[MemRow], machine: &str, png_name: &str) -> String {
    let mut s = String::new();
    s.push_str("## Machine and run\n\n");
    s.push_str(machine.trim_end());
    s.push_str("\n\n");

    let main: Vec<&Row> = rows.iter().filter(|r| r.section == "main").collect();
    if !main.is_empty() {
        let runs = main
            .iter()
            .filter_map(|r| r.base.as_ref().map(|c| c.runs))
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            s,
            "## Throughput, latency and CPU per request\n\nRedis and keel's memory engine, both \
             without persistence (`--save '' --appendonly no` each). Medians over {runs} run(s) per cell; \
             latencies in ms; CPU = server user+kernel time per request from /proc/PID/stat \
             (10 ms ticks).\n"
        );
        s.push_str(
            "| test | P | redis rps | keel rps | keel/redis | redis p50 | keel p50 | redis p99 | keel p99 | redis CPU µs/req | keel CPU µs/req | CPU keel/redis |\n\
             |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        for r in &main {
            let (Some(a), Some(b)) = (&r.base, &r.keel) else {
                continue;
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | **{}** | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {} |",
                upper(&r.test),
                r.pipeline,
                rps_text(a.rps),
                rps_text(b.rps),
                md_opt(r.rps_ratio(), 2),
                a.p50_ms,
                b.p50_ms,
                a.p99_ms,
                b.p99_ms,
                md_opt(a.cpu_us_per_req, 2),
                md_opt(b.cpu_us_per_req, 2),
                md_opt(r.cpu_ratio(), 2),
            );
        }
        let _ = writeln!(s, "\n![throughput and p99, keel vs redis]({png_name})\n");
    }

    let instr: Vec<&Row> = rows.iter().filter(|r| r.section == "instr").collect();
    if !instr.is_empty() {
        let method = instr
            .iter()
            .find_map(|r| r.keel.as_ref().map(|c| c.method.clone()))
            .unwrap_or_default();
        let what = if method == "callgrind" {
            "user-space instructions counted by valgrind's callgrind between `callgrind_control \
             -z` and `-d` around the requests (kernel instructions are not counted; the server \
             runs about 50x slower, so the latencies are not comparable to the table above)"
        } else {
            "instructions counted by the method named"
        };
        let _ = writeln!(
            s,
            "## Instructions per request\n\nServer {what}. Method: {method}.\n"
        );
        s.push_str(
            "| test | P | redis instr/req | keel instr/req | keel/redis |\n|---|--:|--:|--:|--:|\n",
        );
        for r in &instr {
            let (Some(a), Some(b)) = (&r.base, &r.keel) else {
                continue;
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | **{}** |",
                upper(&r.test),
                r.pipeline,
                md_opt(a.instr_per_req, 0),
                md_opt(b.instr_per_req, 0),
                md_opt(r.instr_ratio(), 2),
            );
        }
        s.push('\n');
    }

    let persist: Vec<&Row> = rows.iter().filter(|r| r.section == "persist").collect();
    if !persist.is_empty() {
        s.push_str(
            "## Persistence\n\n| pair | test | P | redis rps | keel rps | keel/redis | redis p99 | keel p99 | redis CPU µs/req | keel CPU µs/req |\n\
             |---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        pair_rows(&mut s, &persist, |r| variant_label(&r.variant));
    }

    let engines: Vec<&Row> = rows.iter().filter(|r| r.section == "engines").collect();
    if !engines.is_empty() {
        s.push_str(
            "## keel's engines against its memory engine\n\nBoth keel, both with the WAL \
             everysec, run in turns (memory, then the other engine) like the pairs above.\n\n\
             | engine | test | P | memory rps | engine rps | engine/memory | memory p99 | engine p99 | memory CPU µs/req | engine CPU µs/req |\n\
             |---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        pair_rows(&mut s, &engines, |r| &r.variant);
    }

    if !mem.is_empty() {
        let redis_bpk = mem
            .iter()
            .find(|m| m.server == "redis")
            .map(MemRow::bytes_per_key);
        s.push_str(
            "## Memory\n\nVmRSS after start and after loading distinct keys `key:<n>` with 64-byte \
             values through `redis-cli --pipe`.\n\n\
             | server | engine | keys | RSS empty MiB | RSS loaded MiB | bytes/key | vs redis |\n\
             |---|---|--:|--:|--:|--:|--:|\n",
        );
        for m in mem {
            let vs = redis_bpk
                .filter(|b| *b > 0.0)
                .map(|b| m.bytes_per_key() / b);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {} |",
                m.server,
                m.engine,
                rps_text(m.keys as f64),
                m.rss_empty_kb as f64 / 1024.0,
                m.rss_loaded_kb as f64 / 1024.0,
                m.bytes_per_key(),
                md_opt(vs, 2),
            );
        }
        s.push('\n');
    }
    s
}

/// The lines of a table of pairs (the persistence and engines sections), each row named
/// by `label`, and the blank line after them.
fn pair_rows(s: &mut String, rows: &[&Row], label: impl Fn(&Row) -> &str) {
    for r in rows {
        let (Some(a), Some(b)) = (&r.base, &r.keel) else {
            continue;
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | **{}** | {:.3} | {:.3} | {} | {} |",
            label(r),
            upper(&r.test),
            r.pipeline,
            rps_text(a.rps),
            rps_text(b.rps),
            md_opt(r.rps_ratio(), 2),
            a.p99_ms,
            b.p99_ms,
            md_opt(a.cpu_us_per_req, 2),
            md_opt(b.cpu_us_per_req, 2),
        );
    }
    s.push('\n');
}

fn variant_label(v: &str) -> &str {
    match v {
        "none" => "redis no persistence / keel memory, WAL no fsync",
        "everysec" => "redis AOF everysec / keel memory, WAL everysec",
        "always" => "redis AOF always / keel memory, WAL always",
        "bitcask" => "redis AOF everysec / keel bitcask, WAL everysec",
        "lsm" => "redis AOF everysec / keel lsm, WAL everysec",
        other => other,
    }
}
