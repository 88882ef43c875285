//! Reading each table and folding its rows into the [`Report`] figures. Windowed
//! tables are summed by key over all windows, files and partitions, since one key
//! appears once per window and partition that saw it.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use crate::read::{self, Batch, bool_at};
use crate::{
    Attribution, ChannelResolution, Error, FrictionPoint, Headline, IdentityFigures, OutcomeCount, PathStats,
    RESOLUTION_BUCKETS, Report, Transition,
};

/// Lifecycle order of the engine's outcomes; the report lists them this way.
const OUTCOMES: [&str; 5] = ["converted", "resolved", "abandoned", "unresolved", "browsed"];
/// Attribution models in the order they are drawn.
pub(crate) const MODELS: [&str; 3] = ["first_touch", "last_touch", "linear"];
/// `customer_id` prefix of an anonymous customer (SPEC §6: `anon:<type>:<value>`).
const ANONYMOUS_PREFIX: &str = "anon:";

pub(crate) fn load(dir: &Path) -> Result<Report, Error> {
    let meta = fs::metadata(dir).map_err(|source| Error::NoOutput { path: dir.to_path_buf(), source })?;
    if !meta.is_dir() {
        let source = io::Error::new(io::ErrorKind::NotADirectory, "not a directory");
        return Err(Error::NoOutput { path: dir.to_path_buf(), source });
    }
    let mut files_read = 0;
    let journeys = Journeys::read(dir, &mut files_read)?;
    let transitions = read_transitions(dir, &mut files_read)?;
    let friction = read_friction(dir, &mut files_read)?;
    let paths = read_paths(dir, &mut files_read)?;
    let attribution = read_attribution(dir, &mut files_read)?;
    let links = read_identities(dir, &mut files_read)?;
    let (resolution, resolution_p50_ms, resolution_p90_ms) = journeys.resolution();
    let identity = journeys.identity(links);
    Ok(Report {
        source: dir.to_path_buf(),
        files_read,
        headline: journeys.headline(),
        outcomes: journeys.outcomes(),
        transitions,
        resolution,
        resolution_p50_ms,
        resolution_p90_ms,
        friction,
        paths,
        attribution,
        identity,
    })
}

/// Reads `columns` of every file of `table`, handing each batch to `each`.
fn scan(
    dir: &Path,
    table: &'static str,
    columns: &[&'static str],
    files_read: &mut usize,
    each: impl FnMut(&Batch<'_>) -> Result<(), Error>,
) -> Result<(), Error> {
    scan_optional(dir, table, columns, &[], files_read, each)
}

/// [`scan`] that also reads the `optional` columns of the files that have them.
fn scan_optional(
    dir: &Path,
    table: &'static str,
    columns: &[&'static str],
    optional: &[&'static str],
    files_read: &mut usize,
    mut each: impl FnMut(&Batch<'_>) -> Result<(), Error>,
) -> Result<(), Error> {
    for file in read::table_files(dir, table)? {
        read::read_file(&file, table, columns, optional, &mut each)?;
        *files_read += 1;
    }
    Ok(())
}

/// Sums can only go negative through corrupt input; show those as zero.
fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

#[derive(Default)]
struct Journeys {
    journeys: u64,
    events: i64,
    hops: i64,
    unanswered: i64,
    with_resolution: u64,
    first_contact: u64,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    outcomes: BTreeMap<String, u64>,
    /// Resolution times by first channel; kept whole for exact percentiles.
    resolution_ms: BTreeMap<String, Vec<i64>>,
    /// SPEC §6, from the files with an `anonymous_events` column.
    stitched: u64,
    anonymous_journeys: u64,
    anonymous_events: i64,
    resolved_events: i64,
}

impl Journeys {
    fn read(dir: &Path, files_read: &mut usize) -> Result<Journeys, Error> {
        const COLUMNS: [&str; 9] = [
            "start_ts",
            "end_ts",
            "events",
            "hops",
            "first_channel",
            "outcome",
            "resolution_ms",
            "first_contact_resolution",
            "unanswered_contacts",
        ];
        // Newer outputs only (SPEC §6); `customer_id` is read only along with it.
        const IDENTITY_COLUMNS: [&str; 2] = ["anonymous_events", "customer_id"];
        let mut acc = Journeys::default();
        scan_optional(dir, "journeys", &COLUMNS, &IDENTITY_COLUMNS, files_read, |b| {
            let start = b.ints("start_ts")?;
            let end = b.ints("end_ts")?;
            let events = b.ints("events")?;
            let hops = b.ints("hops")?;
            let first_channel = b.strs("first_channel")?;
            let outcome = b.strs("outcome")?;
            let resolution = b.ints("resolution_ms")?;
            let fcr = b.bools("first_contact_resolution")?;
            let unanswered = b.ints("unanswered_contacts")?;
            for i in 0..b.len() {
                acc.journeys += 1;
                acc.events = acc.events.saturating_add(events.count(i));
                acc.hops = acc.hops.saturating_add(hops.count(i));
                acc.unanswered = acc.unanswered.saturating_add(unanswered.count(i));
                if let Some(ts) = start.get(i) {
                    acc.start_ms = Some(acc.start_ms.map_or(ts, |m| m.min(ts)));
                }
                if let Some(ts) = end.get(i) {
                    acc.end_ms = Some(acc.end_ms.map_or(ts, |m| m.max(ts)));
                }
                *acc.outcomes.entry(outcome.name(i).to_string()).or_default() += 1;
                if let Some(ms) = resolution.get(i) {
                    acc.with_resolution += 1;
                    acc.resolution_ms.entry(first_channel.name(i).to_string()).or_default().push(ms);
                }
                if bool_at(fcr, i) == Some(true) {
                    acc.first_contact += 1;
                }
            }
            if b.has("anonymous_events") {
                let (anonymous, customer) = (b.ints("anonymous_events")?, b.strs("customer_id")?);
                for i in 0..b.len() {
                    let n = anonymous.count(i);
                    let anonymous_customer = customer.name(i).starts_with(ANONYMOUS_PREFIX);
                    acc.anonymous_journeys += u64::from(anonymous_customer);
                    if n > 0 {
                        acc.anonymous_events = acc.anonymous_events.saturating_add(n);
                        if !anonymous_customer {
                            acc.stitched += 1;
                            acc.resolved_events = acc.resolved_events.saturating_add(n);
                        }
                    }
                }
            }
            Ok(())
        })?;
        Ok(acc)
    }

    /// Identity figures when there is identity data: links or conflicts, or journeys
    /// with anonymous events or of anonymous customers.
    fn identity(&self, links: Links) -> Option<IdentityFigures> {
        if links.links + links.conflicts == 0 && self.anonymous_events <= 0 && self.anonymous_journeys == 0 {
            return None;
        }
        let mut links_by_type: Vec<(String, u64)> = links.by_type.into_iter().collect();
        links_by_type.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Some(IdentityFigures {
            stitched_journeys: self.stitched,
            stitched_share: ratio(self.stitched, self.journeys),
            anonymous_journeys: self.anonymous_journeys,
            anonymous_events: non_negative(self.anonymous_events),
            resolved_events: non_negative(self.resolved_events),
            links: links.links,
            conflicts: links.conflicts,
            links_by_type,
        })
    }

    fn headline(&self) -> Headline {
        let converted = self.outcomes.get("converted").copied().unwrap_or(0);
        Headline {
            journeys: self.journeys,
            events: non_negative(self.events),
            conversion_rate: ratio(converted, self.journeys),
            fcr_rate: ratio(self.first_contact, self.with_resolution),
            mean_hops: (self.journeys > 0).then(|| self.hops as f64 / self.journeys as f64),
            unanswered_contacts: non_negative(self.unanswered),
            converted,
            start_ms: self.start_ms,
            end_ms: self.end_ms,
        }
    }

    fn outcomes(&self) -> Vec<OutcomeCount> {
        let known = OUTCOMES.iter().map(|o| (o.to_string(), self.outcomes.get(*o).copied().unwrap_or(0)));
        let others =
            self.outcomes.iter().filter(|(o, _)| !OUTCOMES.contains(&o.as_str())).map(|(o, n)| (o.clone(), *n));
        known
            .chain(others)
            .filter(|&(_, n)| n > 0)
            .map(|(outcome, journeys)| OutcomeCount { outcome, journeys })
            .collect()
    }

    /// Per-channel stats (most resolved first) and the overall p50 and p90.
    fn resolution(&self) -> (Vec<ChannelResolution>, Option<i64>, Option<i64>) {
        let mut all = Vec::new();
        let mut per_channel = Vec::new();
        for (channel, times) in &self.resolution_ms {
            let mut sorted = times.clone();
            sorted.sort_unstable();
            let (Some(p50_ms), Some(p90_ms)) = (nearest_rank(&sorted, 50), nearest_rank(&sorted, 90)) else {
                continue;
            };
            let mut buckets = [0; RESOLUTION_BUCKETS.len()];
            for &ms in &sorted {
                buckets[bucket_of(ms)] += 1;
            }
            per_channel.push(ChannelResolution {
                channel: channel.clone(),
                resolved: sorted.len() as u64,
                p50_ms,
                p90_ms,
                buckets,
            });
            all.extend(sorted);
        }
        per_channel.sort_by(|a, b| b.resolved.cmp(&a.resolved).then_with(|| a.channel.cmp(&b.channel)));
        all.sort_unstable();
        (per_channel, nearest_rank(&all, 50), nearest_rank(&all, 90))
    }
}

/// Nearest-rank percentile of sorted values, as the engine computes them: the
/// smallest value with at least `p`% of the values at or below it.
pub(crate) fn nearest_rank(sorted: &[i64], p: usize) -> Option<i64> {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Index into [`RESOLUTION_BUCKETS`] of a resolution time.
pub(crate) fn bucket_of(ms: i64) -> usize {
    RESOLUTION_BUCKETS.iter().position(|&(_, upper)| ms < upper).unwrap_or(RESOLUTION_BUCKETS.len() - 1)
}

/// The `identities` table: links (owners) and conflicts.
#[derive(Default)]
struct Links {
    links: u64,
    conflicts: u64,
    by_type: BTreeMap<String, u64>,
}

fn read_identities(dir: &Path, files_read: &mut usize) -> Result<Links, Error> {
    let mut acc = Links::default();
    scan(dir, "identities", &["identity_type", "conflict"], files_read, |b| {
        let (kind, conflict) = (b.strs("identity_type")?, b.bools("conflict")?);
        for i in 0..b.len() {
            if bool_at(conflict, i) == Some(true) {
                acc.conflicts += 1;
            } else {
                acc.links += 1;
                *acc.by_type.entry(kind.name(i).to_string()).or_default() += 1;
            }
        }
        Ok(())
    })?;
    Ok(acc)
}

fn read_transitions(dir: &Path, files_read: &mut usize) -> Result<Vec<Transition>, Error> {
    let mut sums: BTreeMap<(String, String), i64> = BTreeMap::new();
    scan(dir, "transitions", &["from_channel", "to_channel", "hops"], files_read, |b| {
        let (from, to, hops) = (b.strs("from_channel")?, b.strs("to_channel")?, b.ints("hops")?);
        for i in 0..b.len() {
            let sum = sums.entry((from.name(i).to_string(), to.name(i).to_string())).or_default();
            *sum = sum.saturating_add(hops.count(i));
        }
        Ok(())
    })?;
    let mut out: Vec<Transition> =
        sums.into_iter().map(|((from, to), hops)| Transition { from, to, hops: non_negative(hops) }).collect();
    out.sort_by(|a, b| b.hops.cmp(&a.hops).then_with(|| (&a.from, &a.to).cmp(&(&b.from, &b.to))));
    Ok(out)
}

fn read_friction(dir: &Path, files_read: &mut usize) -> Result<Vec<FrictionPoint>, Error> {
    type Key = (String, String, Option<String>);
    let mut sums: BTreeMap<Key, i64> = BTreeMap::new();
    scan(dir, "friction", &["kind", "channel", "step", "occurrences"], files_read, |b| {
        let (kind, channel, step, n) = (b.strs("kind")?, b.strs("channel")?, b.strs("step")?, b.ints("occurrences")?);
        for i in 0..b.len() {
            let key = (kind.name(i).to_string(), channel.name(i).to_string(), step.get(i).map(str::to_string));
            let sum = sums.entry(key).or_default();
            *sum = sum.saturating_add(n.count(i));
        }
        Ok(())
    })?;
    let mut out: Vec<FrictionPoint> = sums
        .into_iter()
        .map(|((kind, channel, step), n)| FrictionPoint { kind, channel, step, occurrences: non_negative(n) })
        .collect();
    // Stable sort over the key-ordered map: ties stay in kind, channel, step order.
    out.sort_by_key(|f| std::cmp::Reverse(f.occurrences));
    Ok(out)
}

fn read_paths(dir: &Path, files_read: &mut usize) -> Result<Vec<PathStats>, Error> {
    let mut sums: BTreeMap<String, (i64, i64, f64)> = BTreeMap::new();
    scan(dir, "paths", &["path", "journeys", "conversions", "conversion_value"], files_read, |b| {
        let (path, journeys) = (b.strs("path")?, b.ints("journeys")?);
        let (conversions, value) = (b.ints("conversions")?, b.floats("conversion_value")?);
        for i in 0..b.len() {
            let sum = sums.entry(path.name(i).to_string()).or_default();
            sum.0 = sum.0.saturating_add(journeys.count(i));
            sum.1 = sum.1.saturating_add(conversions.count(i));
            sum.2 += value.get(i);
        }
        Ok(())
    })?;
    let mut out: Vec<PathStats> = sums
        .into_iter()
        .map(|(path, (j, c, value))| PathStats { path, journeys: non_negative(j), conversions: non_negative(c), value })
        .collect();
    out.sort_by(|a, b| b.conversions.cmp(&a.conversions).then_with(|| b.journeys.cmp(&a.journeys)));
    Ok(out)
}

fn read_attribution(dir: &Path, files_read: &mut usize) -> Result<Vec<Attribution>, Error> {
    let mut sums: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    scan(dir, "attribution", &["model", "channel", "conversions", "value"], files_read, |b| {
        let (model, channel) = (b.strs("model")?, b.strs("channel")?);
        let (conversions, value) = (b.floats("conversions")?, b.floats("value")?);
        for i in 0..b.len() {
            let sum = sums.entry((channel.name(i).to_string(), model.name(i).to_string())).or_default();
            sum.0 += conversions.get(i);
            sum.1 += value.get(i);
        }
        Ok(())
    })?;
    Ok(sums
        .into_iter()
        .map(|((channel, model), (conversions, value))| Attribution { model, channel, conversions, value })
        .collect())
}
