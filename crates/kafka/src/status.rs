//! What the worker tells the outside (metrics, readiness, tests) about itself.

use std::collections::BTreeMap;
use std::time::Instant;

use omnimeter_engine::{Stats, TABLES};
use omnimeter_metrics::PartitionHealth;

/// A range of offsets the broker no longer had when the worker needed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostRange {
    pub partition: i32,
    /// First and last missing offset, inclusive.
    pub from: i64,
    pub to: i64,
}

impl std::fmt::Display for LostRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "partition {} offsets {}..={}", self.partition, self.from, self.to)
    }
}

/// One assigned partition as last seen by the worker.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartitionStatus {
    /// Next offset to consume.
    pub position: i64,
    /// Broker's high watermark from the latest fetch response (-1 before one).
    pub high_watermark: i64,
    /// Last offset committed (the checkpoint's next offset).
    pub committed: i64,
    /// Event-time watermark, epoch ms.
    pub watermark_ms: Option<i64>,
    pub open_journeys: usize,
    pub caught_up: bool,
    /// When the partition's state was last made durable.
    pub checkpointed_at: Option<Instant>,
}

/// A snapshot of the worker, refreshed at every flush.
#[derive(Debug, Clone, Default)]
pub struct WorkerStatus {
    pub topic: String,
    pub assigned: bool,
    pub partitions: BTreeMap<i32, PartitionStatus>,
    /// Engine counters summed over the partitions this worker has held.
    pub stats: Stats,
    pub parquet_files: [u64; TABLES.len()],
    pub parquet_rows: [u64; TABLES.len()],
    /// Last flush failed (output unwritable): consumption paused and nothing
    /// committed until a retry succeeds.
    pub sink_error: Option<String>,
    /// No broker has been reachable since this instant (from librdkafka's broker
    /// states); librdkafka keeps reconnecting with backoff.
    pub brokers_down_since: Option<Instant>,
    /// Last time the poll loop refreshed this snapshot: a stale one means a stuck loop.
    pub refreshed_at: Option<Instant>,
    /// Offset ranges skipped because the broker had deleted them (`on_data_loss = "skip"`),
    /// with their sizes.
    pub lost: Vec<(LostRange, u64)>,
}

impl PartitionStatus {
    /// High watermark minus position; `None` before the first fetch response.
    pub fn lag(&self) -> Option<i64> {
        (self.high_watermark >= 0).then(|| (self.high_watermark - self.position).max(0))
    }
}

impl WorkerStatus {
    /// Total lag over the held partitions that have a known high watermark.
    pub fn lag(&self) -> i64 {
        self.partitions.values().filter_map(PartitionStatus::lag).sum()
    }

    pub fn open_journeys(&self) -> usize {
        self.partitions.values().map(|p| p.open_journeys).sum()
    }

    /// Why the worker cannot make progress right now, in one line; `None` when it can.
    pub fn trouble(&self) -> Option<String> {
        if let Some(e) = &self.sink_error {
            return Some(format!("output failing, consumption paused and offsets not committed: {e}"));
        }
        self.brokers_down_since
            .map(|t| format!("no Kafka broker reachable for {}s, reconnecting", t.elapsed().as_secs()))
    }

    /// What was skipped as lost, in one line; `None` when nothing was.
    pub fn lost_summary(&self) -> Option<String> {
        let total: u64 = self.lost.iter().map(|(_, n)| n).sum();
        let ranges: Vec<String> = self.lost.iter().map(|(r, _)| r.to_string()).collect();
        (total > 0).then(|| {
            format!(
                "{total} offsets of {} lost to the broker's retention and skipped: {}",
                self.topic,
                ranges.join(", ")
            )
        })
    }

    /// The held partitions as the metrics' pipeline-health gauges see them.
    pub fn partition_health(&self) -> Vec<PartitionHealth> {
        self.partitions
            .iter()
            .map(|(&partition, p)| PartitionHealth {
                partition,
                lag: p.lag(),
                committed: (p.committed >= 0).then_some(p.committed),
                watermark_ms: p.watermark_ms,
                checkpoint_age_seconds: p.checkpointed_at.map(|t| t.elapsed().as_secs_f64()),
            })
            .collect()
    }
}
