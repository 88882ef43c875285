//! Where a partition's output is cut into published batches (SPEC §4): when its
//! watermark crosses a multiple of `file_period`, or when the rows waiting reach a
//! bound. Both depend on the events alone, so every worker that replays a partition
//! cuts it at the same offsets and writes the same files.

use crate::engine::PartitionEngine;
use crate::time::DurationMs;

/// Raw bytes of waiting `rejected` rows that force a cut whatever the row count:
/// a rejected payload may be 64 KiB, so rows alone would not bound memory.
pub const MAX_PENDING_REJECTED_BYTES: usize = 64 << 20;

/// Why a cut happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutReason {
    /// The watermark entered a new `file_period`.
    Period,
    /// `file_rows` rows (or [`MAX_PENDING_REJECTED_BYTES`]) were waiting.
    Rows,
}

/// The cut rule of one partition. Ask [`CutRule::after_push`] after every event.
#[derive(Debug, Clone)]
pub struct CutRule {
    period_ms: i64,
    max_rows: usize,
    /// `file_period`s since the epoch of the watermark after the last event.
    period: Option<i64>,
}

impl CutRule {
    /// The rule for a partition starting with `engine` (new, or restored from a
    /// checkpoint taken at a cut: the state it needs is the watermark's period).
    pub fn new(file_period: DurationMs, file_rows: usize, engine: &PartitionEngine) -> Self {
        let period_ms = file_period.0.max(1);
        CutRule { period_ms, max_rows: file_rows.max(1), period: engine.watermark().map(|w| w.div_euclid(period_ms)) }
    }

    /// Whether the event just pushed into `engine` ends a batch: if so, the caller
    /// takes the rows now and names the batch by the offset after that event.
    #[inline]
    pub fn after_push(&mut self, engine: &PartitionEngine) -> Option<CutReason> {
        let period = engine.watermark().map(|w| w.div_euclid(self.period_ms));
        let crossed = matches!((self.period, period), (Some(before), Some(now)) if now > before);
        self.period = period;
        if crossed {
            return Some(CutReason::Period);
        }
        let (rows, raw_bytes) = engine.pending_rows();
        (rows >= self.max_rows || raw_bytes >= MAX_PENDING_REJECTED_BYTES).then_some(CutReason::Rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EngineConfig;

    fn event(id: usize, ts_ms: i64) -> Vec<u8> {
        format!(r#"{{"event_id":"e{id}","ts":{ts_ms},"customer_id":"c{}","channel":"web","type":"touch"}}"#, id % 7)
            .into_bytes()
    }

    /// Offsets (exclusive ends) at which a stream of events is cut.
    fn cuts(rule: &mut CutRule, engine: &mut PartitionEngine, events: &[(usize, i64)], first: i64) -> Vec<i64> {
        let mut out = Vec::new();
        for (i, &(id, ts)) in events.iter().enumerate() {
            let offset = first + i as i64;
            engine.push(&event(id, ts), offset);
            if rule.after_push(engine).is_some() {
                engine.take_rows();
                out.push(offset + 1);
            }
        }
        out
    }

    #[test]
    fn cuts_where_the_watermark_enters_a_new_period_and_nowhere_else() {
        let cfg = EngineConfig::default(); // allowed_lateness 5 s
        let hour = 3_600_000;
        let mut e = PartitionEngine::new(cfg, 0);
        let mut rule = CutRule::new(DurationMs(hour), 1_000_000, &e);
        // Watermark = max ts − 5 s. The first event's watermark is before the epoch (period −1),
        // the second's in period 0: a cut. The event at 1h+5s is the first whose watermark
        // reaches 1h; then one at 3h+5s skips period 2 but is still one cut.
        let events =
            [(0, 10), (1, hour - 1), (2, hour + 4_999), (3, hour + 5_000), (4, hour + 6_000), (5, 3 * hour + 5_000)];
        assert_eq!(cuts(&mut rule, &mut e, &events, 0), [2, 4, 6]);
        // An older event (a late one, even) does not move the watermark back into a cut.
        e.push(&event(6, 10), 6);
        assert_eq!(rule.after_push(&e), None);
    }

    #[test]
    fn a_restored_engine_cuts_where_the_uninterrupted_one_does() {
        let cfg = EngineConfig::default();
        let minute = 60_000;
        let events: Vec<(usize, i64)> = (0..400).map(|i| (i, (i as i64 * 7_919) % 50_000 + i as i64 * 1_000)).collect();
        let mut whole = PartitionEngine::new(cfg, 0);
        let mut rule = CutRule::new(DurationMs(minute), 40, &whole);
        let expected = cuts(&mut rule, &mut whole, &events, 0);
        assert!(expected.len() > 5, "{expected:?}");
        // Stop at the third cut, checkpoint, restore, go on.
        let at = expected[2] as usize;
        let mut first = PartitionEngine::new(cfg, 0);
        let mut rule = CutRule::new(DurationMs(minute), 40, &first);
        let mut got = cuts(&mut rule, &mut first, &events[..at], 0);
        let bytes = first.checkpoint().unwrap();
        let mut restored = PartitionEngine::restore(cfg, 0, &bytes).unwrap();
        let mut rule = CutRule::new(DurationMs(minute), 40, &restored);
        got.extend(cuts(&mut rule, &mut restored, &events[at..], at as i64));
        assert_eq!(got, expected);
    }

    #[test]
    fn pending_rows_bound_cuts() {
        let cfg = EngineConfig::default();
        let mut e = PartitionEngine::new(cfg, 0);
        let mut rule = CutRule::new(DurationMs(3_600_000), 3, &e);
        // Rejected lines are rows at once; three of them make a cut.
        let mut cut_at = None;
        for i in 0..5 {
            e.push(b"not json", i);
            if rule.after_push(&e) == Some(CutReason::Rows) {
                cut_at.get_or_insert(i);
            }
        }
        assert_eq!(cut_at, Some(2));
    }
}
