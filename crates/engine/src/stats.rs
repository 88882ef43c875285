//! Counters one engine keeps about its input, for summaries and metrics.

use crate::rows::{Outcome, RejectReason};

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Raw inputs pushed (every line or message).
    pub inputs: u64,
    /// Decoded, valid and not late.
    pub accepted: u64,
    /// Accepted and not a duplicate: folded into a journey.
    pub processed: u64,
    pub duplicates: u64,
    /// By [`RejectReason::index`], `late` included.
    pub rejected: [u64; RejectReason::ALL.len()],
    pub journeys_opened: u64,
    /// By `Outcome as usize`.
    pub journeys_closed: [u64; Outcome::ALL.len()],
}

impl Stats {
    pub fn late(&self) -> u64 {
        self.rejected[RejectReason::Late.index()]
    }

    /// Rejections other than `late`.
    pub fn malformed(&self) -> u64 {
        self.rejected.iter().sum::<u64>() - self.late()
    }

    pub fn journeys_closed_total(&self) -> u64 {
        self.journeys_closed.iter().sum()
    }

    /// The counts added since `earlier` (a snapshot of the same engine): what one
    /// process did with a partition whose counters came with a restored checkpoint.
    pub fn since(&self, earlier: &Stats) -> Stats {
        let mut d = Stats {
            inputs: self.inputs.saturating_sub(earlier.inputs),
            accepted: self.accepted.saturating_sub(earlier.accepted),
            processed: self.processed.saturating_sub(earlier.processed),
            duplicates: self.duplicates.saturating_sub(earlier.duplicates),
            journeys_opened: self.journeys_opened.saturating_sub(earlier.journeys_opened),
            ..Stats::default()
        };
        for (i, (a, b)) in self.rejected.iter().zip(earlier.rejected).enumerate() {
            d.rejected[i] = a.saturating_sub(b);
        }
        for (i, (a, b)) in self.journeys_closed.iter().zip(earlier.journeys_closed).enumerate() {
            d.journeys_closed[i] = a.saturating_sub(b);
        }
        d
    }

    /// Adds another engine's counters (for a summary over several partitions).
    pub fn add(&mut self, o: &Stats) {
        self.inputs += o.inputs;
        self.accepted += o.accepted;
        self.processed += o.processed;
        self.duplicates += o.duplicates;
        self.journeys_opened += o.journeys_opened;
        for (a, b) in self.rejected.iter_mut().zip(o.rejected) {
            *a += b;
        }
        for (a, b) in self.journeys_closed.iter_mut().zip(o.journeys_closed) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_leaves_out_what_an_earlier_owner_counted() {
        let mut before = Stats { inputs: 10, processed: 8, duplicates: 1, journeys_opened: 4, ..Stats::default() };
        before.rejected[RejectReason::Late.index()] = 1;
        before.journeys_closed[Outcome::Converted as usize] = 2;
        let mut now = before.clone();
        now.inputs += 5;
        now.processed += 5;
        now.journeys_closed[Outcome::Converted as usize] += 1;
        let d = now.since(&before);
        assert_eq!((d.inputs, d.processed, d.duplicates, d.late(), d.journeys_closed_total()), (5, 5, 0, 0, 1));
        let mut total = before.clone();
        total.add(&d);
        assert_eq!(total, now);
    }
}
