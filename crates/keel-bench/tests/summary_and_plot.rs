//! keel-bench: parsing a sample of compare.sh's CSVs, the medians and ratios taken from
//! it, the markdown/JSON it produces, and the PNG rendered from it.

use std::path::Path;

use keel_bench::{plot, report, results, summary};

const RAW: &str = "\
section,variant,server,test,pipeline,round,requests,rps,avg_ms,p50_ms,p95_ms,p99_ms,max_ms,cpu_user_s,cpu_sys_s,instructions,method
main,none,redis,set,1,1,100000,100000.00,0.4,0.300,0.5,0.900,2.0,0.30,0.50,,proc-stat
main,none,keel,set,1,1,100000,90000.00,0.4,0.310,0.5,1.100,2.0,0.40,0.60,,proc-stat
main,none,redis,set,1,2,100000,120000.00,0.4,0.280,0.5,0.700,2.0,0.30,0.40,,proc-stat
main,none,keel,set,1,2,100000,150000.00,0.4,0.290,0.5,0.800,2.0,0.35,0.45,,proc-stat
main,none,redis,set,1,3,100000,80000.00,0.4,0.350,0.5,1.500,2.0,0.30,0.60,,proc-stat
main,none,keel,set,1,3,100000,120000.00,0.4,0.300,0.5,0.900,2.0,0.50,0.50,,proc-stat
main,none,redis,set,16,1,400000,900000.00,0.4,0.700,0.5,1.300,2.0,0.50,0.30,,proc-stat
main,none,keel,set,16,1,400000,1000000.00,0.4,0.600,0.5,1.200,2.0,0.50,0.30,,proc-stat
main,none,redis,get,1,1,100000,110000.00,0.4,0.250,0.5,0.600,2.0,0.30,0.40,,proc-stat
main,none,keel,get,1,1,100000,100000.00,0.4,0.260,0.5,0.650,2.0,0.30,0.40,,proc-stat
main,none,redis,get,16,1,400000,1200000.00,0.4,0.500,0.5,0.900,2.0,0.40,0.20,,proc-stat
main,none,keel,get,16,1,400000,1500000.00,0.4,0.450,0.5,0.800,2.0,0.40,0.20,,proc-stat
instr,none,redis,set,1,1,20000,12000,1,1,1,1,1,,,135000000,callgrind
instr,none,keel,set,1,1,20000,11000,1,1,1,1,1,,,100000000,callgrind
persist,always,redis,set,1,1,100000,5000,1,1,1,12.5,20,1.0,2.0,,proc-stat
persist,always,keel,set,1,1,100000,6000,1,1,1,10.0,20,1.0,1.5,,proc-stat
engines,bitcask,keel-memory,get,16,1,400000,1000000.00,0.4,0.5,0.5,1.000,2.0,0.30,0.10,,proc-stat
engines,bitcask,keel-bitcask,get,16,1,400000,900000.00,0.4,0.5,0.5,1.200,2.0,0.40,0.10,,proc-stat
engines,bitcask,keel-memory,get,16,2,400000,800000.00,0.4,0.5,0.5,1.000,2.0,0.30,0.10,,proc-stat
engines,bitcask,keel-bitcask,get,16,2,400000,700000.00,0.4,0.5,0.5,1.200,2.0,0.40,0.10,,proc-stat
engines,bitcask,keel,get,16,1,400000,1.00,0.4,0.5,0.5,1.200,2.0,0.40,0.10,,proc-stat
";

const MEM: &str = "\
server,engine,keys,rss_empty_kb,rss_loaded_kb,bytes_per_key
redis,none,1000000,8192,98304,92.3
keel,memory,1000000,4096,83968,81.8
";

fn rows() -> Vec<summary::Row> {
    let runs = results::parse_runs(RAW, Path::new("raw.csv")).expect("sample parses");
    assert_eq!(runs.len(), 21);
    summary::summarize(&runs)
}

fn row<'a>(rows: &'a [summary::Row], section: &str, test: &str, p: u32) -> &'a summary::Row {
    rows.iter()
        .find(|r| r.section == section && r.test == test && r.pipeline == p)
        .expect("row present")
}

#[test]
fn medians_and_ratios_come_from_the_runs() {
    let rows = rows();
    assert_eq!(rows.len(), 7);
    let set1 = row(&rows, "main", "set", 1);
    let (redis, keel) = (set1.base.as_ref().unwrap(), set1.keel.as_ref().unwrap());
    assert_eq!(redis.runs, 3);
    assert_eq!(redis.rps, 100000.0);
    assert_eq!(keel.rps, 120000.0);
    assert_eq!(set1.rps_ratio(), Some(1.2));
    assert_eq!(redis.p99_ms, 0.9);
    assert_eq!(keel.p50_ms, 0.3);
    // CPU per request: medians of (user+sys)/requests = {8, 7, 9} µs and {10, 8, 10} µs.
    assert!((redis.cpu_us_per_req.unwrap() - 8.0).abs() < 1e-9);
    assert!((keel.cpu_us_per_req.unwrap() - 10.0).abs() < 1e-9);
    let instr = row(&rows, "instr", "set", 1);
    assert_eq!(instr.base.as_ref().unwrap().instr_per_req, Some(6750.0));
    assert_eq!(instr.keel.as_ref().unwrap().instr_per_req, Some(5000.0));
    assert!(instr.base.as_ref().unwrap().cpu_us_per_req.is_none());
}

#[test]
fn engines_pair_an_engine_with_the_memory_engine() {
    let rows = rows();
    let get = row(&rows, "engines", "get", 16);
    let (memory, bitcask) = (get.base.as_ref().unwrap(), get.keel.as_ref().unwrap());
    // Medians of {1.0M, 0.8M} and {0.9M, 0.7M}; the stray `keel` run is not bitcask's.
    assert_eq!((memory.runs, bitcask.runs), (2, 2));
    assert_eq!(memory.rps, 900000.0);
    assert_eq!(bitcask.rps, 800000.0);
    assert!((get.rps_ratio().unwrap() - 800.0 / 900.0).abs() < 1e-12);
    let md = report::markdown(&rows, &[], "- CPU: test", "plot.png");
    assert!(
        md.contains(
            "| bitcask | GET | 16 | 900,000 | 800,000 | **0.89** | 1.000 | 1.200 | 1.00 | 1.25 |"
        ),
        "{md}"
    );
}

#[test]
fn median_of_even_count_is_mean_of_middle_pair() {
    assert_eq!(summary::median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    assert_eq!(summary::median(&[]), None);
}

#[test]
fn malformed_rows_are_reported_with_line_numbers() {
    let bad = RAW.replacen("100000.00", "fast", 1);
    let err = results::parse_runs(&bad, Path::new("raw.csv")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("line 2") && text.contains("rps"), "{text}");
    let no_header = "section,server\nmain,redis\n";
    assert!(results::parse_runs(no_header, Path::new("x")).is_err());
}

#[test]
fn reports_name_every_section() {
    let rows = rows();
    let mem = results::parse_mem(MEM, Path::new("mem.csv")).expect("mem parses");
    assert!((mem[0].bytes_per_key() - 92.274688).abs() < 1e-9);
    let md = report::markdown(&rows, &mem, "- CPU: test", "plot.png");
    assert!(
        md.contains("| SET | 1 | 100,000 | 120,000 | **1.20** |"),
        "{md}"
    );
    assert!(md.contains("| SET | 1 | 6750 | 5000 | **0.74** |"), "{md}");
    assert!(md.contains("keel memory, WAL always"), "{md}");
    assert!(md.contains("| keel | memory | 1,000,000 |"), "{md}");
    assert!(md.contains("| 8.00 | 10.00 | 1.25 |"), "{md}");
    let csv = report::summary_csv(&rows);
    assert_eq!(csv.lines().count(), 1 + rows.len());
    let json = report::summary_json(&rows, &mem);
    assert!(json.contains("\"rps_ratio\":1.2"), "{json}");
    assert!(json.contains("\"bytes_per_key\":92.274688"), "{json}");
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.get(..8)? != SIG || bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
    let h = u32::from_be_bytes(bytes.get(20..24)?.try_into().ok()?);
    Some((w, h))
}

#[test]
fn renders_a_png_of_the_expected_size() {
    let rows = rows();
    let dir = tempfile::tempdir().expect("tempdir");
    let text = plot::register_font(None);
    for (name, with_text) in [("text.png", text), ("plain.png", false)] {
        let path = dir.path().join(name);
        plot::render(&rows, &path, with_text).expect("renders");
        let bytes = std::fs::read(&path).expect("png written");
        assert_eq!(
            png_size(&bytes),
            Some((plot::WIDTH, plot::HEIGHT)),
            "{name}"
        );
        assert!(bytes.len() > 1000, "{name}: {} bytes", bytes.len());
    }
}

#[test]
fn nothing_to_plot_is_an_error() {
    let runs = results::parse_runs(RAW, Path::new("raw.csv")).expect("parses");
    let only_instr: Vec<_> = runs.into_iter().filter(|r| r.section == "instr").collect();
    let rows = summary::summarize(&only_instr);
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(plot::render(&rows, &dir.path().join("x.png"), false).is_err());
}
