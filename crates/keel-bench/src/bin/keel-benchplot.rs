//! keel-benchplot: turns `bench/compare.sh`'s raw results into summary.csv, summary.json,
//! report.md and keel-vs-redis.png in the output directory.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use keel_bench::{plot, report, results, summary, BenchError};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "keel-benchplot",
    about = "Summarise and plot bench/compare.sh results"
)]
struct Args {
    /// raw.csv written by bench/compare.sh (one row per redis-benchmark run).
    #[arg(long)]
    raw: PathBuf,
    /// mem.csv (RSS per server configuration), optional.
    #[arg(long)]
    mem: Option<PathBuf>,
    /// Markdown notes about the machine and run, put at the top of the report.
    #[arg(long)]
    machine: Option<PathBuf>,
    /// TTF font for the plot's text (default: DejaVu Sans or Liberation Sans).
    #[arg(long)]
    font: Option<PathBuf>,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
}

const PNG_NAME: &str = "keel-vs-redis.png";

fn run(args: &Args) -> Result<(), BenchError> {
    let runs = results::parse_runs(&results::read(&args.raw)?, &args.raw)?;
    let mem = match &args.mem {
        Some(p) if p.exists() => results::parse_mem(&results::read(p)?, p)?,
        _ => Vec::new(),
    };
    let machine = match &args.machine {
        Some(p) => results::read(p)?,
        None => String::new(),
    };
    let rows = summary::summarize(&runs);
    std::fs::create_dir_all(&args.out).map_err(|source| BenchError::Io {
        op: "create",
        path: args.out.clone(),
        source,
    })?;
    results::write(&args.out.join("summary.csv"), &report::summary_csv(&rows))?;
    results::write(
        &args.out.join("summary.json"),
        &report::summary_json(&rows, &mem),
    )?;
    results::write(
        &args.out.join("report.md"),
        &report::markdown(&rows, &mem, &machine, PNG_NAME),
    )?;
    if rows.iter().any(|r| r.section == "main") {
        let text = plot::register_font(args.font.as_deref());
        if !text {
            eprintln!("keel-benchplot: no font could be loaded; the plot has no text");
        }
        plot::render(&rows, &args.out.join(PNG_NAME), text)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    keel_bench::exit_code("keel-benchplot", run(&Args::parse()))
}
