//! keel-flame: turns `perf script` output (of `perf record -g`) into a flame graph SVG,
//! optionally the folded stacks, and prints the functions with the most samples of their
//! own. `bench/flame.sh` runs it; see `keel_bench::flame`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use keel_bench::flame::{self, FoldOptions, SvgOptions};
use keel_bench::results;
use keel_bench::BenchError;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(name = "keel-flame", about = "Flame graph SVG from perf script output")]
struct Args {
    /// `perf script` output to read (default: standard input).
    input: Option<PathBuf>,
    /// The SVG to write.
    #[arg(long)]
    out: PathBuf,
    /// Also write the folded stacks ("frame;frame;frame count" per line) here.
    #[arg(long)]
    folded: Option<PathBuf>,
    /// The graph's heading.
    #[arg(long, default_value = "keel flame graph")]
    title: String,
    /// Leave out frames under this share of the samples, in percent.
    #[arg(long, default_value_t = 0.1)]
    min_width: f64,
    /// How many functions to list by their own samples (0: none).
    #[arg(long, default_value_t = 25)]
    top: usize,
    /// Keep inlined frames of the standard library (core::, alloc::, std::).
    #[arg(long)]
    keep_std_inlines: bool,
}

fn run(args: &Args) -> Result<(), BenchError> {
    let (text, source) = match &args.input {
        Some(p) => (results::read(p)?, p.clone()),
        None => {
            let mut s = String::new();
            let stdin = PathBuf::from("<stdin>");
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|source| BenchError::Io {
                    op: "read",
                    path: stdin.clone(),
                    source,
                })?;
            (s, stdin)
        }
    };
    let opts = FoldOptions {
        keep_std_inlines: args.keep_std_inlines,
    };
    let folded = flame::fold(&text, &source, opts)?;
    let svg_opts = SvgOptions {
        title: args.title.clone(),
        min_width_pct: args.min_width,
        ..SvgOptions::default()
    };
    results::write(&args.out, &flame::svg(&folded, &svg_opts))?;
    if let Some(p) = &args.folded {
        results::write(p, &flame::folded_text(&folded))?;
    }
    let total: u64 = folded.values().sum();
    let share = |n: u64| 100.0 * n as f64 / total as f64;
    println!("samples: {total}; by the layer of the innermost frame:");
    for (layer, n) in flame::by_layer(&folded) {
        println!("{:6.2}%  {n:7}  {layer}", share(n));
    }
    if args.top > 0 {
        println!("functions by their own samples:");
        for (name, n) in flame::top_self(&folded, args.top) {
            println!("{:6.2}%  {n:7}  {name}", share(n));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    keel_bench::exit_code("keel-flame", run(&Args::parse()))
}
