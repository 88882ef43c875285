//! The partitions a worker holds: one engine each, the batch of offsets not yet
//! written, and the write → checkpoint → commit sequence that makes a batch
//! durable. Shared between the poll loop and the rebalance callback, which
//! librdkafka runs on the polling thread while the loop holds no lock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use omnimeter_engine::{EngineConfig, PartitionEngine, Rows, Stats};
use omnimeter_metrics::Metrics;
use omnimeter_parquet::ParquetSink;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

use crate::checkpoint_store::{Checkpoint, CheckpointStore};
use crate::dead_letter::DeadLetters;
use crate::status::{PartitionStatus, WorkerStatus};
use crate::worker::{Error, Result, WorkerOptions, one_line};

/// One assigned partition.
struct Held {
    engine: PartitionEngine,
    /// Next offset to consume; `None` before the first message of a partition without checkpoint.
    next_offset: Option<i64>,
    /// First offset of the batch not yet written; `None` when everything consumed is durable.
    batch_first: Option<i64>,
    /// Rows taken from the engine whose write failed: retried before anything is committed.
    unwritten: Rows,
    committed: i64,
    /// A batch boundary at or before `next_offset` to seek to on resume (see [`Checkpoint::resume_offset`]).
    resume_offset: Option<i64>,
    eof: bool,
    closed: bool,
    checkpointed_at: Option<Instant>,
    /// The engine's counters as restored: they include earlier owners' work, which
    /// this worker's reports leave out.
    baseline: Stats,
    /// No checkpoint existed: files of a crashed earlier attempt may exist from the first offset on.
    clean_from_first_message: bool,
}

pub(crate) struct PartitionSet {
    topic: String,
    engine_cfg: EngineConfig,
    sink: ParquetSink,
    store: CheckpointStore,
    dead_letters: Option<DeadLetters>,
    held: BTreeMap<i32, Held>,
    /// Counters of partitions released earlier, so reports cover the whole run.
    released: Stats,
    pub(crate) assigned_once: bool,
    /// An error raised inside a rebalance callback, for the poll loop to act on.
    pub(crate) fatal: Option<Error>,
    pub(crate) status: Arc<Mutex<WorkerStatus>>,
    /// The last flush failed: fetching is paused (partitions assigned meanwhile too).
    pub(crate) output_failing: bool,
    metrics: Arc<Metrics>,
    drain_timeout: Duration,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not wedge shutdown: the data is still consistent per call.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PartitionSet {
    pub(crate) fn new(
        opts: &WorkerOptions,
        sink: ParquetSink,
        store: CheckpointStore,
        dead_letters: Option<DeadLetters>,
        status: Arc<Mutex<WorkerStatus>>,
    ) -> Self {
        lock(&status).topic = opts.topic.clone();
        PartitionSet {
            topic: opts.topic.clone(),
            engine_cfg: opts.engine,
            sink,
            store,
            dead_letters,
            held: BTreeMap::new(),
            released: Stats::default(),
            assigned_once: false,
            fatal: None,
            status,
            output_failing: false,
            metrics: Arc::clone(&opts.metrics),
            drain_timeout: opts.drain_timeout,
        }
    }

    /// Takes over a partition: restores its checkpoint (dropping output of
    /// batches that were written but never checkpointed) and says where to resume.
    pub(crate) fn assign(&mut self, partition: i32) -> Result<Offset> {
        let (held, offset) = match self.store.load(partition).map_err(Error::Checkpoint)? {
            Some(cp) => {
                let engine = PartitionEngine::restore(self.engine_cfg, partition, &cp.engine)
                    .map_err(|e| Error::Restore { partition, source: e })?;
                let removed = self.sink.remove_from(partition, cp.next_offset, cp.closed)?;
                tracing::info!(
                    partition,
                    next_offset = cp.next_offset,
                    resume_offset = cp.resume_offset,
                    open_journeys = engine.open_journeys(),
                    removed_uncommitted_files = removed,
                    "resuming partition from checkpoint"
                );
                let baseline = engine.stats().clone();
                let held = Held {
                    engine,
                    next_offset: Some(cp.next_offset),
                    batch_first: None,
                    unwritten: Rows::default(),
                    committed: cp.next_offset,
                    resume_offset: Some(cp.resume_offset),
                    eof: false,
                    closed: cp.closed,
                    checkpointed_at: None,
                    baseline,
                    clean_from_first_message: false,
                };
                (held, Offset::Offset(cp.resume_offset))
            }
            None => {
                tracing::info!(partition, "no checkpoint: starting partition from the beginning");
                let held = Held {
                    engine: PartitionEngine::new(self.engine_cfg, partition),
                    next_offset: None,
                    batch_first: None,
                    unwritten: Rows::default(),
                    committed: -1,
                    resume_offset: None,
                    eof: false,
                    closed: false,
                    checkpointed_at: None,
                    baseline: Stats::default(),
                    clean_from_first_message: true,
                };
                (held, Offset::Beginning)
            }
        };
        self.held.insert(partition, held);
        Ok(offset)
    }

    /// Makes a partition durable and lets it go (rebalance or shutdown).
    pub(crate) fn revoke<C: ConsumerContext>(&mut self, partition: i32, consumer: &impl Consumer<C>) {
        if let Err(e) = self.flush(partition, consumer, CommitMode::Sync, false) {
            // The next owner replays from the last checkpoint and removes what we wrote since.
            tracing::error!(partition, error = %one_line(&e), "could not make the partition durable before releasing it");
        }
        if let Some(h) = self.held.remove(&partition) {
            self.released.add(&h.engine.stats().since(&h.baseline));
        }
        lock(&self.status).partitions.remove(&partition);
    }

    pub(crate) fn held_partitions(&self) -> Vec<i32> {
        self.held.keys().copied().collect()
    }

    /// One message from the poll loop.
    pub(crate) fn push(&mut self, partition: i32, offset: i64, key: Option<&[u8]>, payload: &[u8]) -> Result<()> {
        let Some(h) = self.held.get_mut(&partition) else { return Ok(()) }; // in flight across a revoke
        if h.next_offset.is_some_and(|n| offset < n) {
            return Ok(()); // already covered by the checkpoint
        }
        if h.clean_from_first_message {
            self.sink.remove_from(partition, offset, false)?;
            h.clean_from_first_message = false;
        }
        h.batch_first.get_or_insert(offset);
        // Reading from the beginning, the first message starts a batch.
        h.resume_offset.get_or_insert(offset);
        if let Some(reason) = h.engine.push(payload, offset)
            && let Some(dl) = &self.dead_letters
        {
            dl.send(partition, offset, key, payload, reason);
        }
        h.next_offset = Some(offset + 1);
        h.eof = false;
        h.closed = false;
        Ok(())
    }

    pub(crate) fn eof(&mut self, partition: i32) {
        if let Some(h) = self.held.get_mut(&partition) {
            h.eof = true;
            // Caught up: everything before the high watermark is complete batches, so
            // the next offset starts the next batch — a safe place to resume from.
            if let Some(n) = h.next_offset {
                h.resume_offset = Some(n);
            }
        }
    }

    /// Every held partition has reached the broker's high watermark.
    pub(crate) fn all_caught_up(&self) -> bool {
        self.assigned_once && self.held.values().all(|h| h.eof)
    }

    pub(crate) fn flush_all<C: ConsumerContext>(
        &mut self,
        consumer: &impl Consumer<C>,
        mode: CommitMode,
        close: bool,
    ) -> Result<()> {
        let mut first_err = None;
        for p in self.held_partitions() {
            if let Err(e) = self.flush(p, consumer, mode, close) {
                // The poll loop reports the failure once; each attempt is counted.
                tracing::debug!(partition = p, error = %one_line(&e), "flush failed");
                self.metrics.record_sink_error();
                lock(&self.status).sink_error = Some(one_line(&e));
                first_err.get_or_insert(e);
            }
        }
        if first_err.is_none() {
            lock(&self.status).sink_error = None;
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Writes the partition's finalized rows, then its checkpoint, then commits:
    /// each step only after the previous one is durable. With `close`, every open
    /// journey is closed first (end of an `--until-end` run).
    fn flush<C: ConsumerContext>(
        &mut self,
        partition: i32,
        consumer: &impl Consumer<C>,
        mode: CommitMode,
        close: bool,
    ) -> Result<()> {
        let Some(h) = self.held.get_mut(&partition) else { return Ok(()) };
        let Some(next) = h.next_offset else { return Ok(()) };
        let closing = close && !h.closed;
        if closing {
            h.engine.finish();
        }
        let mut rows = h.engine.take_rows();
        // Counted once, when the engine hands them out; a failed write retries the rows, not the counts.
        self.metrics.record_tally(&h.engine.take_tally());
        self.metrics.record_journeys(&rows.journeys);
        h.unwritten.append(&mut rows);
        if h.batch_first.is_none() && !closing {
            return Ok(());
        }
        // The rows stay in `unwritten` until the checkpoint covering them is saved: a
        // retry after a failed checkpoint rewrites them (same names) with any newer
        // rows, instead of replacing their files with the newer rows alone.
        let report = if h.unwritten.is_empty() {
            None
        } else {
            Some(match h.batch_first {
                Some(first) => self.sink.write_batch(&h.unwritten, partition, first)?,
                None => self.sink.write_closing_batch(&h.unwritten, partition, next)?,
            })
        };
        if let Some(dl) = &self.dead_letters {
            dl.flush(self.drain_timeout).map_err(Error::Kafka)?;
        }
        let engine = h.engine.checkpoint().map_err(|e| Error::Restore { partition, source: e })?;
        let resume_offset = h.resume_offset.unwrap_or(0).min(next);
        self.store
            .save(partition, &Checkpoint { next_offset: next, closed: close, resume_offset, engine })
            .map_err(Error::Checkpoint)?;
        h.unwritten = Rows::default();
        if let Some(report) = report {
            self.metrics.record_written(&report.files, &report.rows);
            let mut st = lock(&self.status);
            for i in 0..8 {
                st.parquet_files[i] += report.files[i] as u64;
                st.parquet_rows[i] += report.rows[i] as u64;
            }
        }
        h.batch_first = None;
        h.closed = close;
        h.checkpointed_at = Some(Instant::now());
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, partition, Offset::Offset(next)).map_err(Error::Kafka)?;
        // The checkpoint is the truth; the Kafka commit reports progress (lag, tooling).
        match consumer.commit(&tpl, mode) {
            Ok(()) => h.committed = next,
            // A group mid-rebalance refuses commits; the next owner resumes from the checkpoint anyway.
            Err(e) if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::RebalanceInProgress) => {
                tracing::info!(partition, "offset commit skipped during a rebalance; the checkpoint holds the position")
            }
            // During a broker outage every commit fails; the outage itself was reported once.
            Err(e) if lock(&self.status).brokers_down_since.is_some() => {
                tracing::debug!(partition, error = %e, "offset commit failed; the checkpoint holds the position")
            }
            Err(e) => tracing::warn!(partition, error = %e, "offset commit failed; the checkpoint holds the position"),
        }
        Ok(())
    }

    /// Stops fetching every assigned partition (the output cannot take rows).
    pub(crate) fn pause_all<C: ConsumerContext>(&mut self, consumer: &impl Consumer<C>) {
        self.output_failing = true;
        match consumer.assignment() {
            Ok(tpl) => self.pause(consumer, &tpl),
            Err(e) => tracing::warn!(error = %e, "cannot read the assignment to pause it"),
        }
    }

    pub(crate) fn pause<C: ConsumerContext>(&self, consumer: &impl Consumer<C>, tpl: &TopicPartitionList) {
        if let Err(e) = consumer.pause(tpl) {
            tracing::warn!(error = %e, "pausing partitions failed");
        }
    }

    /// Fetches again, each partition from a known record-batch start at or before
    /// where it stopped: some brokers (tansu 0.6) return nothing to a fetch that
    /// starts inside a batch, and a pause can fall anywhere. Messages already
    /// consumed are re-read and skipped by [`PartitionSet::push`].
    pub(crate) fn resume<C: ConsumerContext>(&mut self, consumer: &impl Consumer<C>) {
        self.output_failing = false;
        let mut from = TopicPartitionList::new();
        for (&p, h) in &self.held {
            if let (Some(resume), Some(next)) = (h.resume_offset, h.next_offset)
                && resume < next
                && let Err(e) = from.add_partition_offset(&self.topic, p, Offset::Offset(resume))
            {
                tracing::warn!(partition = p, error = %e, "cannot plan the seek back to a batch start");
            }
        }
        let resumed = consumer.assignment().and_then(|tpl| consumer.resume(&tpl));
        if let Err(e) = resumed {
            tracing::warn!(error = %e, "resuming partitions failed");
        }
        if from.count() > 0
            && let Err(e) = consumer.seek_partitions(from, Duration::from_secs(5))
        {
            tracing::warn!(error = %e, "seeking back to batch starts failed");
        }
    }

    /// Refreshes the status snapshot (positions, high watermarks from the last fetch, watermarks).
    pub(crate) fn refresh_status(&self) {
        let mut st = lock(&self.status);
        st.assigned = self.assigned_once;
        let mut stats = self.released.clone();
        for (&p, h) in &self.held {
            stats.add(&h.engine.stats().since(&h.baseline));
            // Filled in from librdkafka's statistics (fetch responses' high watermark).
            let high_watermark = st.partitions.get(&p).map_or(-1, |s| s.high_watermark);
            st.partitions.insert(
                p,
                PartitionStatus {
                    position: h.next_offset.unwrap_or(0),
                    high_watermark,
                    committed: h.committed,
                    watermark_ms: h.engine.watermark(),
                    open_journeys: h.engine.open_journeys(),
                    caught_up: h.eof,
                    checkpointed_at: h.checkpointed_at,
                },
            );
        }
        st.stats = stats;
        st.refreshed_at = Some(Instant::now());
        drop(st);
        // Partitions without events yet have no watermark and hold nothing back.
        let lowest = self.held.values().filter_map(|h| h.engine.watermark()).min();
        self.metrics.advance_windows(lowest);
    }

    pub(crate) fn total_stats(&self) -> Stats {
        let mut s = self.released.clone();
        for h in self.held.values() {
            s.add(&h.engine.stats().since(&h.baseline));
        }
        s
    }
}
