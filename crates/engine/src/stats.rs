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
