//! [`run`]: the consumer-group worker loop. A `BaseConsumer` is polled on the
//! calling (blocking) thread; librdkafka runs rebalance callbacks inside `poll`,
//! where [`RebalanceContext`] restores assigned partitions from their
//! checkpoints and lets revoked ones go (lost ones without writing anything).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use omnimeter_engine::resolve::FORWARDED_HEADER;
use omnimeter_engine::{CheckpointError, DurationMs, EngineConfig, Forwarded, Stats};
use omnimeter_metrics::Metrics;
use omnimeter_parquet::{Output, ParquetSink};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{Statistics, TopicPartitionList};

use crate::checkpoint_store::CheckpointStore;
use crate::dead_letter::DeadLetters;
use crate::partitions::{PartitionSet, lock};
use crate::status::{LostRange, WorkerStatus};

/// How soon a cut is published after it is taken: the cuts taken meanwhile go out with it.
const PUBLISH_WITHIN: Duration = Duration::from_millis(100);
/// A partition with this many cuts waiting publishes at once: each holds its rows and
/// the engine's state until then.
const MAX_WAITING_CUTS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kafka")]
    Kafka(#[source] KafkaError),
    #[error("output")]
    Sink(#[from] omnimeter_parquet::Error),
    #[error("checkpoint")]
    Checkpoint(#[source] std::io::Error),
    #[error("partition {partition} checkpoint")]
    Restore { partition: i32, source: CheckpointError },
    #[error(
        "data loss: topic {topic} {range}: the broker deleted these offsets (retention, DeleteRecords) before omnimeter read them; nothing was written past them. Set kafka.on_data_loss = \"skip\" to go on without them (counted, and written to the gaps table)"
    )]
    DataLoss { topic: String, range: LostRange },
    #[error(
        "data loss: topic {topic} partition {partition}: the checkpoint resumes at offset {needed} but the broker's log ends at {high} (topic recreated or truncated?); delete the partition's checkpoints under _checkpoints/{topic}/ to start it over"
    )]
    Truncated { topic: String, partition: i32, needed: i64, high: i64 },
}

impl Error {
    /// Offsets the worker needed are gone: the CLI exits 3 for this.
    pub fn is_data_loss(&self) -> bool {
        matches!(self, Error::DataLoss { .. } | Error::Truncated { .. })
    }
}

/// What a worker does when the broker no longer has offsets it needs (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDataLoss {
    /// Exit with the missing range: nothing is written past it.
    #[default]
    Stop,
    /// Go on after the range; log it, count it, write it to the `gaps` table.
    Skip,
}

/// The demo's wind-down: once it holds end offsets, the worker stops like
/// `--until-end` when it has read each held partition up to its end (exclusive).
pub type FinishAt = Arc<Mutex<Option<BTreeMap<i32, i64>>>>;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error with its causes on one line (`output: cannot write …: No space left on device`), for logs.
pub(crate) fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// Everything a worker needs, already validated by the config layer.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub brokers: String,
    pub topic: String,
    pub group: String,
    /// Passed to librdkafka verbatim (`security.protocol`, `sasl.*`, `ssl.*`, …).
    pub properties: Vec<(String, String)>,
    pub dead_letter_topic: Option<String>,
    pub session_timeout: Duration,
    pub drain_timeout: Duration,
    pub fetch_max_wait: Duration,
    /// A local directory or a bucket; the checkpoints go there too.
    pub output: Output,
    /// How often positions are committed and metrics of closed journeys updated.
    pub commit_interval: Duration,
    /// Cuts (SPEC §4): the watermark entering a new `file_period`, or `file_rows` rows waiting.
    pub file_period: DurationMs,
    pub file_rows: usize,
    pub on_data_loss: OnDataLoss,
    pub engine: EngineConfig,
    /// Stop once every held partition reached the high watermark; close journeys first.
    pub until_end: bool,
    /// Where the partitions report what they fold and write.
    pub metrics: Arc<Metrics>,
    /// Once its owner fills it, the worker reads up to the given ends, closes
    /// journeys and exits (the demo's wind-down: the producer stopped).
    pub finish: Option<FinishAt>,
}

impl WorkerOptions {
    fn client_config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // Offsets the broker deleted are never skipped silently: librdkafka reports
            // them and the worker decides (kafka.on_data_loss). A partition without a
            // checkpoint starts at the log start explicitly, so this is no obstacle there.
            .set("auto.offset.reset", "error")
            // End-of-partition events carry the fetch response's high watermark: the
            // reliable "caught up" signal (ListOffsets can under-report on some brokers).
            .set("enable.partition.eof", "true")
            .set("session.timeout.ms", self.session_timeout.as_millis().to_string())
            .set("fetch.wait.max.ms", self.fetch_max_wait.as_millis().to_string())
            .set("statistics.interval.ms", "1000")
            .set_log_level(RDKafkaLogLevel::Warning);
        for (k, v) in &self.properties {
            cfg.set(k, v);
        }
        cfg
    }
}

/// What a worker did before it returned.
#[derive(Debug, Clone, Default)]
pub struct WorkerReport {
    pub stats: Stats,
    /// The worker stopped because every held partition was caught up (`--until-end`).
    pub reached_end: bool,
}

struct RebalanceContext {
    set: Arc<Mutex<PartitionSet>>,
    status: Arc<Mutex<WorkerStatus>>,
    topic: String,
}

/// What a librdkafka log line means to omnimeter: most keep librdkafka's words and
/// level; the ones the worker handles by design get omnimeter's words at `info`.
#[derive(Debug, PartialEq, Eq)]
enum RdLog {
    /// An offset commit refused because the group is rebalancing (or the commit
    /// carried a generation the rebalance ended): nothing is lost, the next
    /// `commit_interval` commits again, and a new owner resumes from the checkpoint.
    CommitDuringRebalance,
    /// Anything else, at librdkafka's level mapped to tracing's.
    Keep(tracing::Level),
}

fn classify_rdkafka_log(level: RDKafkaLogLevel, fac: &str, message: &str) -> RdLog {
    const REBALANCING: [&str; 6] = [
        "rebalance in progress",
        "rebalance_in_progress",
        "specified group generation id is not valid",
        "illegal_generation",
        "unknown_member_id",
        "unknown member",
    ];
    let lower = message.to_ascii_lowercase();
    let about_commit = fac.eq_ignore_ascii_case("COMMITFAIL") || lower.contains("commit");
    if about_commit && REBALANCING.iter().any(|r| lower.contains(r)) {
        return RdLog::CommitDuringRebalance;
    }
    RdLog::Keep(match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
            tracing::Level::ERROR
        }
        RDKafkaLogLevel::Warning => tracing::Level::WARN,
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::Level::INFO,
        RDKafkaLogLevel::Debug => tracing::Level::DEBUG,
    })
}

impl ClientContext for RebalanceContext {
    /// librdkafka's own log lines. A commit refused during a rebalance is expected
    /// (it is retried at the next interval, and the checkpoint, not the commit, decides
    /// where a new owner resumes), so it is said at `info` in omnimeter's words
    /// instead of librdkafka's warning; everything else keeps its level.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match classify_rdkafka_log(level, fac, log_message) {
            RdLog::CommitDuringRebalance => tracing::info!(
                target: "librdkafka",
                detail = log_message,
                "offset commit skipped: the group is rebalancing; the next commit_interval retries it"
            ),
            RdLog::Keep(tracing::Level::ERROR) => {
                tracing::error!(target: "librdkafka", "librdkafka: {fac} {log_message}")
            }
            RdLog::Keep(tracing::Level::WARN) => {
                tracing::warn!(target: "librdkafka", "librdkafka: {fac} {log_message}")
            }
            RdLog::Keep(tracing::Level::INFO) => {
                tracing::info!(target: "librdkafka", "librdkafka: {fac} {log_message}")
            }
            RdLog::Keep(_) => tracing::debug!(target: "librdkafka", "librdkafka: {fac} {log_message}"),
        }
    }

    /// Client-level errors, which librdkafka retries by itself; while no broker is
    /// reachable the outage was already reported once (see `stats`), so retries stay quiet.
    fn error(&self, error: KafkaError, reason: &str) {
        // End of partition is progress; an offset out of range reaches the poll loop,
        // which finds the lost range and acts on kafka.on_data_loss.
        if matches!(error, KafkaError::PartitionEOF(_))
            || matches!(
                error.rdkafka_error_code(),
                Some(RDKafkaErrorCode::PartitionEOF | RDKafkaErrorCode::AutoOffsetReset)
            )
        {
            return;
        }
        if lock(&self.status).brokers_down_since.is_some() {
            tracing::debug!(error = %error, reason, "kafka client (retrying)");
        } else {
            tracing::warn!(error = %error, reason, "kafka client (retrying)");
        }
    }

    /// librdkafka's periodic statistics carry each partition's high watermark as
    /// seen in fetch responses (the base of the lag metric) and each broker
    /// connection's state (readiness: is any broker reachable?).
    fn stats(&self, statistics: Statistics) {
        let reachable = statistics.brokers.values().any(|b| b.state == "UP");
        let mut st = lock(&self.status);
        match (reachable, st.brokers_down_since) {
            (false, None) if st.assigned => {
                st.brokers_down_since = Some(Instant::now());
                tracing::error!(
                    "no Kafka broker reachable: reconnecting with backoff; /readyz reports 503 until one answers"
                );
            }
            (true, Some(since)) => {
                st.brokers_down_since = None;
                tracing::info!(down_for_s = since.elapsed().as_secs(), "Kafka broker reachable again");
            }
            _ => {}
        }
        let Some(topic) = statistics.topics.get(&self.topic) else { return };
        for (p, ps) in &topic.partitions {
            if let Some(entry) = st.partitions.get_mut(p)
                && ps.hi_offset >= 0
            {
                entry.high_watermark = ps.hi_offset;
            }
        }
    }
}

impl ConsumerContext for RebalanceContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let mut set = lock(&self.set);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let wanted: Vec<(String, i32)> =
                    tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
                for (topic, p) in wanted {
                    match set.assign(p) {
                        Ok(offset) => {
                            if let Err(e) = tpl.set_partition_offset(&topic, p, offset) {
                                set.fatal.get_or_insert(Error::Kafka(e));
                            }
                        }
                        Err(e) => {
                            set.fatal.get_or_insert(e);
                        }
                    }
                }
                set.assigned_once = true;
                tracing::info!(partitions = ?set.held_partitions(), "partitions assigned");
                if let Err(e) = consumer.assign(tpl) {
                    set.fatal.get_or_insert(Error::Kafka(e));
                }
                if set.output_failing {
                    set.pause(consumer, tpl);
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                let lost = consumer.assignment_lost();
                tracing::info!(partitions = ?revoked, lost, "partitions revoked");
                for p in revoked {
                    set.revoke(p, consumer, lost);
                }
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(error = %e, "unassign failed");
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance error");
                for p in set.held_partitions() {
                    set.revoke(p, consumer, true);
                }
                let _ = consumer.unassign();
            }
        }
        let status = Arc::clone(&set.status);
        drop(set);
        lock(&status).assigned = true;
    }
}

/// Runs a worker until `stop` is set (graceful: everything durable, journeys kept
/// open in the checkpoints) or, with `until_end`, until it caught up (journeys
/// closed). Blocking: call it from a dedicated thread.
pub fn run(opts: &WorkerOptions, stop: &AtomicBool, status: Arc<Mutex<WorkerStatus>>) -> Result<WorkerReport> {
    let sink = ParquetSink::new(opts.output.clone())?;
    let store = CheckpointStore::new(sink.store().clone(), &opts.topic);
    let client = opts.client_config();
    let dead_letters = match &opts.dead_letter_topic {
        Some(t) => Some(DeadLetters::new(&client, t, &opts.topic).map_err(Error::Kafka)?),
        None => None,
    };
    let set = Arc::new(Mutex::new(PartitionSet::new(opts, sink, store, dead_letters, Arc::clone(&status))));
    let consumer: BaseConsumer<RebalanceContext> = client
        .create_with_context(RebalanceContext { set: Arc::clone(&set), status, topic: opts.topic.clone() })
        .map_err(Error::Kafka)?;
    consumer.subscribe(&[&opts.topic]).map_err(Error::Kafka)?;
    tracing::info!(topic = %opts.topic, group = %opts.group, brokers = %opts.brokers, "worker started");

    let result = poll_loop(opts, stop, &consumer, &set);
    // Leaving the group runs a last revoke callback, which flushes what is left.
    consumer.unsubscribe();
    drop(consumer);
    let stats = lock(&set).total_stats();
    result.map(|reached_end| WorkerReport { stats, reached_end })
}

fn poll_loop(
    opts: &WorkerOptions,
    stop: &AtomicBool,
    consumer: &BaseConsumer<RebalanceContext>,
    set: &Mutex<PartitionSet>,
) -> Result<bool> {
    let mut next_commit = Instant::now() + opts.commit_interval;
    let mut next_publish: Option<Instant> = None;
    let mut retry = OutputRetry::default();
    let mut last_status = Instant::now();
    let mut last_warning: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            tracing::info!(
                "stopping: publishing finished batches and committing; open journeys stay in the checkpoints"
            );
            let mut s = lock(set);
            s.observe();
            let published = s.publish_all();
            s.commit_all(consumer, CommitMode::Sync);
            published?;
            return Ok(false);
        }
        let polled = consumer.poll(Duration::from_millis(100));
        let mut s = lock(set);
        if let Some(e) = s.fatal.take() {
            return Err(e);
        }
        match polled {
            None => {}
            Some(Ok(m)) => {
                // A resolve stage's message says what it is in a header (SPEC §6).
                let forwarded = if opts.engine.resolved_input {
                    m.headers().and_then(|hs| {
                        hs.iter().find(|h| h.key == FORWARDED_HEADER).and_then(|h| h.value.and_then(Forwarded::parse))
                    })
                } else {
                    None
                };
                let payload = m.payload().unwrap_or_default();
                let cut = s.push(m.partition(), m.offset(), m.key(), payload, forwarded.as_ref())?;
                // A completed cut is published shortly (unless a failed one waits for its
                // retry): cuts that follow within PUBLISH_WITHIN share its syncs, as in a
                // backfill of sparse data, where every hour of event time is a cut.
                if cut && !s.output_failing {
                    let due = if s.most_waiting_cuts() >= MAX_WAITING_CUTS {
                        Instant::now()
                    } else {
                        Instant::now() + PUBLISH_WITHIN
                    };
                    next_publish = Some(next_publish.map_or(due, |t| t.min(due)));
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => s.eof(p),
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => {
                let lost = s.check_data_loss(consumer)?;
                if lost.is_empty() {
                    tracing::info!("an offset was out of range, but no offset this worker had yet to read is missing");
                }
            }
            // librdkafka retries broker and network errors by itself; say so at most every 5 s.
            Some(Err(e)) if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) => {
                if lock(&s.status).brokers_down_since.is_none() {
                    tracing::warn!(error = %e, "kafka (retrying)");
                }
                last_warning = Some(Instant::now());
            }
            Some(Err(_)) => {}
        }
        if next_publish.is_some_and(|t| Instant::now() >= t) {
            // A failed publish keeps its cuts: fetching pauses so rows cannot pile up,
            // and the cuts are retried with backoff under the same names.
            next_publish = match s.publish_all() {
                Ok(()) => {
                    if let Some(failed_for) = retry.recovered() {
                        tracing::info!(
                            failed_for_s = failed_for.as_secs(),
                            "output writable again: resuming consumption"
                        );
                        s.resume(consumer);
                    }
                    None
                }
                Err(e) => {
                    let wait = retry.failed();
                    if !s.output_failing {
                        tracing::error!(
                            "output failing: {}; consumption paused, retrying every {}s at most",
                            one_line(&e),
                            OutputRetry::MAX.as_secs()
                        );
                        s.pause_all(consumer);
                    }
                    Some(Instant::now() + wait)
                }
            };
        }
        if Instant::now() >= next_commit {
            s.observe();
            // While the output fails nothing is committed: a stuck worker shows its lag.
            if !s.output_failing {
                s.commit_all(consumer, CommitMode::Async);
            }
            next_commit = Instant::now() + opts.commit_interval;
        }
        if last_status.elapsed() >= Duration::from_millis(500) {
            s.observe();
            s.refresh_status();
            s.check_log_end()?;
            last_status = Instant::now();
        }
        let done = if opts.until_end {
            s.all_caught_up()
        } else if let Some(ends) = opts.finish.as_ref().and_then(|f| lock(f).clone()) {
            s.all_read_to(&ends)
        } else {
            false
        };
        if done && !s.output_failing && next_publish.is_none() {
            tracing::info!(partitions = ?s.held_partitions(), "caught up: closing journeys and writing everything");
            s.close_all()?;
            s.commit_all(consumer, CommitMode::Sync);
            s.observe();
            s.refresh_status();
            opts.metrics.finish_windows();
            return Ok(true);
        }
    }
}

/// Backoff between flush attempts while the output fails: 1 s doubling to [`OutputRetry::MAX`].
#[derive(Debug, Default)]
struct OutputRetry {
    failing_since: Option<Instant>,
    wait: Duration,
}

impl OutputRetry {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(30);

    /// Records a failed attempt; returns how long to wait before the next one.
    fn failed(&mut self) -> Duration {
        self.failing_since.get_or_insert_with(Instant::now);
        self.wait = if self.wait.is_zero() { Self::FIRST } else { (self.wait * 2).min(Self::MAX) };
        self.wait
    }

    /// Records a success; returns how long the output had been failing, if it was.
    fn recovered(&mut self) -> Option<Duration> {
        self.wait = Duration::ZERO;
        self.failing_since.take().map(|t| t.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_refused_during_a_rebalance_are_expected_and_the_rest_keeps_its_level() {
        let expected = [
            (
                "COMMITFAIL",
                "Offset commit (manual) failed for 1/1 partition(s) in join-state steady: Broker: Group rebalance in progress",
            ),
            (
                "COMMITFAIL",
                "Offset commit (manual) failed for 3/3 partition(s) in join-state wait-join: Broker: Specified group generation id is not valid",
            ),
            ("COMMIT", "OffsetCommit failed: Broker: REBALANCE_IN_PROGRESS"),
        ];
        for (fac, msg) in expected {
            assert_eq!(classify_rdkafka_log(RDKafkaLogLevel::Warning, fac, msg), RdLog::CommitDuringRebalance, "{msg}");
        }
        let kept = [
            (
                RDKafkaLogLevel::Warning,
                "COMMITFAIL",
                "Offset commit failed: Broker: Not coordinator",
                tracing::Level::WARN,
            ),
            (RDKafkaLogLevel::Error, "FAIL", "127.0.0.1:9092/bootstrap: Connect failed", tracing::Level::ERROR),
            (RDKafkaLogLevel::Critical, "FAIL", "x", tracing::Level::ERROR),
            (RDKafkaLogLevel::Notice, "CGRPOP", "Group rebalance in progress", tracing::Level::INFO),
            (RDKafkaLogLevel::Info, "X", "y", tracing::Level::INFO),
            (RDKafkaLogLevel::Debug, "X", "y", tracing::Level::DEBUG),
        ];
        for (level, fac, msg, want) in kept {
            assert_eq!(classify_rdkafka_log(level, fac, msg), RdLog::Keep(want), "{fac} {msg}");
        }
    }

    #[test]
    fn output_retries_back_off_to_a_cap_and_reset_on_success() {
        let mut r = OutputRetry::default();
        assert_eq!(r.recovered(), None);
        let waits: Vec<u64> = (0..7).map(|_| r.failed().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert!(r.recovered().is_some());
        assert_eq!(r.recovered(), None);
        assert_eq!(r.failed(), OutputRetry::FIRST);
    }
}
