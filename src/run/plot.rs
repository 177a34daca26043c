//! The plot of a run as a self-contained SVG file (no fonts, no system libraries; any
//! browser or image viewer shows it): on the left the training loss of every update (faint)
//! with its moving average and the validation loss after each epoch; on the right the
//! validation metric of each epoch.

use std::fmt::Write as _;

use crate::run::resume::{EpochRow, StepRow};

/// A series of points in data coordinates.
struct Series<'a> {
    points: Vec<(f64, f64)>,
    color: &'a str,
    width: f64,
    markers: bool,
    opacity: f64,
    label: &'a str,
}

/// "Nice" tick values covering `lo..hi` (about five).
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    if !(step.is_finite() && step > 0.0 && lo.is_finite() && hi.is_finite()) {
        return Vec::new();
    }
    // By index, not by repeated addition: far from zero `t + step` may equal `t`.
    let first = (lo / step).ceil();
    (0..12)
        .map(|i| (first + i as f64) * step)
        .take_while(|t| *t <= hi + 1e-9 * step)
        .collect()
}

fn label(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 || v.abs() < 0.01 {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Draws one panel in `area` = `[x0, y0, w, h]` pixels.
fn panel(svg: &mut String, area: [f64; 4], title: &str, xlabel: &str, series: &[Series]) {
    let [x0, y0, w, h] = area;
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let (ml, mr, mt, mb) = (58.0, 12.0, 28.0, 40.0);
    let (pw, ph) = (w - ml - mr, h - mt - mb);
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" font-size="14" text-anchor="middle" font-weight="bold">{title}</text>"#,
        x0 + ml + pw / 2.0,
        y0 + 18.0
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{:.1}" y="{:.1}" width="{pw:.1}" height="{ph:.1}" fill="none" stroke="#888"/>"##,
        x0 + ml,
        y0 + mt
    );
    if all.is_empty() {
        return;
    }
    let (mut xl, mut xh) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (mut yl, mut yh) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if xh <= xl {
        xl -= 0.5;
        xh += 0.5;
    }
    if yh <= yl {
        yl -= 0.5;
        yh += 0.5;
    }
    let pad = 0.05 * (yh - yl);
    let (yl, yh) = (yl - pad, yh + pad);
    let sx = |x: f64| x0 + ml + (x - xl) / (xh - xl) * pw;
    let sy = |y: f64| y0 + mt + ph - (y - yl) / (yh - yl) * ph;
    for t in ticks(yl, yh) {
        let y = sy(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            x0 + ml,
            x0 + ml + pw,
            x0 + ml - 4.0,
            y + 4.0,
            label(t)
        );
    }
    // Epochs are whole numbers.
    let whole = xlabel == "epoch";
    for t in ticks(xl, xh)
        .into_iter()
        .filter(|t| !whole || t.fract() == 0.0)
    {
        let x = sx(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
            y0 + mt,
            y0 + mt + ph,
            y0 + mt + ph + 14.0,
            label(t)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{xlabel}</text>"#,
        x0 + ml + pw / 2.0,
        y0 + h - 6.0
    );
    for (k, s) in series.iter().enumerate() {
        let pts: Vec<String> = s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        if pts.is_empty() {
            continue;
        }
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="{}" stroke-opacity="{}" points="{}"/>"#,
            s.color,
            s.width,
            s.opacity,
            pts.join(" ")
        );
        if s.markers {
            for &(x, y) in &s.points {
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                    sx(x),
                    sy(y),
                    s.color
                );
            }
        }
        if !s.label.is_empty() {
            let ly = y0 + mt + 14.0 + 15.0 * k as f64;
            let lx = x0 + ml + pw - 150.0;
            let _ = writeln!(
                svg,
                r#"<line x1="{lx:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"/><text x="{:.1}" y="{ly:.1}" font-size="11">{}</text>"#,
                ly - 4.0,
                lx + 18.0,
                ly - 4.0,
                s.color,
                lx + 22.0,
                s.label
            );
        }
    }
}

/// Moving average of `ys` over a window of `k` values.
fn smooth(points: &[(f64, f64)], k: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len());
    let mut sum = 0.0;
    for (i, &(x, y)) in points.iter().enumerate() {
        sum += y;
        if i >= k {
            sum -= points[i - k].1;
        }
        out.push((x, sum / (i + 1).min(k) as f64));
    }
    out
}

/// The SVG text of a run's plot; `metric` names the right panel's values and picks them
/// from each epoch row.
pub fn render(
    title: &str,
    steps: &[StepRow],
    epochs: &[EpochRow],
    metric: (&str, fn(&EpochRow) -> Option<f64>),
) -> String {
    let (w, h) = (960.0, 380.0);
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="16" font-size="13" text-anchor="middle" fill="#444">{}</text>
"##,
        w / 2.0,
        title.replace('&', "&amp;").replace('<', "&lt;")
    );
    let raw: Vec<(f64, f64)> = steps.iter().map(|s| (s.step as f64, s.loss)).collect();
    let window = (raw.len() / 50).clamp(1, 200);
    let valid: Vec<(f64, f64)> = epochs
        .iter()
        .map(|e| (e.step as f64, e.valid.loss))
        .collect();
    let left = [
        Series {
            points: raw.clone(),
            color: "#1f77b4",
            width: 1.0,
            markers: false,
            opacity: 0.25,
            label: "",
        },
        Series {
            points: smooth(&raw, window),
            color: "#1f77b4",
            width: 2.0,
            markers: false,
            opacity: 1.0,
            label: "training loss",
        },
        Series {
            points: valid,
            color: "#d62728",
            width: 2.0,
            markers: true,
            opacity: 1.0,
            label: "validation loss",
        },
    ];
    panel(
        &mut svg,
        [0.0, 20.0, w / 2.0, h - 20.0],
        "loss",
        "update",
        &left,
    );
    let right = [Series {
        points: epochs
            .iter()
            .filter_map(|e| metric.1(e).map(|v| (e.epoch as f64, v)))
            .collect(),
        color: "#2ca02c",
        width: 2.0,
        markers: true,
        opacity: 1.0,
        label: "",
    }];
    panel(
        &mut svg,
        [w / 2.0, 20.0, w / 2.0, h - 20.0],
        &format!("validation {}", metric.0),
        "epoch",
        &right,
    );
    svg += "</svg>\n";
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = ticks(1.23, 1.31);
        assert!(
            t.len() >= 3 && t[0] >= 1.23 && *t.last().unwrap() <= 1.31,
            "{t:?}"
        );
    }
}
