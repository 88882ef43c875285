//! Tumbling-window aggregates of one partition, and when they become rows.
//!
//! Activity tables (`activity`, `transitions`) are held per window and become rows
//! once the watermark passes the window's end. Journey-derived tables
//! (`journey_windows`, `paths`, `friction`, `attribution`) only ever receive final
//! contributions, so they are handed out whenever the caller drains: a window's
//! rows may then come in several pieces, which add up (SPEC §3).

use std::collections::VecDeque;

use hashbrown::HashMap;

use crate::counts::ChannelTypeCounts;
use crate::event::EventType;
use crate::journey::{ClosedJourney, JourneyEffects};
use crate::names::{NameId, Names};
use crate::rows::*;
use crate::time::window_start;

/// Counts of restored aggregates must be below this, far from `i64::MAX`.
const COUNTER_LIMIT: i64 = 1 << 62;

#[derive(serde::Serialize, serde::Deserialize, Debug, Default, Clone)]
struct JourneyWindowAcc {
    journeys: i64,
    hops: i64,
    conversion_value: f64,
    resolution_ms_sum: i64,
    fcr: i64,
    resolutions: Vec<i64>,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Default, Clone, Copy)]
struct PathAcc {
    journeys: i64,
    conversions: i64,
    conversion_value: f64,
}

/// A `paths` key borrowed: hashes and compares like `(i64, String)`.
#[derive(Hash)]
struct PathKey<'a>(i64, &'a str);

impl hashbrown::Equivalent<(i64, String)> for PathKey<'_> {
    fn equivalent(&self, key: &(i64, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

/// Open windows of one activity table, oldest first. Events are folded in `ts`
/// order, so nearly every lookup is of the newest window: a deque searched from the
/// back (one comparison) instead of a tree, and closing a window pops the front.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
struct WindowSeries<V> {
    windows: VecDeque<(i64, V)>,
}

impl<V> Default for WindowSeries<V> {
    fn default() -> Self {
        WindowSeries { windows: VecDeque::new() }
    }
}

impl<V: Default> WindowSeries<V> {
    fn get_or_insert(&mut self, w: i64) -> &mut V {
        // Position after every window starting at or before `w`.
        let mut at = self.windows.len();
        while at > 0 && self.windows[at - 1].0 > w {
            at -= 1;
        }
        if at == 0 || self.windows[at - 1].0 != w {
            self.windows.insert(at, (w, V::default()));
            at += 1;
        }
        &mut self.windows[at - 1].1
    }

    /// Removes the oldest window if it starts before `first_open` (every window when `None`).
    fn pop_before(&mut self, first_open: Option<i64>) -> Option<(i64, V)> {
        match self.windows.front() {
            Some(&(w, _)) if first_open.is_none_or(|f| w < f) => self.windows.pop_front(),
            _ => None,
        }
    }

    fn is_ordered(&self) -> bool {
        self.windows.iter().zip(self.windows.iter().skip(1)).all(|(a, b)| a.0 < b.0)
    }

    fn values(&self) -> impl Iterator<Item = &V> {
        self.windows.iter().map(|(_, v)| v)
    }
}

/// Nearest-rank percentile of sorted values: the smallest value with at least
/// `p`% of the values at or below it.
fn nearest_rank(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[derive(serde::Serialize, serde::Deserialize, Debug)]
pub(crate) struct WindowAggregates {
    window_ms: i64,
    activity: WindowSeries<ChannelTypeCounts>,
    transitions: WindowSeries<HashMap<(NameId, NameId), i64>>,
    friction: HashMap<(i64, FrictionKind, NameId, NameId), i64>,
    journey_windows: HashMap<(i64, NameId, Outcome), JourneyWindowAcc>,
    paths: HashMap<(i64, String), PathAcc>,
    attribution: HashMap<(i64, AttributionModel, NameId), (f64, f64)>,
}

impl JourneyEffects for WindowAggregates {
    fn activity(&mut self, ts: i64, channel: NameId, event_type: EventType) {
        let w = window_start(ts, self.window_ms);
        self.activity.get_or_insert(w).add(channel, event_type);
    }

    fn hop(&mut self, ts: i64, from: NameId, to: NameId) {
        let w = window_start(ts, self.window_ms);
        *self.transitions.get_or_insert(w).entry((from, to)).or_default() += 1;
    }

    fn friction(&mut self, ts: i64, kind: FrictionKind, channel: NameId, step: NameId) {
        let w = window_start(ts, self.window_ms);
        *self.friction.entry((w, kind, channel, step)).or_default() += 1;
    }
}

impl WindowAggregates {
    pub(crate) fn new(window_ms: i64) -> Self {
        WindowAggregates {
            window_ms,
            activity: WindowSeries::default(),
            transitions: WindowSeries::default(),
            friction: HashMap::new(),
            journey_windows: HashMap::new(),
            paths: HashMap::new(),
            attribution: HashMap::new(),
        }
    }

    /// Journey-derived rows a drain would hand out now (one per map entry).
    pub(crate) fn pending_journey_rows(&self) -> usize {
        self.journey_windows.len() + self.paths.len() + self.friction.len() + self.attribution.len()
    }

    /// Adds a closed journey to the journey-derived tables of its `end_ts` window.
    pub(crate) fn add_journey(&mut self, j: &ClosedJourney, path: &str) {
        let w = window_start(j.end_ts, self.window_ms);
        let converted = j.outcome == Outcome::Converted;
        let jw = self.journey_windows.entry((w, j.first_channel, j.outcome)).or_default();
        jw.journeys += 1;
        jw.hops += j.hops;
        jw.conversion_value += j.conversion_value;
        if let Some(r) = j.resolution_ms {
            // Saturating: thousands of resolutions spanning millennia (possible with a
            // huge thread_gap and extreme timestamps) would overflow i64.
            jw.resolution_ms_sum = jw.resolution_ms_sum.saturating_add(r);
            jw.resolutions.push(r);
        }
        jw.fcr += i64::from(j.first_contact_resolution == Some(true));

        let add = |p: &mut PathAcc| {
            p.journeys += 1;
            p.conversions += i64::from(converted);
            p.conversion_value += j.conversion_value;
        };
        // Most journeys follow a path already seen in their window: no key allocation then.
        if let Some(p) = self.paths.get_mut(&PathKey(w, path)) {
            add(p);
        } else {
            add(self.paths.entry((w, path.to_owned())).or_default());
        }

        if converted {
            let v = j.conversion_value;
            for (model, channel) in
                [(AttributionModel::FirstTouch, j.first_channel), (AttributionModel::LastTouch, j.last_channel)]
            {
                let a = self.attribution.entry((w, model, channel)).or_default();
                a.0 += 1.0;
                a.1 += v;
            }
            let segments = f64::from(j.segment_counts.iter().map(|&(_, n)| n).sum::<u32>());
            for &(channel, n) in &j.segment_counts {
                let share = f64::from(n) / segments;
                let a = self.attribution.entry((w, AttributionModel::Linear, channel)).or_default();
                a.0 += share;
                a.1 += v * share;
            }
        }
    }

    /// Moves activity windows that end at or before `watermark` into `out`
    /// (all of them when `watermark` is `None`: the input ended).
    pub(crate) fn emit_activity(&mut self, watermark: Option<i64>, names: &Names, partition: i32, out: &mut Rows) {
        // Windows starting after `watermark - window_ms` are still open.
        let first_open = watermark.map(|wm| wm.saturating_sub(self.window_ms).saturating_add(1));
        while let Some((window_start, counts)) = self.activity.pop_before(first_open) {
            let start = out.activity.len();
            out.activity.extend(counts.iter().map(|(ch, t, events)| ActivityRow {
                partition,
                window_start,
                channel: names.get(ch).clone(),
                event_type: t,
                // Restored counts were checked below COUNTER_LIMIT; folding adds one per event.
                events: events as i64,
            }));
            // Keys are distinct (they were map keys), so an unstable sort orders them fully.
            out.activity[start..].sort_unstable_by(|a, b| (&a.channel, a.event_type).cmp(&(&b.channel, b.event_type)));
        }
        while let Some((window_start, counts)) = self.transitions.pop_before(first_open) {
            let start = out.transitions.len();
            out.transitions.extend(counts.into_iter().map(|((from, to), hops)| TransitionRow {
                partition,
                window_start,
                from_channel: names.get(from).clone(),
                to_channel: names.get(to).clone(),
                hops,
            }));
            out.transitions[start..]
                .sort_unstable_by(|a, b| (&a.from_channel, &a.to_channel).cmp(&(&b.from_channel, &b.to_channel)));
        }
    }

    /// Moves every journey-derived aggregate into `out`, sorted by key.
    pub(crate) fn drain_journey_tables(&mut self, names: &Names, partition: i32, out: &mut Rows) {
        let empty = self.journey_windows.is_empty()
            && self.paths.is_empty()
            && self.friction.is_empty()
            && self.attribution.is_empty();
        if empty {
            return; // ranking sorts every name the partition has seen: not for nothing
        }
        // Names compare by their rank in text order: integer keys instead of string
        // comparisons. Keys are distinct (they were map keys), so unstable sorts order them fully.
        let rank = names.ranks();
        let step_rank = |id: NameId| if id == crate::names::NO_NAME { 0 } else { rank[id as usize] + 1 };
        let mut jw: Vec<_> = self.journey_windows.drain().collect();
        jw.sort_unstable_by_key(|&((w, first, outcome), _)| (w, rank[first as usize], outcome));
        out.journey_windows.extend(jw.into_iter().map(|((window_start, first, outcome), mut acc)| {
            acc.resolutions.sort_unstable();
            JourneyWindowRow {
                partition,
                window_start,
                first_channel: names.get(first).clone(),
                outcome,
                journeys: acc.journeys,
                hops: acc.hops,
                conversion_value: acc.conversion_value,
                resolved: acc.resolutions.len() as i64,
                resolution_ms_sum: acc.resolution_ms_sum,
                resolution_ms_p50: nearest_rank(&acc.resolutions, 50),
                resolution_ms_p90: nearest_rank(&acc.resolutions, 90),
                resolution_ms_p99: nearest_rank(&acc.resolutions, 99),
                fcr: acc.fcr,
            }
        }));

        let mut paths: Vec<_> = self.paths.drain().collect();
        paths.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out.paths.extend(paths.into_iter().map(|((window_start, path), p)| PathRow {
            partition,
            window_start,
            path,
            journeys: p.journeys,
            conversions: p.conversions,
            conversion_value: p.conversion_value,
        }));

        let mut friction: Vec<_> = self.friction.drain().collect();
        friction.sort_unstable_by_key(|&((w, kind, ch, step), _)| (w, kind, rank[ch as usize], step_rank(step)));
        out.friction.extend(friction.into_iter().map(|((window_start, kind, ch, step), occurrences)| FrictionRow {
            partition,
            window_start,
            kind,
            channel: names.get(ch).clone(),
            step: names.get_opt(step).cloned(),
            occurrences,
        }));

        let mut attribution: Vec<_> = self.attribution.drain().collect();
        attribution.sort_unstable_by_key(|&((w, model, ch), _)| (w, model, rank[ch as usize]));
        out.attribution.extend(attribution.into_iter().map(|((window_start, model, ch), (conversions, value))| {
            AttributionRow { partition, window_start, model, channel: names.get(ch).clone(), conversions, value }
        }));
    }

    /// Checks restored aggregates: the window length the engine runs with, known
    /// names, and counts that can still grow without overflowing.
    pub(crate) fn check(&self, window_ms: i64, names: usize) -> Result<(), &'static str> {
        if self.window_ms != window_ms {
            return Err("window aggregates of another window length");
        }
        let name = |id: NameId| (id as usize) < names;
        let step = |id: NameId| id == crate::names::NO_NAME || name(id);
        let count = |n: i64| (0..COUNTER_LIMIT).contains(&n);
        let activity = self
            .activity
            .values()
            .all(|a| a.is_consistent() && a.iter().all(|(c, _, n)| name(c) && n < COUNTER_LIMIT as u64));
        let transitions = self.transitions.values().flatten().all(|(&(f, t), &n)| name(f) && name(t) && count(n));
        if !self.activity.is_ordered() || !self.transitions.is_ordered() {
            return Err("activity windows out of order");
        }
        let friction = self.friction.iter().all(|(&(_, _, c, s), &n)| name(c) && step(s) && count(n));
        let journeys = self
            .journey_windows
            .iter()
            .all(|(&(_, c, _), a)| name(c) && count(a.journeys) && count(a.hops) && count(a.fcr));
        let paths = self.paths.values().all(|p| count(p.journeys) && count(p.conversions));
        let attribution = self.attribution.keys().all(|&(_, _, c)| name(c));
        if activity && transitions && friction && journeys && paths && attribution {
            Ok(())
        } else {
            Err("window aggregates refer to an unknown name or hold an impossible count")
        }
    }

    /// Bytes of the aggregates not yet handed out (entries only, a lower bound).
    pub(crate) fn estimated_bytes(&self) -> usize {
        use std::mem::size_of;
        let table = crate::engine::hash_table_bytes;
        let activity: usize = self.activity.values().map(ChannelTypeCounts::estimated_bytes).sum();
        let transitions: usize = self.transitions.values().map(|m| table(m.capacity(), 16)).sum();
        let resolutions: usize = self.journey_windows.values().map(|a| a.resolutions.capacity() * 8).sum();
        let paths: usize = self.paths.keys().map(|(_, p)| p.capacity()).sum();
        activity
            + transitions
            + table(self.friction.capacity(), size_of::<((i64, FrictionKind, NameId, NameId), i64)>())
            + table(self.journey_windows.capacity(), size_of::<((i64, NameId, Outcome), JourneyWindowAcc)>())
            + resolutions
            + table(self.paths.capacity(), size_of::<((i64, String), PathAcc)>())
            + paths
            + table(self.attribution.capacity(), size_of::<((i64, AttributionModel, NameId), (f64, f64))>())
    }

    /// Windows with activity not yet written (for progress reporting).
    pub(crate) fn open_windows(&self) -> usize {
        self.activity.windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(nearest_rank(&v, 50), Some(5));
        assert_eq!(nearest_rank(&v, 90), Some(9));
        assert_eq!(nearest_rank(&v, 99), Some(10));
        assert_eq!(nearest_rank(&[7], 50), Some(7));
        assert_eq!(nearest_rank(&[1, 2], 50), Some(1));
        assert_eq!(nearest_rank(&[1, 2], 99), Some(2));
        assert_eq!(nearest_rank(&[], 50), None);
    }

    #[test]
    fn activity_is_written_only_once_the_watermark_passes_the_window_end() {
        let mut names = Names::default();
        let web = names.intern("web");
        let mut agg = WindowAggregates::new(60_000);
        agg.activity(59_999, web, EventType::Touch);
        agg.activity(60_000, web, EventType::Touch);
        let mut out = Rows::default();
        agg.emit_activity(Some(59_999), &names, 0, &mut out);
        assert!(out.activity.is_empty(), "window [0, 60000) still open at watermark 59999");
        agg.emit_activity(Some(60_000), &names, 0, &mut out);
        assert_eq!(out.activity.len(), 1);
        assert_eq!((out.activity[0].window_start, out.activity[0].events), (0, 1));
        agg.emit_activity(None, &names, 0, &mut out);
        assert_eq!(out.activity.len(), 2);
        assert_eq!(out.activity[1].window_start, 60_000);
    }
}
