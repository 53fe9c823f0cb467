//! Typed verbs over gRPC: `kv set|get|del|scan|txn` and `metrics`.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::ffi::OsStringExt;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use keel_client::grpc::{GetResult, GrpcClient, GrpcOptions, Transaction};
use keel_client::ClientError;
use tokio::io::AsyncBufReadExt;

use crate::args::Args;
use crate::format::{repr, OutputMode};
use crate::split::split_args;
use crate::{output, progress};

/// `keel-cli kv ...`: typed key/value operations over gRPC.
#[derive(Debug, Parser)]
#[command(name = "keel-cli kv", no_binary_name = true)]
struct KvCli {
    #[command(subcommand)]
    cmd: KvCmd,
}

#[derive(Debug, Subcommand)]
enum KvCmd {
    /// Write key=value pairs atomically.
    Set {
        /// Pairs as key=value (split at the first '=').
        #[arg(required = true)]
        pairs: Vec<OsString>,
        /// Time to live for every key: 10s, 500ms, 2m, 1h (plain number: seconds).
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Read keys at one snapshot.
    Get {
        /// Keys to read.
        #[arg(required = true)]
        keys: Vec<OsString>,
    },
    /// Delete keys atomically.
    Del {
        /// Keys to delete.
        #[arg(required = true)]
        keys: Vec<OsString>,
    },
    /// List string keys and values in key order.
    Scan {
        /// Only keys starting with this prefix.
        #[arg(long)]
        prefix: Option<OsString>,
        /// Stop after this many entries.
        #[arg(long)]
        limit: Option<u64>,
        /// Entries fetched per call.
        #[arg(long, default_value_t = 1000)]
        page_size: u32,
    },
    /// Run a transaction: ops from stdin (`put k v`, `del k`, `get k`), then commit.
    Txn,
}

/// Parses `10s`, `500ms`, `2m`, `1h`, or a plain number of seconds.
pub fn parse_ttl(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

fn bytes(o: &OsString) -> Vec<u8> {
    o.clone().into_vec()
}

fn mode(args: &Args) -> OutputMode {
    if args.raw {
        OutputMode::Raw
    } else if args.no_raw || std::io::stdout().is_terminal() {
        OutputMode::Tty
    } else {
        OutputMode::Raw
    }
}

async fn connect(args: &Args) -> Result<GrpcClient, ExitCode> {
    let mut opts = GrpcOptions::new(args.host.clone(), args.grpc_port());
    opts.password = crate::password(args);
    GrpcClient::connect(opts).await.map_err(|e| {
        eprintln!(
            "Could not connect to keel gRPC at {}:{}: {}",
            args.host,
            args.grpc_port(),
            root_cause(&e)
        );
        ExitCode::FAILURE
    })
}

/// The innermost error's text ("Connection refused"), what a user needs to see.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let s = cur.to_string();
    match s.find(" (os error") {
        Some(i) => s.get(..i).unwrap_or(&s).to_string(),
        None => s,
    }
}

fn fail(e: ClientError) -> ExitCode {
    eprintln!("{e}");
    ExitCode::FAILURE
}

fn print_results(results: &[GetResult], mode: OutputMode) {
    let mut out = Vec::new();
    for r in results {
        match mode {
            OutputMode::Tty => {
                repr(&r.key, &mut out);
                out.extend_from_slice(b" => ");
                if r.found {
                    repr(&r.value, &mut out);
                } else {
                    out.extend_from_slice(b"(nil)");
                }
            }
            OutputMode::Raw => out.extend_from_slice(&r.value),
        }
        out.push(b'\n');
    }
    let _ = output::emit(&out);
}

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// The entries and TTL of `kv set`, or the usage error.
fn set_entries(
    pairs: &[OsString],
    ttl: Option<&str>,
) -> Result<(Entries, Option<Duration>), String> {
    let ttl = match ttl {
        None => None,
        Some(t) => Some(
            parse_ttl(t)
                .ok_or_else(|| format!("invalid --ttl {t:?}: use e.g. 10s, 500ms, 2m, 1h"))?,
        ),
    };
    let mut entries = Vec::with_capacity(pairs.len());
    for p in pairs {
        let p = bytes(p);
        let Some(eq) = p.iter().position(|&c| c == b'=') else {
            return Err(format!(
                "expected key=value, got {:?}",
                String::from_utf8_lossy(&p)
            ));
        };
        let (k, v) = p.split_at(eq);
        entries.push((k.to_vec(), v.get(1..).unwrap_or_default().to_vec()));
    }
    Ok((entries, ttl))
}

/// Runs `keel-cli metrics`.
pub async fn metrics(args: &Args) -> ExitCode {
    let client = match connect(args).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.metrics().await {
        Ok(m) => {
            let mut text = format!(
                "keys:{}\nvalue_bytes:{}\ncommands:{}\n# command counts\n",
                m.keys, m.value_bytes, m.commands
            );
            let mut counts: Vec<_> = m.command_counts.into_iter().collect();
            counts.sort();
            for (name, n) in counts {
                text.push_str(&format!("{name}:{n}\n"));
            }
            let _ = output::emit(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// Runs `keel-cli kv <verb> ...` with the words after `kv`.
pub async fn run(args: &Args, words: &[OsString]) -> ExitCode {
    let cli = match KvCli::try_parse_from(words) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // Validate everything before connecting, so usage errors never wait on the network.
    let set_plan = match &cli.cmd {
        KvCmd::Set { pairs, ttl } => match set_entries(pairs, ttl.as_deref()) {
            Ok(plan) => Some(plan),
            Err(why) => {
                eprintln!("{why}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    let client = match connect(args).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let db = args.db;
    let mode = mode(args);
    match cli.cmd {
        KvCmd::Set { .. } => {
            let Some((entries, ttl)) = set_plan else {
                return ExitCode::FAILURE;
            };
            match client.set(db, entries, ttl).await {
                Ok(_) => {
                    let _ = output::emit(b"OK\n");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        KvCmd::Get { keys } => match client.get(db, keys.iter().map(bytes).collect()).await {
            Ok(r) => {
                print_results(&r, mode);
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        KvCmd::Del { keys } => match client.delete(db, keys.iter().map(bytes).collect()).await {
            Ok(n) => {
                let text = match mode {
                    OutputMode::Tty => format!("(integer) {n}\n"),
                    OutputMode::Raw => format!("{n}\n"),
                };
                let _ = output::emit(text.as_bytes());
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        KvCmd::Scan {
            prefix,
            limit,
            page_size,
        } => {
            scan(
                args,
                &client,
                prefix.as_ref().map(bytes),
                limit,
                page_size,
                mode,
            )
            .await
        }
        KvCmd::Txn => txn(&client, db, mode).await,
    }
}

async fn scan(
    args: &Args,
    client: &GrpcClient,
    prefix: Option<Vec<u8>>,
    limit: Option<u64>,
    page_size: u32,
    mode: OutputMode,
) -> ExitCode {
    let mut bar = progress::items_spinner("entries", args.progress);
    let mut token = String::new();
    let mut printed = 0u64;
    loop {
        let left = limit.map(|l| l.saturating_sub(printed));
        if left == Some(0) {
            break;
        }
        let page = left.map_or(page_size, |l| {
            u32::try_from(l).unwrap_or(u32::MAX).min(page_size)
        });
        let resp = match client.scan_page(args.db, prefix.clone(), page, token).await {
            Ok(r) => r,
            Err(e) => {
                bar.abandon();
                return fail(e);
            }
        };
        let mut out = Vec::new();
        for e in &resp.entries {
            if limit.is_some_and(|l| printed >= l) {
                break;
            }
            match mode {
                OutputMode::Tty => {
                    repr(&e.key, &mut out);
                    out.extend_from_slice(b" => ");
                    repr(&e.value, &mut out);
                }
                OutputMode::Raw => {
                    out.extend_from_slice(&e.key);
                    out.push(b'\t');
                    out.extend_from_slice(&e.value);
                }
            }
            out.push(b'\n');
            printed += 1;
        }
        bar.set_position(printed);
        if bar.suspend(|| output::emit(&out)).is_err() {
            // stdout closed (| head): stop quietly.
            bar.abandon();
            return ExitCode::SUCCESS;
        }
        if resp.next_page_token.is_empty() {
            break;
        }
        token = resp.next_page_token;
    }
    bar.finish();
    ExitCode::SUCCESS
}

/// One parsed line of a `kv txn` script.
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Del(Vec<Vec<u8>>),
    Get(Vec<Vec<u8>>),
}

fn parse_op(line: &str) -> Result<Option<Op>, String> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let words = split_args(trimmed.as_bytes()).ok_or("unbalanced quotes")?;
    let mut it = words.into_iter();
    let verb = it
        .next()
        .map(|v| v.to_ascii_lowercase())
        .unwrap_or_default();
    let rest: Vec<Vec<u8>> = it.collect();
    match (verb.as_slice(), rest.as_slice()) {
        (b"put" | b"set", [k, v]) => Ok(Some(Op::Put(k.clone(), v.clone()))),
        (b"del" | b"delete", ks) if !ks.is_empty() => Ok(Some(Op::Del(ks.to_vec()))),
        (b"get", ks) if !ks.is_empty() => Ok(Some(Op::Get(ks.to_vec()))),
        _ => Err("expected `put <key> <value>`, `del <key>...` or `get <key>...`".into()),
    }
}

/// Begins first, then applies each stdin line as it arrives (a `get` sees the snapshot
/// plus the writes before it), and commits at end of input.
async fn txn(client: &GrpcClient, db: u32, mode: OutputMode) -> ExitCode {
    let mut t = match client.begin(db).await {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut n = 0usize;
    loop {
        let line = match lines.next_line().await {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => {
                let _ = t.rollback().await;
                eprintln!("reading stdin: {e}");
                return ExitCode::FAILURE;
            }
        };
        n += 1;
        let op = match parse_op(&line) {
            Ok(Some(op)) => op,
            Ok(None) => continue,
            Err(why) => {
                let _ = t.rollback().await;
                eprintln!("line {n}: {why}: {line:?} (rolled back)");
                return ExitCode::from(2);
            }
        };
        if let Err(e) = apply(&mut t, op, mode).await {
            let _ = t.rollback().await;
            return fail(e);
        }
    }
    match t.commit().await {
        Ok(n) => {
            let _ = output::emit(format!("OK ({n} written)\n").as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

async fn apply(t: &mut Transaction, op: Op, mode: OutputMode) -> Result<(), ClientError> {
    match op {
        Op::Put(k, v) => t.put(vec![(k, v)]).await.map(|_| ()),
        Op::Del(ks) => t.delete(ks).await.map(|_| ()),
        Op::Get(ks) => {
            let r = t.get(ks).await?;
            print_results(&r, mode);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_ttl("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_ttl("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_ttl("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_ttl("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("0s"), None);
        assert_eq!(parse_ttl("5d"), None);
        assert_eq!(parse_ttl("x"), None);
    }

    #[test]
    fn txn_lines() {
        assert!(
            matches!(parse_op("put k 'a b'"), Ok(Some(Op::Put(k, v))) if k == b"k" && v == b"a b")
        );
        assert!(matches!(parse_op("DEL a b"), Ok(Some(Op::Del(ks))) if ks.len() == 2));
        assert!(matches!(parse_op("  # note"), Ok(None)));
        assert!(parse_op("put onlykey").is_err());
        assert!(parse_op("frob x").is_err());
    }
}
