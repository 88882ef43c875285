//! Which window is the last *final* one, and its figures for the `window_*`
//! gauges. A window's journey rows are complete once the watermark passes its end
//! plus `gap` (SPEC §3), plus `thread_gap` once threads (journeys with a
//! `journey_id`) have been seen; the end of a finite input makes every window final.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use omnimeter_engine::time::window_start;
use omnimeter_engine::{JourneyRow, Outcome};

/// Windows waiting to become final are bounded; past this the oldest is declared
/// final early (only possible with a window far shorter than the gaps).
const MAX_PENDING_WINDOWS: usize = 10_000;

/// One window's closed journeys, as far as the gauges need them.
#[derive(Debug)]
struct WindowFigures {
    journeys: u64,
    converted: u64,
    hops: u64,
    /// Resolution times in ms; 2 significant digits keep a window near 10 KiB.
    resolution: Option<Histogram<u32>>,
}

/// What the gauges show.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FinalWindow {
    pub start_ms: i64,
    pub journeys: u64,
    pub conversion_rate: f64,
    pub mean_hops: f64,
    /// `None` when no journey of the window has a resolution time.
    pub resolution_p90_ms: Option<f64>,
}

#[derive(Debug)]
pub(crate) struct FinalWindows {
    window_ms: i64,
    gap_ms: i64,
    thread_gap_ms: i64,
    threads_seen: bool,
    pending: BTreeMap<i64, WindowFigures>,
    /// Every window starting before this is final.
    final_before: i64,
    /// Window holding the watermark: the ones before it have their activity rows written.
    activity_window: i64,
}

impl FinalWindows {
    pub(crate) fn new(window_ms: i64, gap_ms: i64, thread_gap_ms: i64) -> Self {
        FinalWindows {
            window_ms: window_ms.max(1),
            gap_ms,
            thread_gap_ms,
            threads_seen: false,
            pending: BTreeMap::new(),
            final_before: i64::MIN,
            activity_window: i64::MIN,
        }
    }

    pub(crate) fn add(&mut self, j: &JourneyRow) {
        self.threads_seen |= j.journey_id.is_some();
        let w = window_start(j.end_ts, self.window_ms);
        if w < self.final_before {
            return; // a thread closing into a window already shown: it is in Parquet and the counters
        }
        let f = self.pending.entry(w).or_insert(WindowFigures { journeys: 0, converted: 0, hops: 0, resolution: None });
        f.journeys += 1;
        f.converted += u64::from(j.outcome == Outcome::Converted);
        f.hops += j.hops.max(0) as u64;
        if let Some(ms) = j.resolution_ms {
            let h = f.resolution.get_or_insert_with(|| Histogram::new(2).expect("2 significant digits are valid"));
            let v = ms.max(0) as u64;
            if h.record(v).is_err() {
                h.saturating_record(v);
            }
        }
    }

    /// Moves the finality lines to `watermark`; returns the newest window whose journey
    /// rows became complete (if it has journeys), and whether an activity window was
    /// completed (the watermark entered a new window).
    pub(crate) fn advance(&mut self, watermark: Option<i64>) -> (Option<FinalWindow>, bool) {
        let Some(wm) = watermark else { return (None, false) };
        let current = window_start(wm, self.window_ms);
        let activity_moved = current > self.activity_window;
        self.activity_window = self.activity_window.max(current);
        let delay = if self.threads_seen { self.gap_ms.max(self.thread_gap_ms) } else { self.gap_ms };
        let mut line = window_start(wm.saturating_sub(delay), self.window_ms);
        if self.pending.len() > MAX_PENDING_WINDOWS
            && let Some((&oldest, _)) = self.pending.iter().nth(self.pending.len() - MAX_PENDING_WINDOWS)
        {
            line = line.max(oldest);
        }
        (self.finalize_before(line).0, activity_moved)
    }

    /// End of a finite input: every window is final.
    pub(crate) fn finish(&mut self) -> (Option<FinalWindow>, bool) {
        self.finalize_before(i64::MAX)
    }

    fn finalize_before(&mut self, line: i64) -> (Option<FinalWindow>, bool) {
        if line <= self.final_before {
            return (None, false);
        }
        self.final_before = line;
        let rest = if line == i64::MAX { BTreeMap::new() } else { self.pending.split_off(&line) };
        let done = std::mem::replace(&mut self.pending, rest);
        let newest = done.into_iter().rev().find(|(_, f)| f.journeys > 0).map(|(start_ms, f)| FinalWindow {
            start_ms,
            journeys: f.journeys,
            conversion_rate: f.converted as f64 / f.journeys as f64,
            mean_hops: f.hops as f64 / f.journeys as f64,
            resolution_p90_ms: f.resolution.as_ref().map(|h| h.value_at_quantile(0.9) as f64),
        });
        (newest, true)
    }

    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn journey(end_ts: i64, outcome: Outcome, hops: i64, resolution_ms: Option<i64>, thread: bool) -> JourneyRow {
        JourneyRow {
            partition: 0,
            customer_id: "c".into(),
            journey_id: thread.then(|| "t".into()),
            start_ts: end_ts,
            end_ts,
            duration_ms: 0,
            events: 1,
            path: "web".into(),
            hops,
            channels: 1,
            first_channel: "web".into(),
            last_channel: "web".into(),
            outcome,
            conversion_value: 0.0,
            resolution_ms,
            first_contact_resolution: None,
            repeat_contacts: 0,
            unanswered_contacts: 0,
            errors: 0,
            anonymous_events: 0,
        }
    }

    #[test]
    fn a_window_is_final_once_the_watermark_passes_its_end_plus_gap() {
        let mut w = FinalWindows::new(MIN, 30 * MIN, 24 * 60 * MIN);
        w.add(&journey(10 * MIN + 5, Outcome::Converted, 2, Some(90_000), false));
        w.add(&journey(10 * MIN + 9, Outcome::Browsed, 0, None, false));
        w.add(&journey(11 * MIN, Outcome::Resolved, 1, Some(30_000), false));
        // Window [10m, 11m) needs the watermark at 11m + 30m.
        assert_eq!(w.advance(Some(41 * MIN - 1)), (None, true));
        let (f, moved) = w.advance(Some(41 * MIN));
        assert!(moved, "the watermark entered window 41m");
        let f = f.unwrap();
        assert_eq!((f.start_ms, f.journeys, f.conversion_rate, f.mean_hops), (10 * MIN, 2, 0.5, 1.0));
        let p90 = f.resolution_p90_ms.unwrap();
        assert!((p90 - 90_000.0).abs() / 90_000.0 < 0.01, "{p90}");
        assert_eq!(w.advance(Some(41 * MIN + 1)), (None, false), "same window, nothing new");
        assert_eq!(w.pending(), 1);
        let (f, _) = w.finish();
        assert_eq!(f.unwrap().start_ms, 11 * MIN);
        assert_eq!(w.pending(), 0);
    }

    #[test]
    fn extreme_settings_and_instants_do_not_overflow() {
        // Regression: with a huge thread_gap the finality line `watermark - delay`
        // saturated to i64::MIN, and its window start overflowed (a debug-build panic).
        use omnimeter_engine::time::{MAX_TS_MS, MIN_TS_MS};
        let mut w = FinalWindows::new(MIN, i64::MAX, i64::MAX);
        w.add(&journey(MIN_TS_MS, Outcome::Resolved, 0, Some(i64::MAX), true));
        w.add(&journey(MAX_TS_MS, Outcome::Converted, 3, Some(0), true));
        assert_eq!(w.advance(Some(i64::MIN)).0, None);
        assert_eq!(w.advance(Some(MAX_TS_MS)).0, None, "nothing is final before the end of input");
        assert_eq!(w.pending(), 2);
        let (f, _) = w.finish();
        assert_eq!(f.map(|f| (f.start_ms, f.journeys)), Some((MAX_TS_MS - MAX_TS_MS % MIN, 1)));
    }

    #[test]
    fn threads_push_finality_out_to_the_thread_gap() {
        let mut w = FinalWindows::new(MIN, 30 * MIN, 120 * MIN);
        w.add(&journey(10 * MIN, Outcome::Unresolved, 0, None, true));
        assert_eq!(w.advance(Some(41 * MIN)).0, None);
        assert_eq!(w.advance(Some(131 * MIN)).0.map(|f| f.start_ms), Some(10 * MIN));
    }
}
