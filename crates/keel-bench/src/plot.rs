//! The PNG: throughput and p99 per test, Redis and keel as grouped bars, one panel per
//! (figure, pipeline depth).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

use crate::summary::Row;
use crate::BenchError;

/// Width of the PNG in pixels.
pub const WIDTH: u32 = 1600;
/// Height of the PNG in pixels.
pub const HEIGHT: u32 = 1000;

const REDIS_COLOR: RGBColor = RGBColor(204, 51, 51);
const KEEL_COLOR: RGBColor = RGBColor(40, 96, 176);

/// Fonts tried, in order, when none is given: Debian's DejaVu and Liberation packages.
pub const DEFAULT_FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Loads a TTF and registers it as plotters' "sans-serif", so text needs no system font
/// lookup. Returns false when no file could be loaded; the plot then has no text.
pub fn register_font(explicit: Option<&Path>) -> bool {
    let candidates: Vec<&Path> = match explicit {
        Some(p) => vec![p],
        None => DEFAULT_FONTS.iter().map(Path::new).collect(),
    };
    for path in candidates {
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        // plotters keeps registered fonts for the life of the process; leaking the one
        // buffer is what gives it the 'static lifetime it asks for.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
            return true;
        }
    }
    false
}

type Fig = fn(&crate::summary::Cell) -> f64;

/// Draws the main section's rows (throughput and p99 at each pipeline depth) to `path`.
/// `text` says whether a font was registered; without one, captions and labels are left out.
pub fn render(rows: &[Row], path: &Path, text: bool) -> Result<(), BenchError> {
    let err = |e: String| BenchError::Plot {
        path: path.to_path_buf(),
        reason: e,
    };
    let main: Vec<&Row> = rows
        .iter()
        .filter(|r| r.section == "main" && r.base.is_some() && r.keel.is_some())
        .collect();
    let mut pipelines: Vec<u32> = main.iter().map(|r| r.pipeline).collect();
    pipelines.sort_unstable();
    pipelines.dedup();
    if pipelines.is_empty() {
        return Err(err("no main-section rows with both servers to plot".into()));
    }

    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let body = if text {
        let (title, body) = root.split_vertically(60);
        let style = ("sans-serif", 26).into_font();
        title
            .draw(&Text::new(
                "keel vs redis-server: median throughput and p99 (50 clients, 64-byte values)",
                (20, 12),
                style,
            ))
            .map_err(|e| err(e.to_string()))?;
        for (i, (name, color)) in [("redis-server", REDIS_COLOR), ("keel", KEEL_COLOR)]
            .into_iter()
            .enumerate()
        {
            let x = 20 + 200 * i as i32;
            title
                .draw(&Rectangle::new([(x, 44), (x + 18, 58)], color.filled()))
                .map_err(|e| err(e.to_string()))?;
            title
                .draw(&Text::new(
                    name,
                    (x + 24, 42),
                    ("sans-serif", 18).into_font(),
                ))
                .map_err(|e| err(e.to_string()))?;
        }
        body
    } else {
        root.clone()
    };

    let panels = body.split_evenly((pipelines.len(), 2));
    let figures: [(&str, Fig); 2] = [("requests/s", |c| c.rps), ("p99 latency, ms", |c| c.p99_ms)];
    for (i, area) in panels.iter().enumerate() {
        let (Some(&pipeline), Some(&(label, fig))) = (pipelines.get(i / 2), figures.get(i % 2))
        else {
            continue;
        };
        let rows: Vec<&&Row> = main.iter().filter(|r| r.pipeline == pipeline).collect();
        let caption = format!("{label}, pipeline {pipeline}");
        draw_panel(area, &rows, fig, &caption, text).map_err(err)?;
    }
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    rows: &[&&Row],
    fig: Fig,
    caption: &str,
    text: bool,
) -> Result<(), String> {
    let n = rows.len();
    let values: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| Some((fig(r.base.as_ref()?), fig(r.keel.as_ref()?))))
        .collect();
    let top = values
        .iter()
        .map(|&(a, b)| a.max(b))
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.1;
    let names: Vec<String> = rows.iter().map(|r| r.test.to_ascii_uppercase()).collect();

    let mut builder = ChartBuilder::on(area);
    builder.margin(12);
    if text {
        builder
            .caption(caption, ("sans-serif", 20))
            .x_label_area_size(34)
            .y_label_area_size(72);
    }
    let mut chart = builder
        .build_cartesian_2d(0.0..n as f64, 0.0..top)
        .map_err(|e| e.to_string())?;
    let mut mesh = chart.configure_mesh();
    // Test names are drawn below each group by hand: plotters' own x labels sit at
    // "nice" numbers, not at group centres.
    mesh.disable_x_mesh().x_labels(0);
    if text {
        mesh.y_label_formatter(&|y: &f64| short(*y))
            .label_style(("sans-serif", 14));
    } else {
        mesh.y_labels(0);
    }
    mesh.draw().map_err(|e| e.to_string())?;

    let bar = 0.36;
    chart
        .draw_series(values.iter().enumerate().flat_map(|(i, &(redis, keel))| {
            let x = i as f64 + 0.5;
            [
                Rectangle::new([(x - bar, 0.0), (x, redis)], REDIS_COLOR.filled()),
                Rectangle::new([(x, 0.0), (x + bar, keel)], KEEL_COLOR.filled()),
            ]
        }))
        .map_err(|e| e.to_string())?;

    if text {
        let (x0, y0) = area.get_base_pixel();
        let style = ("sans-serif", 14)
            .into_font()
            .into_text_style(area)
            .pos(Pos::new(HPos::Center, VPos::Top));
        for (i, name) in names.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            area.draw(&Text::new(name.as_str(), (px - x0, py - y0 + 8), &style))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Axis numbers: 1.2M, 350k, 0.45.
fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else if v == 0.0 {
        "0".into()
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}
