//! The model folder's card, shared by both trainers: the manifest `ontovec.json`,
//! `MODEL_CARD.md`, and the two pictures the card embeds, rendered to SVG by plotters:
//! `curves.svg` (training loss per step; dev metrics per evaluation step on a second panel)
//! and `eval.svg` (the evaluation table as grouped horizontal bars). Every file is written
//! atomically; the server serves the pictures under `/v1/models/{name}/files/{file}`.

use crate::train::common::checkpoint::DevPoint;
use crate::util::fs::write_atomic;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

pub use crate::encoder::manifest::{CARD_FILE, CURVES_FILE, EVAL_FILE, FUSION_FILE, MANIFEST_FILE};

const FONT: &str = "sans-serif";
const WIDTH: u32 = 860;

/// One line of a chart: `(x, y)` points in x order; non-finite `y` are skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
}

/// The training curves of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Curves {
    /// Title above both panels.
    pub title: String,
    /// Loss series per optimizer step (first panel).
    pub loss: Vec<Series>,
    /// Dev metrics per evaluation step (second panel; none: no second panel).
    pub dev: Vec<Series>,
    /// Caption of the dev panel (what was measured on which split).
    pub dev_caption: String,
}

impl Curves {
    /// Curves from a trainer's loss log `(step, a, b)`, the names of its two losses, and its
    /// dev log (one series per metric name, in name order).
    pub fn from_logs(
        title: &str,
        loss_names: [&str; 2],
        loss_log: &[(u64, f32, f32)],
        dev_log: &[DevPoint],
        dev_caption: &str,
    ) -> Self {
        let loss = [0, 1]
            .into_iter()
            .map(|i| Series {
                label: loss_names[i].to_string(),
                points: loss_log
                    .iter()
                    .map(|&(s, a, b)| (s as f64, if i == 0 { a } else { b } as f64))
                    .collect(),
            })
            .filter(|s| s.points.iter().any(|p| p.1.is_finite() && p.1 != 0.0))
            .collect();
        let names: std::collections::BTreeSet<&String> =
            dev_log.iter().flat_map(|p| p.metrics.keys()).collect();
        let dev = names
            .into_iter()
            .map(|n| Series {
                label: n.clone(),
                points: dev_log
                    .iter()
                    .filter_map(|p| p.metrics.get(n).map(|v| (p.step as f64, *v)))
                    .collect(),
            })
            .collect();
        Self {
            title: title.to_string(),
            loss,
            dev,
            dev_caption: dev_caption.to_string(),
        }
    }

    /// Whether there is nothing to draw.
    pub fn is_empty(&self) -> bool {
        self.loss
            .iter()
            .chain(&self.dev)
            .all(|s| s.points.is_empty())
    }
}

/// An evaluation table as grouped bars: one group per row (e.g. `ICD10CM · AUC mean`), one
/// bar per series (e.g. `base`, `trained`); NaN values are drawn as `–`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    /// Title.
    pub title: String,
    /// Bar names within a group, in drawing order.
    pub series: Vec<String>,
    /// (group label, one value per series).
    pub groups: Vec<(String, Vec<f64>)>,
}

/// What a trainer writes into a model folder besides the weights.
pub struct Card<'a> {
    /// `ontovec.json`.
    pub manifest: &'a serde_json::Value,
    /// `MODEL_CARD.md` without pictures (they are inserted before its first `## ` section).
    pub markdown: String,
    /// Training curves, when the run logged any.
    pub curves: Option<&'a Curves>,
    /// The evaluation table as bars, when there was an evaluation.
    pub bars: Option<&'a Bars>,
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("rendering a model-card picture: {e:?}")
}

/// Write `ontovec.json` (pretty JSON) into `dir`, atomically.
pub fn write_manifest(dir: &Path, manifest: &serde_json::Value) -> anyhow::Result<()> {
    write_atomic(
        &dir.join(MANIFEST_FILE),
        serde_json::to_string_pretty(manifest)?.as_bytes(),
    )?;
    Ok(())
}

/// Write the manifest, the pictures and `MODEL_CARD.md` (embedding the pictures) into `dir`.
/// A picture with nothing to draw is not written, and a stale one from an earlier run removed.
pub fn write_card(dir: &Path, card: &Card<'_>) -> anyhow::Result<()> {
    write_manifest(dir, card.manifest)?;
    let mut pictures = String::new();
    let curves = card
        .curves
        .filter(|c| !c.is_empty())
        .map(render_curves)
        .transpose()?;
    let bars = card
        .bars
        .filter(|b| !b.groups.is_empty())
        .map(render_bars)
        .transpose()?;
    for (file, svg, alt) in [
        (
            CURVES_FILE,
            curves,
            "training curves: loss per step, dev metrics per evaluation step",
        ),
        (EVAL_FILE, bars, "held-out evaluation"),
    ] {
        let path = dir.join(file);
        match svg {
            Some(svg) => {
                write_atomic(&path, svg.as_bytes())?;
                pictures.push_str(&format!("![{alt}]({file})\n\n"));
            }
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            },
        }
    }
    let md = &card.markdown;
    let md = match md.find("\n## ") {
        Some(i) if !pictures.is_empty() => format!("{}{pictures}{}", &md[..=i], &md[i + 1..]),
        _ if !pictures.is_empty() => format!("{md}\n{pictures}"),
        _ => md.clone(),
    };
    write_atomic(&dir.join(CARD_FILE), md.as_bytes())?;
    Ok(())
}

/// Copy a base model folder's files into `to`, except weights, checkpoints, hidden files and
/// the card files (the trainer writes its own).
pub fn copy_base_files(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name();
        let n = name.to_string_lossy();
        if [
            "model.safetensors",
            "pytorch_model.bin",
            "checkpoint",
            MANIFEST_FILE,
            CARD_FILE,
            CURVES_FILE,
            EVAL_FILE,
            // fitted on the base's scores, not the trained model's
            FUSION_FILE,
            "README.md",
        ]
        .contains(&&*n)
            || n.starts_with('.')
        {
            continue;
        }
        let dst = to.join(&name);
        if e.file_type()?.is_dir() {
            copy_base_files(&e.path(), &dst)?;
        } else {
            std::fs::copy(e.path(), dst)?;
        }
    }
    Ok(())
}

fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    C[i % C.len()]
}

/// Moving mean over `w` points (the smoothed loss line).
fn moving_mean(pts: &[(f64, f64)], w: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(pts.len());
    let mut sum = 0.0;
    for (i, p) in pts.iter().enumerate() {
        sum += p.1;
        if i >= w {
            sum -= pts[i - w].1;
        }
        out.push((p.0, sum / (i + 1).min(w) as f64));
    }
    out
}

/// `curves.svg`: loss per step (raw, faint, and a moving mean), and, when there are dev
/// points, the dev metrics per evaluation step on a second panel.
pub fn render_curves(c: &Curves) -> anyhow::Result<String> {
    let height = if c.dev.is_empty() { 380 } else { 720 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let body = root.titled(&c.title, (FONT, 20)).map_err(plot_err)?;
        if c.dev.is_empty() {
            line_panel(&body, "training loss per step", "loss", &c.loss, true)?;
        } else {
            let panels = body.split_evenly((2, 1));
            line_panel(&panels[0], "training loss per step", "loss", &c.loss, true)?;
            line_panel(&panels[1], &c.dev_caption, "metric", &c.dev, false)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

fn line_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    caption: &str,
    y_desc: &str,
    series: &[Series],
    loss: bool,
) -> anyhow::Result<()> {
    let finite: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .copied()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .collect()
        })
        .collect();
    let all = || finite.iter().flatten();
    let (Some(x0), Some(x1)) = (
        all().map(|p| p.0).reduce(f64::min),
        all().map(|p| p.0).reduce(f64::max),
    ) else {
        area.draw(&Text::new(
            format!("{caption}: nothing recorded"),
            (20, 40),
            (FONT, 14),
        ))
        .map_err(plot_err)?;
        return Ok(());
    };
    let y0 = all().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let y1 = all().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let pad = ((y1 - y0) * 0.08).max(1e-3);
    let (y0, y1) = if !loss && y0 >= 0.0 && y1 <= 1.0 {
        (0f64.max(y0 - pad), 1f64.min(y1 + pad))
    } else {
        (y0 - pad, y1 + pad)
    };
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 15))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(y_desc)
        .light_line_style(RGBColor(240, 240, 240))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.3}"))
        .draw()
        .map_err(plot_err)?;
    for (i, (s, pts)) in series.iter().zip(&finite).enumerate() {
        let col = color(i);
        let style = col.stroke_width(2);
        let label = if loss && pts.len() > 20 {
            chart
                .draw_series(LineSeries::new(pts.clone(), col.mix(0.25)))
                .map_err(plot_err)?;
            let w = (pts.len() / 25).max(2);
            let line = moving_mean(pts, w);
            let label = format!("{} (mean of {w} steps)", s.label);
            chart
                .draw_series(LineSeries::new(line, style))
                .map_err(plot_err)?
                .label(label)
        } else {
            if !loss {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, col.filled())))
                    .map_err(plot_err)?;
            }
            chart
                .draw_series(LineSeries::new(pts.clone(), style))
                .map_err(plot_err)?
                .label(s.label.clone())
        };
        label.legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
    }
    chart
        .configure_series_labels()
        .position(if loss {
            SeriesLabelPosition::UpperRight
        } else {
            SeriesLabelPosition::LowerRight
        })
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 13))
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// `eval.svg`: one group of horizontal bars per table row, one bar per series, the value
/// printed at the end of each bar.
pub fn render_bars(b: &Bars) -> anyhow::Result<String> {
    let ns = b.series.len().max(1);
    let ng = b.groups.len().max(1);
    let bar_px = 15usize;
    let group_px = ns * bar_px + 14;
    let height = (110 + ng * group_px) as u32;
    let label_px = b
        .groups
        .iter()
        .map(|g| g.0.chars().count())
        .max()
        .unwrap_or(0)
        .saturating_mul(7)
        .clamp(60, 380) as u32
        + 16;
    let vmax = b
        .groups
        .iter()
        .flat_map(|g| g.1.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0f64, f64::max);
    let top = if vmax <= 1.0 { 1.0 } else { vmax };
    // room on the right for the value labels and the legend
    let xmax = top * 1.45;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&b.title, (FONT, 18))
            .margin(14)
            .x_label_area_size(36)
            .y_label_area_size(label_px)
            .build_cartesian_2d(0f64..xmax, 0f64..ng as f64)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .light_line_style(RGBColor(240, 240, 240))
            .x_label_formatter(&|x| {
                if *x <= top + 1e-9 {
                    format!("{x:.1}")
                } else {
                    String::new()
                }
            })
            .draw()
            .map_err(plot_err)?;
        let unit = 0.84 / ns as f64;
        let value_font = (FONT, 11).into_font().color(&BLACK);
        for (s, name) in b.series.iter().enumerate() {
            let col = color(s);
            let mut rects = Vec::new();
            let mut texts = Vec::new();
            for (gi, (_, vals)) in b.groups.iter().enumerate() {
                let y_top = (ng - gi) as f64 - 0.08 - s as f64 * unit;
                let y_mid = y_top - unit * 0.45;
                let v = vals.get(s).copied().unwrap_or(f64::NAN);
                if v.is_finite() {
                    rects.push(Rectangle::new(
                        [(0.0, y_top - unit * 0.9), (v.max(0.0), y_top)],
                        col.filled(),
                    ));
                }
                let t = if v.is_finite() {
                    format!("{v:.3}")
                } else {
                    "–".to_string()
                };
                texts.push(Text::new(
                    t,
                    (v.max(0.0).min(top) + top * 0.01, y_mid),
                    value_font.pos(Pos::new(HPos::Left, VPos::Center)),
                ));
            }
            chart
                .draw_series(rects)
                .map_err(plot_err)?
                .label(name.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], col.filled()));
            chart.draw_series(texts).map_err(plot_err)?;
        }
        let label_font = (FONT, 12)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Right, VPos::Center));
        for (gi, (label, _)) in b.groups.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(0.0, (ng - gi) as f64 - 0.5));
            root.draw(&Text::new(label.clone(), (px - 8, py), label_font.clone()))
                .map_err(plot_err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .label_font((FONT, 13))
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests;
