//! Flame graphs from `perf script` output, for `bench/flame.sh`: folds each sampled
//! call stack into one line (thread name first, then the frames from the outermost in),
//! counts equal stacks, and draws them as an SVG (the classic layout: the root at the
//! bottom, a frame's width its share of the samples, its children stacked on it).
//!
//! Written here rather than taken from a flame graph crate: the folding is a page and the
//! drawing another, and it keeps the project's dependencies under its own licence terms.
//!
//! Inlined frames of Rust's standard library (`core::`, `alloc::`, `std::` marked
//! `(inlined)` by perf) are dropped by default: iterator adapters and `catch_unwind`
//! wrappers add a dozen frames to every stack and no information. Frames perf could not
//! name stay, as `[unknown]`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::BenchError;

/// Counted stacks: frames from the thread name (outermost) to the sampled function.
pub type Folded = BTreeMap<Vec<String>, u64>;

/// Prefixes of the standard library's frames that [`FoldOptions::keep_std_inlines`]
/// otherwise drops when perf marks them inlined.
const STD_PREFIXES: [&str; 6] = [
    "core::", "alloc::", "std::", "<core::", "<alloc::", "<std::",
];

/// How `perf script` output is folded.
#[derive(Debug, Clone, Copy, Default)]
pub struct FoldOptions {
    /// Keep the standard library's inlined frames (dropped by default).
    pub keep_std_inlines: bool,
}

/// What perf says a frame's code came from (the last parenthesised word of its line).
#[derive(Debug, PartialEq, Eq)]
enum Origin {
    Inlined,
    Kernel,
    Other,
}

/// The suffix of kernel frames' names, as other flame graph tools mark them.
const KERNEL_MARK: &str = "_[k]";

/// One frame line of a sample: the function and where its code came from.
fn parse_frame(line: &str) -> Option<(&str, Origin)> {
    // "<address> <symbol>+0x<offset> (<dso or 'inlined'>)"; the symbol may hold spaces.
    let rest = line.trim().split_once(char::is_whitespace)?.1.trim_start();
    let (symbol, origin) = match rest.rfind(" (") {
        Some(at) if rest.ends_with(')') => (&rest[..at], &rest[at + 2..rest.len() - 1]),
        _ => (rest, ""),
    };
    let symbol = match symbol.rfind("+0x") {
        Some(at) if symbol[at + 3..].bytes().all(|b| b.is_ascii_hexdigit()) => &symbol[..at],
        _ => symbol,
    };
    let origin = match origin {
        "inlined" => Origin::Inlined,
        "[kernel.kallsyms]" => Origin::Kernel,
        _ => Origin::Other,
    };
    Some((symbol, origin))
}

/// The thread name of a sample's header line ("<comm> <pid>[/<tid>] [<cpu>] <time>: ...").
fn parse_comm(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    // The name may hold spaces; the process id is its first all-digit word after it.
    let pid = words.iter().skip(1).position(|w| {
        let id = w.split('/').next().unwrap_or_default();
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
    })?;
    Some(words[..pid + 1].join(" "))
}

/// Folds `perf script` text (`source` names it in errors): one stack per sample.
pub fn fold(text: &str, source: &Path, opts: FoldOptions) -> Result<Folded, BenchError> {
    let mut folded = Folded::new();
    let mut comm: Option<String> = None;
    let mut frames: Vec<String> = Vec::new();
    let mut finish = |comm: &mut Option<String>, frames: &mut Vec<String>| {
        if let Some(name) = comm.take() {
            let mut stack = Vec::with_capacity(frames.len() + 1);
            stack.push(name);
            stack.extend(frames.drain(..).rev());
            *folded.entry(stack).or_insert(0) += 1;
        }
        frames.clear();
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            finish(&mut comm, &mut frames);
        } else if line.starts_with(char::is_whitespace) {
            if comm.is_none() {
                return Err(parse_error(
                    source,
                    i,
                    "a frame line before any sample header",
                ));
            }
            let (symbol, origin) = parse_frame(line)
                .ok_or_else(|| parse_error(source, i, "a frame line without a symbol"))?;
            match origin {
                Origin::Inlined
                    if !opts.keep_std_inlines
                        && STD_PREFIXES.iter().any(|p| symbol.starts_with(p)) => {}
                Origin::Kernel => frames.push(format!("{symbol}{KERNEL_MARK}")),
                _ => frames.push(symbol.to_owned()),
            }
        } else {
            finish(&mut comm, &mut frames);
            comm = Some(
                parse_comm(line)
                    .ok_or_else(|| parse_error(source, i, "a sample header without a pid"))?,
            );
        }
    }
    finish(&mut comm, &mut frames);
    if folded.is_empty() {
        return Err(parse_error(
            source,
            0,
            "no samples (was perf record run with -g?)",
        ));
    }
    Ok(folded)
}

fn parse_error(source: &Path, line: usize, reason: &str) -> BenchError {
    BenchError::Parse {
        path: source.to_path_buf(),
        line: line + 1,
        reason: reason.to_owned(),
    }
}

/// The folded stacks in the text form other flame graph tools read: "a;b;c count".
pub fn folded_text(folded: &Folded) -> String {
    let mut out = String::new();
    for (stack, n) in folded {
        let _ = writeln!(out, "{} {n}", stack.join(";"));
    }
    out
}

/// The functions with the most samples of their own (the innermost frame), most first,
/// with their counts: at most `n`.
pub fn top_self(folded: &Folded, n: usize) -> Vec<(String, u64)> {
    let mut rows = by_innermost(folded, str::to_owned);
    rows.truncate(n);
    rows
}

/// Samples summed by `group` of their innermost frame, most first (ties by name).
fn by_innermost(folded: &Folded, group: impl Fn(&str) -> String) -> Vec<(String, u64)> {
    let mut sums: BTreeMap<String, u64> = BTreeMap::new();
    for (stack, n) in folded {
        if let Some(leaf) = stack.last() {
            *sums.entry(group(leaf)).or_insert(0) += n;
        }
    }
    let mut rows: Vec<(String, u64)> = sums.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows
}

/// The part of the server a function belongs to: its crate (the first segment of its
/// path), "kernel", "mimalloc", "C" for other unmangled code (libc's memcpy, say), or
/// "other" for a path without a crate (a primitive type's impl).
pub fn layer(function: &str) -> String {
    if function.ends_with(KERNEL_MARK) {
        return "kernel".to_owned();
    }
    if function.starts_with("mi_") || function.starts_with("_mi_") {
        return "mimalloc".to_owned();
    }
    let path = function.trim_start_matches('<');
    match path.split_once("::") {
        Some((krate, _)) if is_identifier(krate) => krate.to_owned(),
        // `<usize as core::...>` and the like: a primitive's impl, no crate to name.
        Some(_) => "other".to_owned(),
        None => "C".to_owned(),
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Samples by the [`layer`] of their innermost frame, most first.
pub fn by_layer(folded: &Folded) -> Vec<(String, u64)> {
    by_innermost(folded, layer)
}

/// A frame with its samples (its own and its callees') and its callees by name.
#[derive(Default)]
struct Node {
    count: u64,
    kids: BTreeMap<String, Node>,
}

fn tree(folded: &Folded) -> Node {
    let mut root = Node::default();
    for (stack, n) in folded {
        root.count += n;
        let mut at = &mut root;
        for frame in stack {
            at = at.kids.entry(frame.clone()).or_default();
            at.count += n;
        }
    }
    root
}

/// How the SVG is drawn.
#[derive(Debug, Clone)]
pub struct SvgOptions {
    /// The heading.
    pub title: String,
    /// Image width in pixels.
    pub width: f64,
    /// Frames narrower than this share of the samples (in percent) are left out, with
    /// their callees: they could not be read, and they make most of a file's size.
    pub min_width_pct: f64,
}

impl Default for SvgOptions {
    fn default() -> Self {
        SvgOptions {
            title: "Flame graph".to_owned(),
            width: 1200.0,
            min_width_pct: 0.1,
        }
    }
}

const FRAME_H: f64 = 16.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 8.0;
const SIDE: f64 = 10.0;
/// Approximate width of one character of the 11 px labels.
const CHAR_W: f64 = 6.6;

/// Draws `folded` as an SVG flame graph; each frame's tooltip gives its samples and share.
pub fn svg(folded: &Folded, opts: &SvgOptions) -> String {
    let root = tree(folded);
    let total = root.count.max(1) as f64;
    let inner = opts.width - 2.0 * SIDE;
    let min_count = total * opts.min_width_pct / 100.0;
    let depth = max_depth(&root, min_count);
    let height = TOP + FRAME_H * (depth as f64 + 1.0) + BOTTOM;
    let mut canvas = Canvas {
        out: String::new(),
        base: height - BOTTOM - FRAME_H,
        px_per_sample: inner / total,
        total,
        min_count,
    };
    draw(&mut canvas, "all", &root, 0, SIDE);
    let mut out = String::new();
    let _ = write!(
        out,
        concat!(
            r#"<?xml version="1.0" standalone="no"?>"#,
            "\n",
            r#"<svg version="1.1" width="{w}" height="{h}" viewBox="0 0 {w} {h}" "#,
            r#"xmlns="http://www.w3.org/2000/svg">"#,
            "\n",
            r##"<rect x="0" y="0" width="{w}" height="{h}" fill="#f8f8f2"/>"##,
            "\n",
            r#"<text x="{cx}" y="20" font-family="Verdana,sans-serif" font-size="15" "#,
            r#"text-anchor="middle">{title}</text>"#,
            "\n",
            r#"<text x="{cx}" y="36" font-family="Verdana,sans-serif" font-size="11" "#,
            r##"text-anchor="middle" fill="#555">{samples} samples; frames under {pct}% left out; hover for counts</text>"##,
            "\n",
            r#"<g font-family="Verdana,sans-serif" font-size="11">"#,
            "\n"
        ),
        w = opts.width,
        h = height,
        cx = opts.width / 2.0,
        title = escape(&opts.title),
        samples = root.count,
        pct = opts.min_width_pct,
    );
    out.push_str(&canvas.out);
    out.push_str("</g>\n</svg>\n");
    out
}

fn max_depth(node: &Node, min_count: f64) -> usize {
    node.kids
        .values()
        .filter(|k| k.count as f64 >= min_count)
        .map(|k| 1 + max_depth(k, min_count))
        .max()
        .unwrap_or(0)
}

/// Where and at what scale [`draw`] puts frames.
struct Canvas {
    out: String,
    /// The y of the root frame (depth 0).
    base: f64,
    px_per_sample: f64,
    total: f64,
    /// Samples below which a frame is left out.
    min_count: f64,
}

fn draw(c: &mut Canvas, name: &str, node: &Node, depth: usize, x: f64) {
    let w = node.count as f64 * c.px_per_sample;
    let y = c.base - FRAME_H * depth as f64;
    let pct = 100.0 * node.count as f64 / c.total;
    let (r, g, b) = colour(name);
    let label = match fit(name, w) {
        Some(t) => format!(
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            x + 3.0,
            y + FRAME_H - 4.5,
            escape(&t)
        ),
        None => String::new(),
    };
    let _ = writeln!(
        c.out,
        r#"<g><title>{} ({} samples, {:.2}%)</title><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="rgb({r},{g},{b})" rx="2"/>{label}</g>"#,
        escape(name),
        node.count,
        pct,
        x,
        y,
        (w - 0.5).max(0.1),
        FRAME_H - 1.0,
    );
    let mut at = x;
    for (kid_name, kid) in &node.kids {
        if kid.count as f64 >= c.min_count {
            draw(c, kid_name, kid, depth + 1, at);
        }
        at += kid.count as f64 * c.px_per_sample;
    }
}

/// The label that fits a frame `w` pixels wide: the whole name, or its start and "..",
/// or none when not even three characters fit.
fn fit(name: &str, w: f64) -> Option<String> {
    let room = ((w - 6.0) / CHAR_W).floor();
    if room < 3.0 {
        return None;
    }
    let room = room as usize;
    let chars = name.chars().count();
    if chars <= room {
        return Some(name.to_owned());
    }
    Some(name.chars().take(room - 2).chain("..".chars()).collect())
}

/// A warm colour from the name, so a function has the same colour in every graph.
fn colour(name: &str) -> (u8, u8, u8) {
    // FNV-1a: stable across runs and platforms, unlike the standard hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let r = 205 + (h % 50) as u8;
    let g = ((h >> 8) % 200) as u8 + 20;
    let b = ((h >> 16) % 55) as u8;
    (r, g, b)
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = "\
keel-net 30915 63583.919295:    2004008 cpu-clock:ppp: 
\t          6d2bc1 mi_page_malloc_zero+0x31 (inlined)
\t          6d2bc1 _mi_theap_malloc_zero+0x31 (/tmp/keel)
\t          232947 alloc::alloc::alloc+0x27 (inlined)
\t          232947 bytes::bytes::shallow_clone_vec+0x27 (/tmp/keel)
\t          4a407e <core::option::Option<T> as core::clone::Clone>::clone+0x61e (inlined)
\t          4a407e keel_storage::lsm::Inner::commit+0x61e (/tmp/keel)

keel-apply 30916/30920 [001] 63583.920000:    2004008 cpu-clock:ppp: 
\t          6d2bc1 _mi_theap_malloc_zero+0x31 (/tmp/keel)
\t          4a407e keel_storage::lsm::Inner::commit+0x61e (/tmp/keel)

keel-net 30915 63583.921000:    2004008 cpu-clock:ppp: 
\t          6d2bc1 mi_page_malloc_zero+0x31 (inlined)
\t          6d2bc1 _mi_theap_malloc_zero+0x31 (/tmp/keel)
\t          232947 alloc::alloc::alloc+0x27 (inlined)
\t          232947 bytes::bytes::shallow_clone_vec+0x27 (/tmp/keel)
\t          4a407e <core::option::Option<T> as core::clone::Clone>::clone+0x61e (inlined)
\t          4a407e keel_storage::lsm::Inner::commit+0x61e (/tmp/keel)

fjall:worker 1 2.0: 1 cpu-clock: 
\t          ffffffff [unknown] ([kernel.kallsyms])
";

    fn stack(frames: &[&str]) -> Vec<String> {
        frames.iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn stacks_fold_outermost_first_and_count_repeats() {
        let f = fold(SCRIPT, Path::new("t"), FoldOptions::default()).expect("fold");
        assert_eq!(f.len(), 3);
        let net = stack(&[
            "keel-net",
            "keel_storage::lsm::Inner::commit",
            "bytes::bytes::shallow_clone_vec",
            "_mi_theap_malloc_zero",
            "mi_page_malloc_zero",
        ]);
        assert_eq!(f.get(&net), Some(&2));
        let apply = stack(&[
            "keel-apply",
            "keel_storage::lsm::Inner::commit",
            "_mi_theap_malloc_zero",
        ]);
        assert_eq!(f.get(&apply), Some(&1));
        assert_eq!(f.get(&stack(&["fjall:worker", "[unknown]_[k]"])), Some(&1));
    }

    #[test]
    fn samples_group_by_the_layer_of_their_innermost_frame() {
        assert_eq!(layer("tcp_ack_[k]"), "kernel");
        assert_eq!(layer("_mi_theap_malloc_zero"), "mimalloc");
        assert_eq!(layer("__memcmp_evex_movbe"), "C");
        assert_eq!(layer("<usize as core::fmt::Debug>::fmt"), "other");
        assert_eq!(layer("keel_storage::lsm::Inner::commit"), "keel_storage");
        assert_eq!(
            layer("<bytes::bytes::Bytes as core::clone::Clone>::clone"),
            "bytes"
        );
        let f = fold(SCRIPT, Path::new("t"), FoldOptions::default()).expect("fold");
        assert_eq!(
            by_layer(&f),
            vec![("mimalloc".to_owned(), 3), ("kernel".to_owned(), 1)]
        );
    }

    #[test]
    fn std_inlines_stay_when_asked() {
        let opts = FoldOptions {
            keep_std_inlines: true,
        };
        let f = fold(SCRIPT, Path::new("t"), opts).expect("fold");
        let longest = f.keys().map(Vec::len).max();
        assert_eq!(longest, Some(7));
        assert!(f
            .keys()
            .any(|s| s.iter().any(|fr| fr == "alloc::alloc::alloc")));
    }

    #[test]
    fn top_self_orders_by_own_samples() {
        let f = fold(SCRIPT, Path::new("t"), FoldOptions::default()).expect("fold");
        let top = top_self(&f, 2);
        assert_eq!(
            top,
            vec![
                ("mi_page_malloc_zero".to_owned(), 2),
                ("[unknown]_[k]".to_owned(), 1)
            ]
        );
        let text = folded_text(&f);
        assert!(
            text.contains("keel-apply;keel_storage::lsm::Inner::commit;_mi_theap_malloc_zero 1\n")
        );
    }

    #[test]
    fn bad_input_is_an_error_with_its_line() {
        let err = fold(
            "\t  1234 f+0x1 (x)\n",
            Path::new("in"),
            FoldOptions::default(),
        )
        .expect_err("a frame before a header");
        assert!(err.to_string().contains("line 1"), "{err}");
        let err = fold("", Path::new("in"), FoldOptions::default()).expect_err("empty");
        assert!(err.to_string().contains("no samples"), "{err}");
    }

    #[test]
    fn the_svg_draws_each_wide_frame_with_its_share() {
        let f = fold(SCRIPT, Path::new("t"), FoldOptions::default()).expect("fold");
        let opts = SvgOptions {
            title: "SET <P1> & co".to_owned(),
            ..SvgOptions::default()
        };
        let s = svg(&f, &opts);
        assert!(s.starts_with("<?xml"));
        assert!(s.trim_end().ends_with("</svg>"));
        assert!(s.contains("SET &lt;P1&gt; &amp; co"));
        assert!(s.contains("<title>all (4 samples, 100.00%)</title>"));
        assert!(s.contains("<title>keel-net (2 samples, 50.00%)</title>"));
        assert!(s.contains("<title>mi_page_malloc_zero (2 samples, 50.00%)</title>"));
        // One rectangle per frame of the merged tree: all; the three threads; commit
        // and malloc under keel-apply; commit, clone and two mallocs under keel-net;
        // the unknown frame under fjall:worker.
        assert_eq!(s.matches(r#"rx="2"/>"#).count(), 1 + 3 + 2 + 4 + 1);
    }

    #[test]
    fn narrow_frames_are_left_out() {
        let mut f = Folded::new();
        f.insert(stack(&["t", "wide"]), 999);
        f.insert(stack(&["t", "narrow", "deeper"]), 1);
        let opts = SvgOptions {
            min_width_pct: 0.5,
            ..SvgOptions::default()
        };
        let s = svg(&f, &opts);
        assert!(s.contains(">wide<") || s.contains("<title>wide "));
        assert!(!s.contains("narrow"));
        assert!(!s.contains("deeper"));
    }

    #[test]
    fn labels_fit_their_frames() {
        assert_eq!(fit("abcdef", 200.0).as_deref(), Some("abcdef"));
        let cut = fit("abcdefghijklmnopqrstuvwxyz", 60.0).expect("label");
        assert!(cut.ends_with(".."));
        assert!(cut.chars().count() as f64 * CHAR_W <= 60.0);
        assert_eq!(fit("abcdef", 10.0), None);
    }
}
