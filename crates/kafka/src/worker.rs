//! [`run`]: the consumer-group worker loop. A `BaseConsumer` is polled on the
//! calling (blocking) thread; librdkafka runs rebalance callbacks inside `poll`,
//! where [`RebalanceContext`] restores assigned partitions from their
//! checkpoints and makes revoked ones durable before they move.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use omnimeter_engine::{CheckpointError, EngineConfig, Stats};
use omnimeter_metrics::Metrics;
use omnimeter_parquet::ParquetSink;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Statistics, TopicPartitionList};

use crate::checkpoint_store::CheckpointStore;
use crate::dead_letter::DeadLetters;
use crate::partitions::{PartitionSet, lock};
use crate::status::WorkerStatus;

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
}

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
    pub output: PathBuf,
    pub flush_interval: Duration,
    pub engine: EngineConfig,
    /// Stop once every held partition reached the high watermark; close journeys first.
    pub until_end: bool,
    /// Where the partitions report what they fold and write.
    pub metrics: Arc<Metrics>,
    /// Once its owner sets it, the worker behaves as with `until_end` (the demo's
    /// wind-down: the producer stopped, so catch up, close journeys and exit).
    pub finish: Option<Arc<AtomicBool>>,
}

impl WorkerOptions {
    fn client_config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
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

impl ClientContext for RebalanceContext {
    /// End of partition is how `--until-end` knows it caught up, not an error;
    /// everything else librdkafka retries by itself, so it is a warning.
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        {
            return;
        }
        tracing::warn!(error = %error, reason, "kafka client");
    }

    /// librdkafka's periodic statistics carry each partition's high watermark as
    /// seen in fetch responses: the base of the lag metric.
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else { return };
        let mut st = lock(&self.status);
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
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(partitions = ?revoked, "partitions revoked: flushing, checkpointing, committing");
                for p in revoked {
                    set.revoke(p, consumer);
                }
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(error = %e, "unassign failed");
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance error");
                for p in set.held_partitions() {
                    set.revoke(p, consumer);
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
    let sink = ParquetSink::new(&opts.output)?;
    let store = CheckpointStore::new(opts.output.join("_checkpoints").join(&opts.topic)).map_err(Error::Checkpoint)?;
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
    let mut last_flush = Instant::now();
    let mut last_status = Instant::now();
    let mut last_warning: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            tracing::info!("stopping: flushing, checkpointing and committing every partition");
            lock(set).flush_all(consumer, CommitMode::Sync, false)?;
            return Ok(false);
        }
        let polled = consumer.poll(Duration::from_millis(100));
        let mut s = lock(set);
        if let Some(e) = s.fatal.take() {
            return Err(e);
        }
        match polled {
            None => {}
            Some(Ok(m)) => s.push(m.partition(), m.offset(), m.key(), m.payload().unwrap_or_default())?,
            Some(Err(KafkaError::PartitionEOF(p))) => s.eof(p),
            // librdkafka retries broker and network errors by itself; say so at most every 5 s.
            Some(Err(e)) if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) => {
                tracing::warn!(error = %e, "kafka (retrying)");
                last_warning = Some(Instant::now());
            }
            Some(Err(_)) => {}
        }
        if last_flush.elapsed() >= opts.flush_interval {
            // A failed flush keeps its rows and offsets: retried next interval, nothing committed.
            let _ = s.flush_all(consumer, CommitMode::Async, false);
            last_flush = Instant::now();
        }
        if last_status.elapsed() >= Duration::from_millis(500) {
            s.refresh_status();
            last_status = Instant::now();
        }
        let until_end = opts.until_end || opts.finish.as_ref().is_some_and(|f| f.load(Ordering::Relaxed));
        if until_end && s.all_caught_up() {
            tracing::info!(partitions = ?s.held_partitions(), "caught up: closing journeys and writing everything");
            s.flush_all(consumer, CommitMode::Sync, true)?;
            s.refresh_status();
            opts.metrics.finish_windows();
            return Ok(true);
        }
    }
}
