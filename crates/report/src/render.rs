//! The page: a serializable view of the [`Report`] (text already formatted for
//! people, charts already laid out) rendered by the embedded minijinja templates.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::aggregate::MODELS;
use crate::charts::{
    self, Axis, CONVERSIONS_COLOR, HISTOGRAM_COLOR, HRow, JOURNEYS_COLOR, Lane, Lanes, P50_COLOR, P90_COLOR, Svg, VBar,
    VGroup, saturating_sum,
};
use crate::format::{self, count, duration, percent_or_dash};
use crate::{Error, IdentityFigures, RESOLUTION_BUCKETS, Report};

/// Channels beyond this many are folded into one heatmap row and column, which
/// keeps the grid readable on a slide.
const MAX_FLOW_CHANNELS: usize = 12;
const TOP_FRICTION: usize = 15;
const TOP_PATHS: usize = 10;
/// Why linear attribution shows fractions of conversions.
pub(crate) const LINEAR_FRACTIONS: &str = "Linear attribution splits each conversion evenly over the channel \
     segments of its path, so channels get fractions of conversions (a web → phone path gives each 0.5); \
     the linear conversions of a channel add up its fractions over every path it is on.";
/// Label for the folded channels; engine channel names cannot contain parentheses.
const OTHER: &str = "(other)";

/// What the report's dates are: always event time (the `ts` the events carry, not when
/// omnimeter read them); for `omnimeter demo` the generated traffic's simulated clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clock {
    Event,
    Simulated,
}

pub(crate) fn html(report: &Report, clock: Clock) -> Result<String, Error> {
    let mut env = Environment::new();
    // Whitespace settings apply when a template is added, so they come first.
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Names end in .html, so minijinja escapes every interpolated value for HTML.
    env.add_template("report.html", include_str!("../templates/report.html"))?;
    env.add_template("charts.html", include_str!("../templates/charts.html"))?;
    let view = View::new(report, clock);
    Ok(env.get_template("report.html")?.render(&view)?)
}

#[derive(Serialize)]
struct View {
    source: String,
    files_read: String,
    has_journeys: bool,
    range: Option<String>,
    /// What the dates are, for the header ("event time" or "simulated event time").
    time_basis: &'static str,
    /// The same, explained in a sentence under the headline.
    time_note: &'static str,
    kpis: Vec<Kpi>,
    /// Identity resolution figures (SPEC §6); empty for outputs without identity data.
    identity_kpis: Vec<Kpi>,
    outcomes: Option<Svg>,
    outcome_legend: Vec<Legend>,
    flow: Option<Chart>,
    resolution: Option<Chart>,
    distribution: Option<Chart>,
    distribution_table: Option<DistributionTable>,
    friction: Option<Chart>,
    paths: Option<Chart>,
    path_rows: Vec<PathRow>,
    attribution: Option<Chart>,
    attribution_rows: Vec<AttributionRow>,
    models: Vec<Legend>,
}

/// An SVG with its legend and a one-line reading of it.
#[derive(Serialize)]
struct Chart {
    svg: Svg,
    legend: Vec<Legend>,
    note: String,
}

#[derive(Serialize)]
struct Kpi {
    label: &'static str,
    value: String,
    note: String,
}

#[derive(Serialize)]
struct Legend {
    label: String,
    color: &'static str,
    value: Option<String>,
}

fn legend(label: impl Into<String>, color: &'static str) -> Legend {
    Legend { label: label.into(), color, value: None }
}

#[derive(Serialize)]
struct DistributionTable {
    buckets: Vec<&'static str>,
    rows: Vec<DistributionRow>,
}

#[derive(Serialize)]
struct DistributionRow {
    channel: String,
    resolved: String,
    p50: String,
    p90: String,
    cells: Vec<ShareCell>,
}

/// A count with the background tint of its share of the row.
#[derive(Serialize)]
struct ShareCell {
    value: String,
    tint: String,
}

#[derive(Serialize)]
struct PathRow {
    rank: usize,
    path: String,
    journeys: String,
    conversions: String,
    rate: String,
    value: String,
}

#[derive(Serialize)]
struct AttributionRow {
    channel: String,
    /// (conversions, value) per model in [`MODELS`] order.
    models: Vec<(String, String)>,
}

impl View {
    fn new(r: &Report, clock: Clock) -> View {
        let h = &r.headline;
        let range = match (h.start_ms, h.end_ms) {
            (Some(start), Some(end)) => Some(format!("{} – {}", format::utc(start), format::utc(end))),
            _ => None,
        };
        let (flow, resolution, distribution) = (flow(r), resolution(r), distribution(r));
        let (paths, path_rows) = paths(r);
        let (attribution, attribution_rows) = attribution(r);
        let (time_basis, time_note) = match clock {
            Clock::Event => {
                ("event time", "Dates are event time: the timestamps the events carry, not when omnimeter read them.")
            }
            Clock::Simulated => (
                "simulated event time",
                "Dates are simulated event time: the clock of the generated demo traffic, which streams \
                 hours of customer activity in seconds, not when the demo ran.",
            ),
        };
        View {
            source: r.source.display().to_string(),
            files_read: count(r.files_read as u64),
            has_journeys: h.journeys > 0,
            range,
            time_basis,
            time_note,
            kpis: kpis(r),
            identity_kpis: r.identity.as_ref().map(|i| identity_kpis(i, h.journeys)).unwrap_or_default(),
            outcomes: outcomes(r),
            outcome_legend: outcome_legend(r),
            flow,
            resolution,
            distribution,
            distribution_table: distribution_table(r),
            friction: friction(r),
            paths,
            path_rows,
            attribution,
            attribution_rows,
            models: MODELS.iter().map(|m| legend(format::humanize(m), charts::model_color(m))).collect(),
        }
    }
}

fn kpis(r: &Report) -> Vec<Kpi> {
    let h = &r.headline;
    let resolved: u64 = saturating_sum(r.resolution.iter().map(|c| c.resolved));
    vec![
        Kpi { label: "Journeys", value: count(h.journeys), note: "closed customer journeys".to_string() },
        Kpi { label: "Events", value: count(h.events), note: "in those journeys".to_string() },
        Kpi {
            label: "Conversion rate",
            value: percent_or_dash(h.conversion_rate),
            note: format!("{} journeys converted", count(h.converted)),
        },
        Kpi {
            label: "First-contact resolution",
            value: percent_or_dash(h.fcr_rate),
            note: format!(
                "resolved at the first contact, of the {} journeys with a resolution time (any outcome)",
                count(resolved)
            ),
        },
        Kpi {
            label: "Mean hops per journey",
            value: h.mean_hops.map_or_else(|| "—".to_string(), |m| format::decimal(m, 2)),
            note: "channel changes within a journey".to_string(),
        },
        Kpi {
            label: "Unanswered contacts",
            value: count(h.unanswered_contacts),
            note: "contacts with no reply within the SLA".to_string(),
        },
    ]
}

fn identity_kpis(i: &IdentityFigures, journeys: u64) -> Vec<Kpi> {
    let types: Vec<String> = i.links_by_type.iter().map(|(t, n)| format!("{} {t}", count(*n))).collect();
    let unresolved = i.anonymous_events.saturating_sub(i.resolved_events);
    vec![
        Kpi {
            label: "Journeys stitched",
            value: percent_or_dash(i.stitched_share),
            note: format!(
                "{} of {} journeys joined events without a customer_id to a known customer",
                count(i.stitched_journeys),
                count(journeys)
            ),
        },
        Kpi {
            label: "Journeys of anonymous customers",
            value: count(i.anonymous_journeys),
            note: format!(
                "known only by a cookie, phone or card (anon:…); {} of {} anonymous events stayed anonymous",
                count(unresolved),
                count(i.anonymous_events)
            ),
        },
        Kpi {
            label: "Identity links",
            value: count(i.links),
            note: if types.is_empty() {
                "identities that got an owner".to_string()
            } else {
                format!("identities that got an owner: {}", types.join(", "))
            },
        },
        Kpi {
            label: "Identity conflicts",
            value: count(i.conflicts),
            note: "links to another customer than the owner (shared devices, family phones), ignored".to_string(),
        },
    ]
}

fn outcomes(r: &Report) -> Option<Svg> {
    if r.outcomes.is_empty() {
        return None;
    }
    let parts: Vec<(String, u64, &'static str)> = r
        .outcomes
        .iter()
        .map(|o| (format::humanize(&o.outcome), o.journeys, charts::outcome_color(&o.outcome)))
        .collect();
    Some(charts::stacked_share("Journeys by outcome", "Share of journeys per outcome, as a stacked bar.", &parts))
}

fn outcome_legend(r: &Report) -> Vec<Legend> {
    let total: u64 = saturating_sum(r.outcomes.iter().map(|o| o.journeys));
    r.outcomes
        .iter()
        .map(|o| Legend {
            label: format::humanize(&o.outcome),
            color: charts::outcome_color(&o.outcome),
            value: Some(format!("{} ({})", count(o.journeys), percent_or_dash(ratio(o.journeys, total)))),
        })
        .collect()
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn flow(r: &Report) -> Option<Chart> {
    let total: u64 = saturating_sum(r.transitions.iter().map(|t| t.hops));
    if r.transitions.is_empty() {
        return None;
    }
    let mut traffic: BTreeMap<&str, u64> = BTreeMap::new();
    for t in &r.transitions {
        let from = traffic.entry(&t.from).or_default();
        *from = from.saturating_add(t.hops);
        let to = traffic.entry(&t.to).or_default();
        *to = to.saturating_add(t.hops);
    }
    let mut busiest: Vec<(&str, u64)> = traffic.into_iter().collect();
    busiest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let folded = busiest.len() > MAX_FLOW_CHANNELS;
    let kept = if folded { MAX_FLOW_CHANNELS - 1 } else { busiest.len() };
    let mut names: Vec<String> = busiest[..kept].iter().map(|(n, _)| n.to_string()).collect();
    if folded {
        names.push(OTHER.to_string());
    }
    let index = |name: &str| names.iter().position(|n| n == name).unwrap_or(names.len() - 1);
    let mut cells = vec![vec![0u64; names.len()]; names.len()];
    for t in &r.transitions {
        let cell = &mut cells[index(&t.from)][index(&t.to)];
        *cell = cell.saturating_add(t.hops);
    }
    let top = &r.transitions[0];
    let mut note = format!(
        "{} hops between {} channels; rows are the channel left, columns the channel moved to, darker cells \
         more hops. The busiest hand-off is {} → {} ({} hops, {} of all hops).",
        count(total),
        count(busiest.len() as u64),
        top.from,
        top.to,
        count(top.hops),
        percent_or_dash(ratio(top.hops, total)),
    );
    if folded {
        note.push_str(&format!(" The {} least busy channels are folded into {OTHER}.", busiest.len() - kept));
    }
    let svg = charts::heatmap(
        "Channel flow: hops from one channel to the next",
        "Heatmap with one row per channel a customer left and one column per channel they moved to; \
         darker cells mean more hops.",
        &names,
        &cells,
    );
    Some(Chart { svg, legend: Vec::new(), note })
}

fn resolution(r: &Report) -> Option<Chart> {
    if r.resolution.is_empty() {
        return None;
    }
    let rows: Vec<HRow> = r
        .resolution
        .iter()
        .map(|c| HRow {
            label: format::truncate(&c.channel, 40),
            tip: format!("{} ({} journeys with a resolution time)", c.channel, count(c.resolved)),
            lanes: vec![
                Lane { value: c.p50_ms as f64, fill: P50_COLOR, text: format!("p50 {}", duration(c.p50_ms)) },
                Lane { value: c.p90_ms as f64, fill: P90_COLOR, text: format!("p90 {}", duration(c.p90_ms)) },
            ],
        })
        .collect();
    let svg = charts::hbars(
        "Resolution time by first channel (p50 and p90)",
        "Horizontal bars per first channel: median and 90th percentile time from opening a request to resolving it, \
         over the journeys with a resolution time.",
        &rows,
        Lanes::Stacked,
        Axis::Duration,
    );
    let mut note = String::from(
        "Time from a journey's first request (or, without one, its first contact) to its resolution, \
         by the channel the journey started on. This counts journeys with a resolution time, whatever their \
         outcome (a converted journey can have one), so it is not the Resolved outcome above",
    );
    if let (Some(p50), Some(p90)) = (r.resolution_p50_ms, r.resolution_p90_ms) {
        note.push_str(&format!(
            "; over all channels the median is {} and 90% resolve within {}.",
            duration(p50),
            duration(p90)
        ));
    } else {
        note.push('.');
    }
    let legend = vec![legend("p50 (median)", P50_COLOR), legend("p90", P90_COLOR)];
    Some(Chart { svg, legend, note })
}

fn distribution(r: &Report) -> Option<Chart> {
    let mut totals = [0u64; RESOLUTION_BUCKETS.len()];
    for c in &r.resolution {
        for (t, n) in totals.iter_mut().zip(c.buckets) {
            *t = t.saturating_add(n);
        }
    }
    let all: u64 = saturating_sum(totals);
    if all == 0 {
        return None;
    }
    let groups: Vec<VGroup> = RESOLUTION_BUCKETS
        .iter()
        .zip(totals)
        .map(|(&(label, _), n)| {
            let share = percent_or_dash(ratio(n, all));
            VGroup {
                label: label.to_string(),
                bars: vec![VBar {
                    value: n as f64,
                    fill: HISTOGRAM_COLOR,
                    text: if n > 0 { format!("{} · {share}", count(n)) } else { String::new() },
                    tip: format!("{label}: {} journeys with a resolution time ({share})", count(n)),
                }],
            }
        })
        .collect();
    let svg = charts::vbars(
        "Distribution of resolution times",
        "Histogram of journeys with a resolution time, in log-spaced buckets from under a minute to over a day.",
        &groups,
    );
    let (peak, _) = RESOLUTION_BUCKETS
        .iter()
        .zip(totals)
        .fold((RESOLUTION_BUCKETS[0].0, 0), |best, (&(l, _), n)| if n > best.1 { (l, n) } else { best });
    let within_hour: u64 = saturating_sum(totals[..4].iter().copied());
    let note = format!(
        "{} journeys with a resolution time over all channels (any outcome); the most common resolution time is \
         {peak}, and {} resolve within an hour.",
        count(all),
        percent_or_dash(ratio(within_hour, all)),
    );
    Some(Chart { svg, legend: Vec::new(), note })
}

fn distribution_table(r: &Report) -> Option<DistributionTable> {
    if r.resolution.is_empty() {
        return None;
    }
    let rows = r
        .resolution
        .iter()
        .map(|c| DistributionRow {
            channel: c.channel.clone(),
            resolved: count(c.resolved),
            p50: duration(c.p50_ms),
            p90: duration(c.p90_ms),
            cells: c
                .buckets
                .iter()
                .map(|&n| {
                    let share = ratio(n, c.resolved).unwrap_or(0.0);
                    ShareCell {
                        value: if n > 0 { count(n) } else { "·".to_string() },
                        tint: format!("rgba(13, 148, 136, {:.2})", share * 0.55),
                    }
                })
                .collect(),
        })
        .collect();
    Some(DistributionTable { buckets: RESOLUTION_BUCKETS.iter().map(|b| b.0).collect(), rows })
}

fn friction(r: &Report) -> Option<Chart> {
    if r.friction.is_empty() {
        return None;
    }
    let total: u64 = saturating_sum(r.friction.iter().map(|f| f.occurrences));
    let rows: Vec<HRow> = r
        .friction
        .iter()
        .take(TOP_FRICTION)
        .map(|f| {
            let full = format!("{} · {} · {}", format::humanize(&f.kind), f.channel, f.step.as_deref().unwrap_or("—"));
            let share = percent_or_dash(ratio(f.occurrences, total));
            HRow {
                label: format::truncate(&full, 48),
                tip: full,
                lanes: vec![Lane {
                    value: f.occurrences as f64,
                    fill: charts::friction_color(&f.kind),
                    text: format!("{} ({share})", count(f.occurrences)),
                }],
            }
        })
        .collect();
    let svg = charts::hbars(
        "Top friction points by kind, channel and step",
        "Horizontal bars ranking friction points by occurrences, coloured by kind.",
        &rows,
        Lanes::Stacked,
        Axis::Count,
    );
    let shown = rows.len();
    let note = format!(
        "Top {shown} of {} friction points (kind · channel · step), {} occurrences in total. \
         Each bar is labelled with its share of all occurrences.",
        count(r.friction.len() as u64),
        count(total),
    );
    let mut kinds: Vec<&str> = Vec::new();
    for f in r.friction.iter().take(TOP_FRICTION) {
        if !kinds.contains(&f.kind.as_str()) {
            kinds.push(&f.kind);
        }
    }
    let legend = kinds.iter().map(|k| legend(format::humanize(k), charts::friction_color(k))).collect();
    Some(Chart { svg, legend, note })
}

fn pretty_path(path: &str) -> String {
    path.split('>').collect::<Vec<_>>().join(" → ")
}

fn paths(r: &Report) -> (Option<Chart>, Vec<PathRow>) {
    if r.paths.is_empty() {
        return (None, Vec::new());
    }
    let top = &r.paths[..r.paths.len().min(TOP_PATHS)];
    let rows: Vec<HRow> = top
        .iter()
        .map(|p| {
            let path = pretty_path(&p.path);
            HRow {
                label: format::truncate(&path, 48),
                tip: path,
                lanes: vec![
                    Lane {
                        value: p.journeys as f64,
                        fill: JOURNEYS_COLOR,
                        text: format!("{} journeys", count(p.journeys)),
                    },
                    Lane {
                        value: p.conversions as f64,
                        fill: CONVERSIONS_COLOR,
                        text: format!(
                            "{} of {} converted ({})",
                            count(p.conversions),
                            count(p.journeys),
                            percent_or_dash(ratio(p.conversions, p.journeys))
                        ),
                    },
                ],
            }
        })
        .collect();
    let svg = charts::hbars(
        "Top conversion paths",
        "Horizontal bars for the ten paths with the most conversions: journeys in grey, conversions in teal.",
        &rows,
        Lanes::Overlaid,
        Axis::Count,
    );
    let journeys: u64 = saturating_sum(r.paths.iter().map(|p| p.journeys));
    let conversions: u64 = saturating_sum(r.paths.iter().map(|p| p.conversions));
    let top_conversions: u64 = saturating_sum(top.iter().map(|p| p.conversions));
    let note = format!(
        "{} distinct paths (channel sequences) carried {} journeys and {} conversions; the top {} account for {} of conversions.",
        count(r.paths.len() as u64),
        count(journeys),
        count(conversions),
        top.len(),
        percent_or_dash(ratio(top_conversions, conversions)),
    );
    let legend = vec![legend("Journeys", JOURNEYS_COLOR), legend("Conversions", CONVERSIONS_COLOR)];
    let table = top
        .iter()
        .enumerate()
        .map(|(i, p)| PathRow {
            rank: i + 1,
            path: pretty_path(&p.path),
            journeys: count(p.journeys),
            conversions: count(p.conversions),
            rate: percent_or_dash(ratio(p.conversions, p.journeys)),
            value: format::decimal(p.value, 2),
        })
        .collect();
    (Some(Chart { svg, legend, note }), table)
}

fn attribution(r: &Report) -> (Option<Chart>, Vec<AttributionRow>) {
    if r.attribution.is_empty() {
        return (None, Vec::new());
    }
    // channel → (conversions, value) per model
    let mut by_channel: BTreeMap<&str, [(f64, f64); MODELS.len()]> = BTreeMap::new();
    for a in &r.attribution {
        if let Some(m) = MODELS.iter().position(|m| *m == a.model) {
            let slot = &mut by_channel.entry(&a.channel).or_default()[m];
            slot.0 += a.conversions;
            slot.1 += a.value;
        }
    }
    if by_channel.is_empty() {
        return (None, Vec::new());
    }
    // Conversions without a value would leave every value bar empty; chart counts then.
    let by_value = r.attribution.iter().any(|a| a.value > 0.0);
    let metric = |v: &(f64, f64)| if by_value { v.1 } else { v.0 };
    let mut channels: Vec<(&str, [(f64, f64); MODELS.len()])> = by_channel.into_iter().collect();
    channels.sort_by(|a, b| {
        let top = |m: &[(f64, f64)]| m.iter().map(metric).fold(0.0, f64::max);
        top(&b.1).total_cmp(&top(&a.1)).then_with(|| a.0.cmp(b.0))
    });
    let groups: Vec<VGroup> = channels
        .iter()
        .map(|(channel, models)| VGroup {
            label: channel.to_string(),
            bars: MODELS
                .iter()
                .zip(models)
                .map(|(model, v)| VBar {
                    value: metric(v),
                    fill: charts::model_color(model),
                    text: if by_value { format::decimal(v.1, 0) } else { format::fractional(v.0) },
                    tip: format!(
                        "{channel}, {}: {} conversions, value {}",
                        format::humanize(model),
                        format::fractional(v.0),
                        format::value(v.1)
                    ),
                })
                .collect(),
        })
        .collect();
    let what = if by_value { "conversion value" } else { "conversions" };
    let svg = charts::vbars(
        &format!("Attributed {what} by channel and model"),
        &format!("Grouped bars per channel, one bar per attribution model, showing attributed {what}."),
        &groups,
    );
    let note = format!(
        "Attributed {what} per channel under three models: first touch credits the channel a journey started on, \
         last touch the channel it ended on, linear splits the credit evenly over the segments of its path. \
         {LINEAR_FRACTIONS}"
    );
    let legend = MODELS.iter().map(|m| legend(format::humanize(m), charts::model_color(m))).collect();
    let rows = channels
        .iter()
        .map(|(channel, models)| AttributionRow {
            channel: channel.to_string(),
            models: models.iter().map(|(c, v)| (format::fractional(*c), format::decimal(*v, 2))).collect(),
        })
        .collect();
    (Some(Chart { svg, legend, note }), rows)
}
