#!/usr/bin/env python3
"""Turns the per-file results of compat/run-redis-tests.sh into docs/compatibility.md.

argv: summary.tsv, log directory, Redis tag, keel engine, runtest flags. The hand-written
analysis in compat/analysis.md (if present) is appended verbatim.
"""

import collections
import datetime
import os
import re
import subprocess
import sys


def git(*args):
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def failures(log):
    """(test name, first message line) of every [err] in a runtest log."""
    out = []
    lines = open(log, errors="replace").read().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^\[err\]: (.*) in tests/(\S+)\.tcl$", line)
        if not m:
            continue
        # The harness cuts the first 10 characters of a non-assertion error ("assertion:" is
        # 10 long), so the raw error on a following line is preferred when there is one.
        follow = []
        for nxt in lines[i + 1:i + 6]:
            if nxt.startswith("["):
                break
            if nxt.strip():
                follow.append(nxt.strip())
        raw = [l for l in follow if re.match(r"^(ERR|WRONGTYPE|NOSCRIPT|EXECABORT|I/O|-)", l)]
        msg = raw[0] if raw else (follow[0] if follow else "")
        # Control bytes a test compared (a NUL, say) would make the report binary.
        msg = "".join(c if c.isprintable() else "\\x%02x" % ord(c) for c in msg)
        out.append((m.group(1), msg))
    return out


def category(msg):
    m = re.search(r"unknown command '([^']+)'", msg, re.I)
    if m:
        return f"missing command: {m.group(1).upper()}"
    m = re.search(r"unknown subcommand '([^']+)'", msg, re.I)
    if m:
        return f"missing subcommand: {m.group(1).upper()}"
    if re.search(r"to be less than '40'", msg):
        return "random-member distribution (chi-square above 40)"
    if re.search(r"blocked client|wait_for_blocked|Timed out waiting", msg, re.I):
        return "blocking commands / waits for blocked clients"
    if re.search(r"I/O error|connection (reset|refused|closed)|broken pipe|eof", msg, re.I):
        return "connection dropped / I/O error"
    if re.search(r"syntax error|wrong number of arguments", msg, re.I):
        return "argument parsing (syntax / arity)"
    if re.search(r"Expected .* (to equal|to match|eq)|assertion", msg, re.I):
        return "wrong reply (assertion)"
    return "other: " + (msg[:60] if msg else "no message")


def main():
    summary, logdir, tag, engine, flags = sys.argv[1:6]
    rows = [l.rstrip("\n").split("\t") for l in open(summary) if l.strip()]
    # KEEL_COMMIT names the measured commit when the report is regenerated from old logs.
    commit = os.environ.get("KEEL_COMMIT") or git("rev-parse", "--short=12", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    if not os.environ.get("KEEL_COMMIT") and dirty and dirty != "unknown":
        commit += " (with uncommitted changes)"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    flags = flags.replace(root, "")
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    p = print
    p("# Redis compatibility: Redis's own test suite against keel")
    p()
    p(f"Measured {today} on keel commit `{commit}` (engine `{engine}`), with the test suite of")
    p(f"Redis **{tag}** (git tag `{tag}` of the Redis repository: `runtest` and `tests/` only, kept")
    p("outside this repository) run in external-server mode by `compat/run-redis-tests.sh`.")
    p("Regenerate this file with that script; the numbers below are real measurements.")
    p()
    tot_ok = tot_err = tot_skip = tot_ign = 0
    p("| file | passed | failed | skipped (skip.txt) | excluded by tag | pass rate | run |")
    p("|---|---:|---:|---:|---:|---:|---|")
    for f, status, ok, err, skip, ign in rows:
        ok, err, skip, ign = int(ok), int(err), int(skip), int(ign)
        if status == "absent":
            p(f"| {f} | - | - | - | - | - | not in {tag} |")
            continue
        tot_ok += ok
        tot_err += err
        tot_skip += skip
        tot_ign += ign
        ran = ok + err
        rate = f"{100.0 * ok / ran:.1f}%" if ran else "-"
        p(f"| {f} | {ok} | {err} | {skip} | {ign} | {rate} | {status} |")
    ran = tot_ok + tot_err
    rate = f"{100.0 * tot_ok / ran:.1f}%" if ran else "-"
    p(f"| **total** | **{tot_ok}** | **{tot_err}** | {tot_skip} | {tot_ign} | **{rate}** | |")
    p()
    p(f"Overall: **{tot_ok} of {ran} tests that ran passed ({rate})**; the target is 95%.")
    p("`run` is `aborted` when the file stopped early (harness exception or timeout): its")
    p("remaining tests are not counted anywhere. A test whose `start_server` block failed to")
    p("set up (e.g. an unsupported `CONFIG SET` override) counts as one failure for the block.")
    p()
    p("## Exact commands")
    p()
    p("```")
    p("compat/run-redis-tests.sh            # all files below; writes this document")
    p("# per file, from a scratch copy of the Redis sources:")
    p(f"./runtest {flags} --single <file>")
    p("```")
    p()
    p("Files: " + ", ".join(f"`{r[0]}`" for r in rows) + ".")
    p()
    cats = collections.Counter()
    examples = collections.defaultdict(list)
    per_file = {}
    for f, status, *_ in rows:
        log = os.path.join(logdir, f.replace("/", "_") + ".log")
        if not os.path.exists(log):
            continue
        fl = failures(log)
        per_file[f] = fl
        for name, msg in fl:
            c = category(msg)
            cats[c] += 1
            if len(examples[c]) < 3:
                examples[c].append(f"{name} ({f})")
    p("## Failure categories (automatic, from the first message line of each failure)")
    p()
    p("| category | failures | examples |")
    p("|---|---:|---|")
    for c, n in cats.most_common():
        ex = "; ".join(examples[c]).replace("|", "\\|")
        cat = c.replace("|", "\\|")
        p(f"| {cat} | {n} | {ex} |")
    p()
    analysis = os.path.join(os.path.dirname(os.path.abspath(__file__)), "analysis.md")
    if os.path.exists(analysis):
        p(open(analysis).read().rstrip())
        p()
    p("## Every failure")
    p()
    for f, fl in per_file.items():
        if not fl:
            continue
        p(f"### {f}")
        p()
        for name, msg in fl:
            msg = msg[:160].replace("|", "\\|")
            p(f"- {name}: `{msg}`" if msg else f"- {name}")
        p()


if __name__ == "__main__":
    main()
