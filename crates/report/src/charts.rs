//! Chart geometry: each chart becomes an [`Svg`] of plain rectangles, lines and
//! text with coordinates computed here, so the template only has to emit
//! elements (and escapes every piece of data text while doing so).

use serde::Serialize;

use crate::format;

// Palette: neutral ink and grid, one accent per series.
pub(crate) const INK: &str = "#1f2937";
pub(crate) const MUTED: &str = "#6b7280";
const GRID: &str = "#e5e7eb";
const EMPTY_CELL: &str = "#f8fafc";

/// Average advance of a 12px system-font character; labels are sized with it
/// because SVG cannot measure text without a script.
const CHAR_W: f64 = 6.8;
/// Default drawing width; SVGs scale down with the page.
const WIDTH: f64 = 880.0;

pub(crate) fn outcome_color(outcome: &str) -> &'static str {
    match outcome {
        "converted" => "#16a34a",
        "resolved" => "#2563eb",
        "abandoned" => "#dc2626",
        "unresolved" => "#f59e0b",
        "browsed" => "#94a3b8",
        _ => "#a855f7",
    }
}

pub(crate) fn friction_color(kind: &str) -> &'static str {
    match kind {
        "repeat_contact" => "#7c3aed",
        "unanswered_contact" => "#f59e0b",
        "error" => "#dc2626",
        "abandon" => "#db2777",
        "drop_off" => "#64748b",
        _ => "#0891b2",
    }
}

pub(crate) fn model_color(model: &str) -> &'static str {
    match model {
        "first_touch" => "#2563eb",
        "last_touch" => "#f59e0b",
        "linear" => "#10b981",
        _ => "#a855f7",
    }
}

pub(crate) const P50_COLOR: &str = "#93c5fd";
pub(crate) const P90_COLOR: &str = "#1d4ed8";
pub(crate) const JOURNEYS_COLOR: &str = "#cbd5e1";
pub(crate) const CONVERSIONS_COLOR: &str = "#0d9488";
pub(crate) const HISTOGRAM_COLOR: &str = "#0d9488";

/// One inline SVG: a title and description for screen readers, then shapes.
#[derive(Debug, Serialize)]
pub(crate) struct Svg {
    pub(crate) width: f64,
    pub(crate) height: f64,
    pub(crate) title: String,
    pub(crate) desc: String,
    rects: Vec<Rect>,
    lines: Vec<Line>,
    texts: Vec<Text>,
}

#[derive(Debug, Serialize)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    fill: String,
    stroke: Option<&'static str>,
    /// Hover text (an SVG `<title>` child).
    tip: Option<String>,
}

#[derive(Debug, Serialize)]
struct Line {
    x1: f64,
    y1: f64,
    x2: f64,
    y2: f64,
    stroke: &'static str,
}

#[derive(Debug, Serialize)]
struct Text {
    x: f64,
    y: f64,
    text: String,
    /// `start`, `middle` or `end`.
    anchor: &'static str,
    /// CSS class: `lbl`, `val`, `axis`, `cell` or `head`.
    class: &'static str,
    fill: Option<&'static str>,
    /// Degrees around (x, y).
    rotate: Option<f64>,
    tip: Option<String>,
}

/// Sum of counts, saturating: corrupt input near `u64::MAX` must not panic the report.
pub(crate) fn saturating_sum(counts: impl IntoIterator<Item = u64>) -> u64 {
    counts.into_iter().fold(0, u64::saturating_add)
}

/// Coordinates to a tenth of a pixel keep the markup short.
fn px(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn text_width(s: &str) -> f64 {
    s.chars().count() as f64 * CHAR_W
}

impl Svg {
    fn new(title: impl Into<String>, desc: impl Into<String>) -> Svg {
        Svg {
            width: WIDTH,
            height: 0.0,
            title: title.into(),
            desc: desc.into(),
            rects: Vec::new(),
            lines: Vec::new(),
            texts: Vec::new(),
        }
    }

    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: impl Into<String>, tip: Option<String>) -> &mut Rect {
        self.rects.push(Rect {
            x: px(x),
            y: px(y),
            w: px(w.max(0.0)),
            h: px(h.max(0.0)),
            fill: fill.into(),
            stroke: None,
            tip,
        });
        let last = self.rects.len() - 1;
        &mut self.rects[last]
    }

    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &'static str) {
        self.lines.push(Line { x1: px(x1), y1: px(y1), x2: px(x2), y2: px(y2), stroke });
    }

    fn text(
        &mut self,
        x: f64,
        y: f64,
        text: impl Into<String>,
        anchor: &'static str,
        class: &'static str,
    ) -> &mut Text {
        self.texts.push(Text {
            x: px(x),
            y: px(y),
            text: text.into(),
            anchor,
            class,
            fill: None,
            rotate: None,
            tip: None,
        });
        let last = self.texts.len() - 1;
        &mut self.texts[last]
    }
}

/// Round tick step for an axis up to `max` with about `target` ticks.
fn nice_step(max: f64, target: f64) -> f64 {
    if max.is_nan() || max <= 0.0 {
        return 1.0;
    }
    let raw = max / target;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * magnitude).find(|&s| s >= raw).unwrap_or(10.0 * magnitude);
    // Counts are whole; a step below one would label 0.2 of a journey.
    step.max(1.0)
}

/// Ticks 0, step, … up to the first at or above `max`; the last is the axis end.
fn ticks(max: f64, step: f64) -> Vec<f64> {
    let n = (max / step).ceil().max(1.0) as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

fn count_ticks(max: f64) -> Vec<(f64, String)> {
    ticks(max, nice_step(max, 5.0)).into_iter().map(|t| (t, format::decimal(t, 0))).collect()
}

fn duration_ticks(max_ms: f64) -> Vec<(f64, String)> {
    const STEPS: [i64; 18] = [
        1_000,
        5_000,
        15_000,
        30_000,
        60_000,
        5 * 60_000,
        10 * 60_000,
        15 * 60_000,
        30 * 60_000,
        3_600_000,
        2 * 3_600_000,
        4 * 3_600_000,
        6 * 3_600_000,
        12 * 3_600_000,
        86_400_000,
        2 * 86_400_000,
        7 * 86_400_000,
        30 * 86_400_000,
    ];
    let step = STEPS.iter().map(|&s| s as f64).find(|&s| max_ms / s <= 6.0).unwrap_or_else(|| nice_step(max_ms, 5.0));
    ticks(max_ms, step)
        .into_iter()
        .map(|t| (t, if t == 0.0 { "0".to_string() } else { format::duration(t as i64) }))
        .collect()
}

/// One row of a horizontal bar chart.
pub(crate) struct HRow {
    pub(crate) label: String,
    /// Full text for the hover tip (the label may be cut short).
    pub(crate) tip: String,
    pub(crate) lanes: Vec<Lane>,
}

/// One bar of a row, with the text printed after it.
pub(crate) struct Lane {
    pub(crate) value: f64,
    pub(crate) fill: &'static str,
    pub(crate) text: String,
}

/// How the lanes of a row share its height.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lanes {
    /// Lanes stacked top to bottom, each with its own text.
    Stacked,
    /// Lanes drawn over each other (first behind), text of the last one only.
    Overlaid,
}

pub(crate) enum Axis {
    Count,
    Duration,
}

/// Horizontal bars on one linear scale with a labelled top axis.
pub(crate) fn hbars(title: &str, desc: &str, rows: &[HRow], lanes: Lanes, axis: Axis) -> Svg {
    const LANE_H: f64 = 16.0;
    const LANE_GAP: f64 = 3.0;
    const ROW_GAP: f64 = 12.0;
    const TOP: f64 = 28.0;
    let mut svg = Svg::new(title, desc);
    let max_label = rows.iter().map(|r| text_width(&r.label)).fold(0.0, f64::max);
    let label_w = (max_label + 16.0).clamp(60.0, 360.0);
    let value_w = rows.iter().flat_map(|r| &r.lanes).map(|l| text_width(&l.text)).fold(0.0, f64::max) + 16.0;
    let plot_x = label_w;
    let plot_w = (WIDTH - label_w - value_w).max(120.0);
    let max = rows.iter().flat_map(|r| &r.lanes).map(|l| l.value).fold(0.0, f64::max);
    let ticks = match axis {
        Axis::Count => count_ticks(max),
        Axis::Duration => duration_ticks(max),
    };
    let axis_max = ticks.last().map_or(1.0, |t| t.0).max(f64::MIN_POSITIVE);
    let lanes_in_row = match lanes {
        Lanes::Stacked => rows.iter().map(|r| r.lanes.len()).max().unwrap_or(1).max(1),
        Lanes::Overlaid => 1,
    };
    let row_h = lanes_in_row as f64 * LANE_H + (lanes_in_row - 1) as f64 * LANE_GAP;
    let bottom = TOP + rows.len() as f64 * (row_h + ROW_GAP);
    for (t, label) in &ticks {
        let x = plot_x + t / axis_max * plot_w;
        svg.line(x, TOP - 6.0, x, bottom - ROW_GAP / 2.0, GRID);
        svg.text(x, TOP - 11.0, label.clone(), "middle", "axis");
    }
    for (i, row) in rows.iter().enumerate() {
        let y0 = TOP + i as f64 * (row_h + ROW_GAP) + ROW_GAP / 2.0;
        svg.text(plot_x - 10.0, y0 + row_h / 2.0 + 4.0, row.label.clone(), "end", "lbl").tip = Some(row.tip.clone());
        let mut text_x: f64 = 0.0;
        for (j, lane) in row.lanes.iter().enumerate() {
            let y = if lanes == Lanes::Stacked { y0 + j as f64 * (LANE_H + LANE_GAP) } else { y0 };
            let w = lane.value / axis_max * plot_w;
            let tip = format!("{}: {}", row.tip, lane.text);
            svg.rect(plot_x, y, w, LANE_H, lane.fill, Some(tip));
            text_x = text_x.max(w);
            if lanes == Lanes::Stacked {
                svg.text(plot_x + w + 6.0, y + LANE_H / 2.0 + 4.0, lane.text.clone(), "start", "val");
            }
        }
        if let (Lanes::Overlaid, Some(last)) = (lanes, row.lanes.last()) {
            svg.text(plot_x + text_x + 6.0, y0 + LANE_H / 2.0 + 4.0, last.text.clone(), "start", "val");
        }
    }
    svg.line(plot_x, TOP - 6.0, plot_x, bottom - ROW_GAP / 2.0, MUTED);
    svg.height = px(bottom + 4.0);
    svg
}

/// A group of vertical bars under one x label.
pub(crate) struct VGroup {
    pub(crate) label: String,
    pub(crate) bars: Vec<VBar>,
}

pub(crate) struct VBar {
    pub(crate) value: f64,
    pub(crate) fill: &'static str,
    /// Printed above the bar.
    pub(crate) text: String,
    pub(crate) tip: String,
}

/// Vertical (optionally grouped) bars with a labelled left axis.
pub(crate) fn vbars(title: &str, desc: &str, groups: &[VGroup]) -> Svg {
    const TOP: f64 = 24.0;
    const PLOT_H: f64 = 220.0;
    const LEFT: f64 = 64.0;
    let mut svg = Svg::new(title, desc);
    let max = groups.iter().flat_map(|g| &g.bars).map(|b| b.value).fold(0.0, f64::max);
    let ticks = count_ticks(max);
    let axis_max = ticks.last().map_or(1.0, |t| t.0).max(f64::MIN_POSITIVE);
    let plot_w = WIDTH - LEFT - 12.0;
    let base = TOP + PLOT_H;
    for (t, label) in &ticks {
        let y = base - t / axis_max * PLOT_H;
        svg.line(LEFT, y, LEFT + plot_w, y, GRID);
        svg.text(LEFT - 8.0, y + 4.0, label.clone(), "end", "axis");
    }
    let group_w = plot_w / groups.len().max(1) as f64;
    let bars_per_group = groups.iter().map(|g| g.bars.len()).max().unwrap_or(1).max(1);
    let bar_w = ((group_w * 0.78) / bars_per_group as f64).min(56.0);
    // Value labels above narrow bars would collide; keep them only where they fit.
    let small = bar_w < 40.0;
    for (i, group) in groups.iter().enumerate() {
        let gx = LEFT + i as f64 * group_w;
        let bars_w = bar_w * group.bars.len() as f64;
        let x0 = gx + (group_w - bars_w) / 2.0;
        for (j, bar) in group.bars.iter().enumerate() {
            let h = bar.value / axis_max * PLOT_H;
            let x = x0 + j as f64 * bar_w;
            svg.rect(x + 1.0, base - h, bar_w - 2.0, h, bar.fill, Some(bar.tip.clone()));
            if !bar.text.is_empty() && text_width(&bar.text) * if small { 0.8 } else { 1.0 } <= bar_w + 12.0 {
                svg.text(
                    x + bar_w / 2.0,
                    base - h - 5.0,
                    bar.text.clone(),
                    "middle",
                    if small { "axis" } else { "val" },
                );
            }
        }
        let max_chars = ((group_w - 4.0) / CHAR_W).floor().max(3.0) as usize;
        svg.text(gx + group_w / 2.0, base + 18.0, format::truncate(&group.label, max_chars), "middle", "lbl").tip =
            Some(group.label.clone());
    }
    svg.line(LEFT, base, LEFT + plot_w, base, MUTED);
    svg.height = px(base + 30.0);
    svg
}

/// A 100% stacked bar: (label, count, colour) segments left to right.
pub(crate) fn stacked_share(title: &str, desc: &str, parts: &[(String, u64, &'static str)]) -> Svg {
    const H: f64 = 34.0;
    let mut svg = Svg::new(title, desc);
    let all = saturating_sum(parts.iter().map(|p| p.1));
    let mut x = 0.0;
    for (label, n, color) in parts {
        let share = if all > 0 { *n as f64 / all as f64 } else { 0.0 };
        let w = share * WIDTH;
        let tip = format!("{label}: {} ({})", format::count(*n), format::percent(share));
        svg.rect(x, 0.0, w, H, *color, Some(tip));
        let pct = format::percent(share);
        if text_width(&pct) + 10.0 < w {
            svg.text(x + w / 2.0, H / 2.0 + 4.0, pct, "middle", "cell").fill = Some("#ffffff");
        }
        x += w;
    }
    svg.height = H;
    svg
}

/// A from × to heatmap; `cells[r][c]` is the count from `names[r]` to `names[c]`.
pub(crate) fn heatmap(title: &str, desc: &str, names: &[String], cells: &[Vec<u64>]) -> Svg {
    const CELL_W: f64 = 56.0;
    const CELL_H: f64 = 34.0;
    let mut svg = Svg::new(title, desc);
    let labels: Vec<String> = names.iter().map(|n| format::truncate(n, 24)).collect();
    let longest = labels.iter().map(|l| text_width(l)).fold(0.0, f64::max);
    let left = (longest + 22.0).max(70.0);
    // Column labels are turned 45°, so their height is about 0.7 of their length.
    let top = longest * 0.72 + 40.0;
    let n = names.len();
    let all_hops = saturating_sum(cells.iter().flatten().copied());
    let max = cells.iter().flatten().copied().max().unwrap_or(0).max(1);
    svg.text(left, 14.0, "to channel →", "start", "head");
    svg.text(12.0, top - 10.0, "from ↓", "start", "head");
    for (c, label) in labels.iter().enumerate() {
        let x = left + c as f64 * CELL_W + CELL_W / 2.0;
        let t = svg.text(x - 2.0, top - 8.0, label.clone(), "start", "lbl");
        t.rotate = Some(-45.0);
        t.tip = Some(names[c].clone());
    }
    let totals_x = left + n as f64 * CELL_W + 10.0;
    svg.text(totals_x, top - 8.0, "total", "start", "axis");
    for (r, row) in cells.iter().enumerate() {
        let y = top + r as f64 * CELL_H;
        svg.text(left - 10.0, y + CELL_H / 2.0 + 4.0, labels[r].clone(), "end", "lbl").tip = Some(names[r].clone());
        for (c, &hops) in row.iter().enumerate() {
            let x = left + c as f64 * CELL_W;
            let share = if all_hops > 0 { hops as f64 / all_hops as f64 } else { 0.0 };
            let tip = format!("{} → {}: {} hops ({})", names[r], names[c], format::count(hops), format::percent(share));
            // Square-root scale: a few dominant hops would otherwise wash out the rest.
            let t = (hops as f64 / max as f64).sqrt();
            let fill = if hops == 0 { EMPTY_CELL.to_string() } else { blend(t) };
            svg.rect(x + 1.0, y + 1.0, CELL_W - 2.0, CELL_H - 2.0, fill, Some(tip)).stroke = Some(GRID);
            let cell_text = svg.text(x + CELL_W / 2.0, y + CELL_H / 2.0 + 4.0, format::count(hops), "middle", "cell");
            cell_text.fill = Some(if hops == 0 {
                "#cbd5e1"
            } else if t > 0.55 {
                "#ffffff"
            } else {
                INK
            });
        }
        svg.text(totals_x, y + CELL_H / 2.0 + 4.0, format::count(saturating_sum(row.iter().copied())), "start", "axis");
    }
    let bottom = top + n as f64 * CELL_H;
    for c in 0..n {
        let x = left + c as f64 * CELL_W + CELL_W / 2.0;
        svg.text(x, bottom + 16.0, format::count(saturating_sum(cells.iter().map(|row| row[c]))), "middle", "axis");
    }
    svg.text(left - 10.0, bottom + 16.0, "total", "end", "axis");
    svg.width = px((totals_x + 60.0).max(320.0));
    svg.height = px(bottom + 26.0);
    svg
}

/// Light to dark blue for `t` in 0..=1.
fn blend(t: f64) -> String {
    const LIGHT: [f64; 3] = [219.0, 234.0, 254.0];
    const DARK: [f64; 3] = [30.0, 58.0, 138.0];
    let t = t.clamp(0.0, 1.0);
    let c: Vec<u8> = LIGHT.iter().zip(DARK).map(|(l, d)| (l + (d - l) * t).round() as u8).collect();
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(nice_step(97.0, 5.0), 20.0);
        assert_eq!(nice_step(3.0, 5.0), 1.0);
        assert_eq!(nice_step(0.0, 5.0), 1.0);
        assert_eq!(ticks(97.0, 20.0), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let d = duration_ticks(2.5 * 3_600_000.0);
        assert_eq!(d.last().map(|t| t.1.as_str()), Some("2h 30m"));
        assert_eq!(blend(0.0), "#dbeafe");
        assert_eq!(blend(1.0), "#1e3a8a");
    }
}
