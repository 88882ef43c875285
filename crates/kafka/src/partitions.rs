//! The partitions a worker holds: one engine each, cut into batches where the
//! data says (SPEC §4), and the write → checkpoint sequence that makes a cut
//! durable. Shared between the poll loop and the rebalance callback, which
//! librdkafka runs on the polling thread while the loop holds no lock.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use omnimeter_engine::{CutRule, DurationMs, EngineConfig, Forwarded, PartitionEngine, Rows, Stats, TABLES};
use omnimeter_metrics::Metrics;
use omnimeter_parquet::{GapRow, ParquetSink};
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

use crate::checkpoint_store::{Checkpoint, CheckpointStore};
use crate::dead_letter::DeadLetters;
use crate::status::{LostRange, PartitionStatus, WorkerStatus};
use crate::worker::{Error, OnDataLoss, Result, WorkerOptions, one_line};

/// A batch cut from a partition, kept until its files and checkpoint are durable.
struct Cut {
    /// The batch covers offsets `start..checkpoint.next_offset`.
    start: i64,
    rows: Rows,
    /// The state at the cut: saved once the rows are published.
    checkpoint: Checkpoint,
}

/// How long a partition may look past its log's end, without a message, before
/// that counts as a truncated or recreated topic ([`PartitionSet::check_log_end`]).
const BEHIND_LOG_END: Duration = Duration::from_secs(10);

/// One assigned partition.
struct Held {
    engine: PartitionEngine,
    cut_rule: CutRule,
    /// Next offset to consume; `None` before the first message of a partition without checkpoint.
    next_offset: Option<i64>,
    /// Where the batch being gathered starts: the last cut's offset.
    batch_start: Option<i64>,
    /// Cuts taken whose files or checkpoint are not durable yet, oldest first.
    unpublished: VecDeque<Cut>,
    committed: i64,
    /// A batch boundary at or before `next_offset` to seek to on resume (see [`Checkpoint::resume_offset`]).
    resume_offset: Option<i64>,
    eof: bool,
    closed: bool,
    checkpointed_at: Option<Instant>,
    /// The engine's counters as restored: they include earlier owners' work, which
    /// this worker's reports leave out.
    baseline: Stats,
    /// No checkpoint existed: the first message read gets one (an empty engine), so
    /// that a restart knows which offsets it needs.
    fresh: bool,
    /// Since when the log end reported by fetches is before `next_offset`, with no message since.
    behind_log_end_since: Option<Instant>,
    /// Resolved input: numbered messages found missing, and seen again, as last reported.
    missing_reported: u64,
    repeated_reported: u64,
}

impl Held {
    fn new(engine: PartitionEngine, cut_rule: CutRule) -> Self {
        Held {
            baseline: engine.stats().clone(),
            engine,
            cut_rule,
            next_offset: None,
            batch_start: None,
            unpublished: VecDeque::new(),
            committed: -1,
            resume_offset: None,
            eof: false,
            closed: false,
            checkpointed_at: None,
            fresh: false,
            behind_log_end_since: None,
            missing_reported: 0,
            repeated_reported: 0,
        }
    }
}

pub(crate) struct PartitionSet {
    topic: String,
    engine_cfg: EngineConfig,
    file_period: DurationMs,
    file_rows: usize,
    on_data_loss: OnDataLoss,
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
    /// The last publish failed: fetching is paused (partitions assigned meanwhile too).
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
            // Identities are resolved upstream by `omnimeter resolve` (links from every
            // partition); this worker takes events as they come (SPEC §6).
            engine_cfg: EngineConfig { resolve_identities: false, ..opts.engine },
            file_period: opts.file_period,
            file_rows: opts.file_rows,
            on_data_loss: opts.on_data_loss,
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

    fn cut_settings(&self) -> (i64, u64) {
        (self.file_period.0, self.file_rows as u64)
    }

    /// Takes over a partition: restores its newest checkpoint and says where to resume.
    pub(crate) fn assign(&mut self, partition: i32) -> Result<Offset> {
        let (held, offset) = match self.store.load(partition).map_err(Error::Checkpoint)? {
            Some(cp) => {
                let engine = PartitionEngine::restore(self.engine_cfg, partition, &cp.engine)
                    .map_err(|e| Error::Restore { partition, source: e })?;
                // Batches past the checkpoint are rewritten identically by the replay,
                // unless the cut settings changed: then they would overlap the new cuts.
                let recut = cp.cut_settings != Some(self.cut_settings());
                let removed = self.sink.remove_from(partition, cp.next_offset, cp.closed, recut)?;
                tracing::info!(
                    partition,
                    next_offset = cp.next_offset,
                    resume_offset = cp.resume_offset,
                    open_journeys = engine.open_journeys(),
                    removed_files = removed,
                    "resuming partition from checkpoint"
                );
                let cut_rule = CutRule::new(self.file_period, self.file_rows, &engine);
                let mut held = Held::new(engine, cut_rule);
                held.next_offset = Some(cp.next_offset);
                held.batch_start = Some(cp.next_offset);
                held.committed = cp.next_offset;
                held.resume_offset = Some(cp.resume_offset);
                held.closed = cp.closed;
                (held, Offset::Offset(cp.resume_offset))
            }
            None => {
                tracing::info!(partition, "no checkpoint: starting partition at the start of its log");
                let engine = PartitionEngine::new(self.engine_cfg, partition);
                let cut_rule = CutRule::new(self.file_period, self.file_rows, &engine);
                let mut held = Held::new(engine, cut_rule);
                held.fresh = true;
                (held, Offset::Beginning)
            }
        };
        self.held.insert(partition, held);
        Ok(offset)
    }

    /// Lets a partition go in a rebalance or at shutdown. Cuts already taken are
    /// published (they are what any owner writes) and the position committed; the
    /// batch being gathered is not cut early: the next owner replays it from the
    /// last checkpoint. With `lost` (librdkafka says another worker may own the
    /// partition already) nothing is written or committed at all.
    pub(crate) fn revoke<C: ConsumerContext>(&mut self, partition: i32, consumer: &impl Consumer<C>, lost: bool) {
        if lost {
            tracing::warn!(
                partition,
                "partition lost (this worker was cut off or frozen past its session timeout): dropped without writing; its new owner replays from the last checkpoint"
            );
        } else if let Err(e) = self.publish(partition).and_then(|()| self.commit(partition, consumer, CommitMode::Sync))
        {
            tracing::warn!(partition, error = %one_line(&e), "could not publish before releasing the partition; its next owner replays from the last checkpoint");
        }
        if let Some(mut h) = self.held.remove(&partition) {
            self.metrics.record_journeys(h.engine.newly_closed());
            self.released.add(&h.engine.stats().since(&h.baseline));
        }
        lock(&self.status).partitions.remove(&partition);
    }

    pub(crate) fn held_partitions(&self) -> Vec<i32> {
        self.held.keys().copied().collect()
    }

    /// One message from the poll loop. Returns whether it completed a cut, which
    /// the caller then publishes.
    pub(crate) fn push(
        &mut self,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        payload: &[u8],
        forwarded: Option<&Forwarded>,
    ) -> Result<bool> {
        let settings = self.cut_settings();
        let Some(h) = self.held.get_mut(&partition) else { return Ok(false) }; // in flight across a revoke
        if h.next_offset.is_some_and(|n| offset < n) {
            return Ok(false); // already covered by the checkpoint
        }
        let mut cut = false;
        if h.fresh {
            // Files of an attempt that crashed before any checkpoint, if any, start here too.
            self.sink.remove_from(partition, offset, false, true)?;
            h.fresh = false;
            h.batch_start = Some(offset);
            h.resume_offset = Some(offset);
            h.next_offset = Some(offset);
            Self::take_cut(h, &self.metrics, settings, false)?;
            cut = true;
        }
        let rejected = match forwarded {
            Some(f) => h.engine.push_forwarded(payload, f, offset),
            None => h.engine.push(payload, offset),
        };
        if let Some(reason) = rejected
            && let Some(dl) = &self.dead_letters
        {
            dl.send(partition, offset, key, payload, reason);
        }
        h.next_offset = Some(offset + 1);
        h.behind_log_end_since = None;
        h.eof = false;
        h.closed = false;
        if h.cut_rule.after_push(&h.engine).is_some() {
            Self::take_cut(h, &self.metrics, settings, false)?;
            cut = true;
        }
        Ok(cut)
    }

    /// Ends the batch being gathered at `next_offset`: takes its rows and the
    /// engine's state. With `closing`, every open journey is closed first.
    fn take_cut(h: &mut Held, metrics: &Metrics, cut_settings: (i64, u64), closing: bool) -> Result<()> {
        let Some(next) = h.next_offset else { return Ok(()) };
        let partition = h.engine.partition();
        if closing {
            h.engine.finish();
        }
        metrics.record_journeys(h.engine.newly_closed());
        let rows = h.engine.take_rows();
        let engine = h.engine.checkpoint().map_err(|e| Error::Restore { partition, source: e })?;
        let checkpoint = Checkpoint {
            next_offset: next,
            resume_offset: h.resume_offset.unwrap_or(next).min(next),
            closed: closing,
            cut_settings: Some(cut_settings),
            engine,
        };
        // Only the newest waiting cut's checkpoint is ever saved (it covers the cuts before
        // it): the state of the one it supersedes need not stay in memory.
        if let Some(superseded) = h.unpublished.back_mut() {
            superseded.checkpoint.engine = Vec::new();
        }
        h.unpublished.push_back(Cut { start: h.batch_start.unwrap_or(next), rows, checkpoint });
        h.batch_start = Some(next);
        Ok(())
    }

    /// Metrics of journeys closed since the last look, and the live counts: they
    /// follow the events without waiting for a cut.
    pub(crate) fn observe(&mut self) {
        for (p, h) in self.held.iter_mut() {
            // A gap in a resolver's numbering: messages that never arrived. Loud, once per change.
            let (repeated, missing) = h.engine.upstream_repeats_and_missing();
            if missing > h.missing_reported {
                tracing::error!(
                    partition = p,
                    missing,
                    repeated,
                    "resolved input: messages of the resolve stage never arrived (numbers skipped); tables miss them"
                );
                h.missing_reported = missing;
            }
            if repeated > h.repeated_reported {
                tracing::info!(
                    partition = p,
                    repeated,
                    "resolved input: skipped messages a resolver sent again (a replay after a crash or rebalance)"
                );
                h.repeated_reported = repeated;
            }
            self.metrics.record_journeys(h.engine.newly_closed());
            self.metrics.record_tally(&h.engine.take_tally());
        }
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

    /// Every held partition has reached the broker's high watermark (end-of-partition
    /// events since the worker started: `--until-end` decides the end at start).
    pub(crate) fn all_caught_up(&self) -> bool {
        self.assigned_once && self.held.values().all(|h| h.eof)
    }

    /// Every held partition has been read up to `ends` (exclusive end offsets, as the
    /// demo's producer reports them once it stopped).
    pub(crate) fn all_read_to(&self, ends: &BTreeMap<i32, i64>) -> bool {
        self.assigned_once
            && self.held.iter().all(|(p, h)| ends.get(p).is_none_or(|&end| h.next_offset.unwrap_or(0) >= end))
    }

    /// Publishes every held partition's waiting cuts; the first error after trying all.
    pub(crate) fn publish_all(&mut self) -> Result<()> {
        let mut first_err = None;
        for p in self.held_partitions() {
            if let Err(e) = self.publish(p) {
                // The poll loop reports the failure once; each attempt is counted.
                tracing::debug!(partition = p, error = %one_line(&e), "publishing failed");
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

    /// Writes the waiting cuts' files, then the newest cut's checkpoint, each step only
    /// after the previous one is durable. The files of all waiting cuts are published
    /// together (one pair of syncs), and the newest checkpoint covers them all: a
    /// backfill of sparse data cuts every hour of event time, and a sync pair and a
    /// checkpoint per cut set its pace. Cuts stay waiting until both are durable: a
    /// retry rewrites their files under the same names.
    fn publish(&mut self, partition: i32) -> Result<()> {
        let Some(h) = self.held.get_mut(&partition) else { return Ok(()) };
        let Some(newest) = h.unpublished.back() else { return Ok(()) };
        let mut publication = self.sink.publication();
        for cut in h.unpublished.iter().filter(|c| !c.rows.is_empty()) {
            publication.add(&cut.rows, partition, cut.start, cut.checkpoint.closed)?;
        }
        let report = publication.publish()?;
        if let Some(dl) = &self.dead_letters {
            dl.flush(self.drain_timeout).map_err(Error::Kafka)?;
        }
        self.store.save(partition, &newest.checkpoint).map_err(Error::Checkpoint)?;
        self.metrics.record_written(&report.files, &report.rows);
        let mut st = lock(&self.status);
        for i in 0..TABLES.len() {
            st.parquet_files[i] += report.files[i] as u64;
            st.parquet_rows[i] += report.rows[i] as u64;
        }
        h.checkpointed_at = Some(Instant::now());
        h.unpublished.clear();
        Ok(())
    }

    /// The most cuts any held partition has waiting to be published.
    pub(crate) fn most_waiting_cuts(&self) -> usize {
        self.held.values().map(|h| h.unpublished.len()).max().unwrap_or(0)
    }

    /// Commits every held partition's position: progress for lag and tooling, which
    /// may run ahead of the last cut (the checkpoint decides where an owner resumes).
    pub(crate) fn commit_all<C: ConsumerContext>(&mut self, consumer: &impl Consumer<C>, mode: CommitMode) {
        for p in self.held_partitions() {
            if let Err(e) = self.commit(p, consumer, mode) {
                tracing::warn!(partition = p, error = %one_line(&e), "offset commit failed");
            }
        }
    }

    fn commit<C: ConsumerContext>(
        &mut self,
        partition: i32,
        consumer: &impl Consumer<C>,
        mode: CommitMode,
    ) -> Result<()> {
        let Some(h) = self.held.get_mut(&partition) else { return Ok(()) };
        let Some(next) = h.next_offset.filter(|&n| n > h.committed) else { return Ok(()) };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, partition, Offset::Offset(next)).map_err(Error::Kafka)?;
        match consumer.commit(&tpl, mode) {
            Ok(()) => h.committed = next,
            // Expected while the group rebalances or the brokers are away: the
            // checkpoint holds the position, and the next commit catches up.
            Err(e)
                if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::RebalanceInProgress)
                    || lock(&self.status).brokers_down_since.is_some() =>
            {
                tracing::debug!(partition, error = %e, "offset commit deferred")
            }
            Err(e) => return Err(Error::Kafka(e)),
        }
        Ok(())
    }

    /// The end of a finite input (`--until-end`, the demo's wind-down): closes every
    /// journey of each held partition and publishes the last batch with them.
    pub(crate) fn close_all(&mut self) -> Result<()> {
        let settings = self.cut_settings();
        for h in self.held.values_mut() {
            if !h.closed && h.next_offset.is_some() {
                Self::take_cut(h, &self.metrics, settings, true)?;
                h.closed = true;
            }
        }
        self.publish_all()
    }

    /// Compares the held partitions' positions with the broker's log starts after
    /// librdkafka found an offset out of range (it does not say which partition).
    /// Returns the ranges that are gone; with `on_data_loss = "skip"` they are
    /// recorded and the partitions moved past them.
    pub(crate) fn check_data_loss<C: ConsumerContext>(
        &mut self,
        consumer: &impl Consumer<C>,
    ) -> Result<Vec<LostRange>> {
        let mut lost = Vec::new();
        // Partitions whose log now starts past where they stand, and that start.
        let mut moved: Vec<(i32, i64)> = Vec::new();
        for (&p, h) in &self.held {
            // Where fetching stands: the resume point (a batch start) until messages arrive.
            let needed = match (h.next_offset, h.resume_offset) {
                (Some(n), Some(r)) => r.min(n),
                (Some(n), None) => n,
                (None, _) => continue, // starting at the log start, whatever it is
            };
            let (low, high) =
                consumer.fetch_watermarks(&self.topic, p, Duration::from_secs(10)).map_err(Error::Kafka)?;
            let next = h.next_offset.unwrap_or(needed);
            if low <= needed && needed > high && high >= 0 {
                // Checked only when the log start explains nothing: some brokers (tansu
                // 0.6) under-report the log end in ListOffsets.
                return Err(Error::Truncated { topic: self.topic.clone(), partition: p, needed: next, high });
            }
            if low > needed {
                if low > next {
                    lost.push(LostRange { partition: p, from: next, to: low - 1 });
                }
                // Offsets below `next` were read already: only the re-read is skipped.
                moved.push((p, low));
            }
        }
        if let (OnDataLoss::Stop, Some(first)) = (self.on_data_loss, lost.first()) {
            return Err(Error::DataLoss { topic: self.topic.clone(), range: first.clone() });
        }
        let detected_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        for range in &lost {
            let count = (range.to - range.from + 1) as u64;
            tracing::error!(
                topic = %self.topic,
                partition = range.partition,
                "offsets {}..={} ({count}) were deleted by the broker before omnimeter read them: skipped (on_data_loss = \"skip\"); counted in omnimeter_lost_offsets_total and written to the gaps table",
                range.from,
                range.to
            );
            self.metrics.record_lost_offsets(&self.topic, range.partition, count);
            let row = GapRow {
                topic: self.topic.clone(),
                partition: range.partition,
                from_offset: range.from,
                to_offset: range.to,
                detected_at,
            };
            self.sink.write_gaps(&[row], range.partition)?;
            if let Some(h) = self.held.get_mut(&range.partition) {
                h.next_offset = Some(range.to + 1);
                h.resume_offset = Some(range.to + 1);
            }
            lock(&self.status).lost.push((range.clone(), count));
        }
        if !moved.is_empty() {
            // After an offset-out-of-range error librdkafka refuses a seek on the
            // partition ("erroneous state"): assigning it again, at the log start, restarts
            // its fetcher. The other held partitions resume where they stand (a batch start;
            // messages already folded are skipped).
            let mut tpl = TopicPartitionList::new();
            for (&p, h) in &self.held {
                let at = match (moved.iter().find(|(q, _)| *q == p), h.next_offset, h.resume_offset) {
                    (Some(&(_, low)), _, _) => Offset::Offset(low),
                    (None, Some(n), Some(r)) => Offset::Offset(r.min(n)),
                    (None, Some(n), None) => Offset::Offset(n),
                    (None, None, _) => Offset::Beginning,
                };
                tpl.add_partition_offset(&self.topic, p, at).map_err(Error::Kafka)?;
            }
            consumer.assign(&tpl).map_err(Error::Kafka)?;
            if self.output_failing {
                self.pause(consumer, &tpl);
            }
        }
        Ok(lost)
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

    /// A partition whose log, by the fetch responses, ends before the position its
    /// checkpoint gave (the topic was recreated or truncated) is a loss. Kafka answers
    /// such a fetch with an offset out of range ([`Self::check_data_loss`]); some
    /// brokers (tansu 0.6) return empty fetches instead, which would wait forever and
    /// then silently skip the new log's first offsets. The log end comes from
    /// librdkafka's statistics, which lag the position by up to a second while messages
    /// flow: only a partition that stayed behind it for [`BEHIND_LOG_END`] without a
    /// message counts.
    pub(crate) fn check_log_end(&mut self) -> Result<()> {
        let st = lock(&self.status);
        for (&p, h) in self.held.iter_mut() {
            let high = st.partitions.get(&p).map_or(-1, |s| s.high_watermark);
            match h.next_offset {
                Some(next) if high >= 0 && high < next => {
                    if h.behind_log_end_since.get_or_insert_with(Instant::now).elapsed() >= BEHIND_LOG_END {
                        return Err(Error::Truncated { topic: self.topic.clone(), partition: p, needed: next, high });
                    }
                }
                _ => h.behind_log_end_since = None,
            }
        }
        Ok(())
    }

    pub(crate) fn total_stats(&self) -> Stats {
        let mut s = self.released.clone();
        for h in self.held.values() {
            s.add(&h.engine.stats().since(&h.baseline));
        }
        s
    }
}
