//! [`resolve`]: the `omnimeter resolve` worker (SPEC §6). A consumer-group member
//! that runs one [`PartitionResolver`] per assigned raw partition, publishes links and
//! its partitions' progress on the identity log (one partition, read in full by every
//! resolver), and writes resolved events, rejects, identity rows and watermark
//! markers to the resolved topic that `run` workers read. docs/identity.md has the why.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use omnimeter_engine::identity::IdentityBook;
use omnimeter_engine::resolve::{FORWARDED_HEADER, LogEntry, Outgoing, Progress};
use omnimeter_engine::{IdentityCounts, PartitionResolver};
use omnimeter_metrics::Metrics;
use omnimeter_parquet::Store;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{Offset, TopicPartitionList};

use crate::checkpoint_store::{Checkpoint, CheckpointStore};
use crate::partitions::lock;
use crate::worker::{Error, Result};

/// Everything a resolver needs, already validated by the config layer.
#[derive(Debug, Clone)]
pub struct ResolveOptions {
    pub brokers: String,
    /// The raw topic (events keyed by customer, or by their smallest identity).
    pub topic: String,
    /// The topic `run` workers read.
    pub output_topic: String,
    /// One partition, never compacted away: every link and every partition's progress.
    pub log_topic: String,
    pub group: String,
    pub properties: Vec<(String, String)>,
    pub session_timeout: Duration,
    pub fetch_max_wait: Duration,
    pub commit_interval: Duration,
    /// A raw partition caught up for this long stops holding the others back.
    pub idle_timeout: Duration,
    pub allowed_lateness: i64,
    pub identify_wait: i64,
    /// Where the checkpoints go (`_checkpoints/resolve.<topic>/`).
    pub store: Store,
    /// Read every partition to its end, release everything, exit (tests, backfills).
    pub until_end: bool,
    pub metrics: Arc<Metrics>,
}

/// What a resolver did before it returned.
#[derive(Debug, Clone, Default)]
pub struct ResolveReport {
    pub inputs: u64,
    pub counts: IdentityCounts,
    pub reached_end: bool,
}

/// Deliveries refused by the broker: the resolver stops rather than checkpoint past them.
#[derive(Default)]
struct DeliveryErrors(AtomicU64);

struct Deliveries(Arc<DeliveryErrors>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            tracing::error!(error = %e, "resolved message not delivered: stopping before the next checkpoint");
            self.0.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One raw partition this resolver holds.
struct Held {
    resolver: PartitionResolver,
    /// First offset not pushed yet; messages below it (re-read after a seek) are skipped.
    next_offset: i64,
    /// A batch start at or before `next_offset` (see [`Checkpoint::resume_offset`]).
    resume_offset: i64,
    eof_since: Option<Instant>,
}

struct State {
    opts: ResolveOptions,
    store: CheckpointStore,
    producer: BaseProducer<Deliveries>,
    errors: Arc<DeliveryErrors>,
    held: BTreeMap<i32, Held>,
    /// Raw and resolved partition counts.
    sources: i32,
    outputs: i32,
    fatal: Option<Error>,
    /// Counts of partitions let go, for the report.
    released_counts: IdentityCounts,
    released_inputs: u64,
}

fn add(a: &mut IdentityCounts, b: IdentityCounts) {
    a.links += b.links;
    a.conflicts += b.conflicts;
    a.resolved += b.resolved;
    a.unresolved += b.unresolved;
}

impl State {
    fn send(&self, topic: &str, partition: i32, key: Option<&[u8]>, header: Option<&str>, value: &[u8]) -> Result<()> {
        let headers = header.map(|h| OwnedHeaders::new().insert(Header { key: FORWARDED_HEADER, value: Some(h) }));
        let mut record = BaseRecord::to(topic).partition(partition).payload(value);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(h) = headers {
            record = record.headers(h);
        }
        let mut record = Some(record);
        while let Some(r) = record.take() {
            match self.producer.send(r) {
                Ok(()) => {}
                Err((e, r)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    self.producer.poll(Duration::from_millis(10));
                    record = Some(r);
                }
                Err((e, _)) => return Err(Error::Kafka(e)),
            }
        }
        Ok(())
    }

    fn send_out(&self, m: &Outgoing) -> Result<()> {
        let key = m.key.as_ref().map(|k| k.as_bytes());
        self.send(&self.opts.output_topic, m.partition, key, Some(&m.header.to_header()), &m.value)
    }

    fn send_log(&self, entry: &LogEntry) -> Result<()> {
        let value = serde_json::to_vec(entry).unwrap_or_default();
        self.send(&self.opts.log_topic, 0, None, None, &value)
    }

    fn assign(&mut self, partition: i32) -> Result<Offset> {
        let settings = (self.outputs, self.opts.allowed_lateness, self.opts.identify_wait);
        if let Some(cp) = self.store.load(partition).map_err(Error::Checkpoint)? {
            match postcard::from_bytes::<PartitionResolver>(&cp.engine) {
                Ok(resolver) if resolver.settings() == settings && resolver.partition() == partition => {
                    tracing::info!(
                        partition,
                        next_offset = cp.next_offset,
                        held = resolver.held(),
                        "resuming raw partition"
                    );
                    let held = Held {
                        resolver,
                        next_offset: cp.next_offset,
                        resume_offset: cp.resume_offset,
                        eof_since: None,
                    };
                    self.held.insert(partition, held);
                    return Ok(Offset::Offset(cp.resume_offset));
                }
                Ok(r) => {
                    return Err(Error::Checkpoint(std::io::Error::other(format!(
                        "raw partition {partition}: checkpoint made with (output partitions, allowed_lateness, identify_wait) = {:?}, now {settings:?}: keep them, or delete _checkpoints/resolve.{}/ and the resolved topic to start over",
                        r.settings(),
                        self.opts.topic
                    ))));
                }
                Err(e) => {
                    return Err(Error::Checkpoint(std::io::Error::other(format!("raw partition {partition}: {e}"))));
                }
            }
        }
        tracing::info!(partition, "no checkpoint: resolving raw partition from the start of its log");
        let resolver =
            PartitionResolver::new(partition, self.outputs, self.opts.allowed_lateness, self.opts.identify_wait);
        self.held.insert(partition, Held { resolver, next_offset: 0, resume_offset: 0, eof_since: None });
        Ok(Offset::Beginning)
    }

    /// Says on the log that these partitions are not idle any more (they are being let go
    /// or stopped): nobody may count them as +∞ until their next owner reports.
    fn unidle(&self, partitions: &[i32]) -> Result<()> {
        for p in partitions {
            if let Some(h) = self.held.get(p) {
                let pr = Progress { partition: *p, watermark: h.resolver.watermark(), idle: false };
                self.send_log(&LogEntry::Progress(pr))?;
            }
        }
        Ok(())
    }

    /// Makes everything sent so far durable, then saves each held partition's state.
    fn checkpoint_all(&mut self) -> Result<()> {
        self.producer.flush(Duration::from_secs(30)).map_err(Error::Kafka)?;
        if self.errors.0.load(Ordering::Relaxed) > 0 {
            return Err(Error::Kafka(KafkaError::MessageProduction(RDKafkaErrorCode::Fail)));
        }
        for (&p, h) in &self.held {
            let engine = postcard::to_allocvec(&h.resolver)
                .map_err(|e| Error::Checkpoint(std::io::Error::other(e.to_string())))?;
            let cp = Checkpoint {
                next_offset: h.next_offset,
                resume_offset: h.resume_offset.min(h.next_offset),
                closed: false,
                cut_settings: None,
                engine,
            };
            self.store.save(p, &cp).map_err(Error::Checkpoint)?;
        }
        Ok(())
    }

    fn commit(&self, consumer: &BaseConsumer<Rebalance>, mode: CommitMode) {
        let mut tpl = TopicPartitionList::new();
        for (&p, h) in &self.held {
            if h.next_offset > 0 {
                let _ = tpl.add_partition_offset(&self.opts.topic, p, Offset::Offset(h.next_offset));
            }
        }
        if tpl.count() > 0
            && let Err(e) = consumer.commit(&tpl, mode)
        {
            tracing::debug!(error = %e, "commit failed (the checkpoint decides where a new owner resumes)");
        }
    }

    fn let_go(&mut self, partition: i32) {
        if let Some(h) = self.held.remove(&partition) {
            add(&mut self.released_counts, h.resolver.counts());
            self.released_inputs += h.resolver.inputs();
        }
    }
}

struct Rebalance {
    state: Arc<Mutex<State>>,
}

impl ClientContext for Rebalance {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::PartitionEOF)) {
            tracing::warn!(error = %error, reason, "kafka client (retrying)");
        }
    }
}

impl ConsumerContext for Rebalance {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let mut s = lock(&self.state);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let wanted: Vec<(String, i32)> =
                    tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
                for (topic, p) in wanted {
                    match s.assign(p) {
                        Ok(offset) => {
                            if let Err(e) = tpl.set_partition_offset(&topic, p, offset) {
                                s.fatal.get_or_insert(Error::Kafka(e));
                            }
                        }
                        Err(e) => {
                            s.fatal.get_or_insert(e);
                        }
                    }
                }
                tracing::info!(partitions = ?s.held.keys().collect::<Vec<_>>(), "raw partitions assigned");
                if let Err(e) = consumer.assign(tpl) {
                    s.fatal.get_or_insert(Error::Kafka(e));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                let lost = consumer.assignment_lost();
                tracing::info!(partitions = ?revoked, lost, "raw partitions revoked");
                if !lost {
                    // Hand over cleanly: what was sent is durable and the state saved.
                    // A finite input's partitions stay idle: they have nothing more to say.
                    let unidle = if s.opts.until_end { Ok(()) } else { s.unidle(&revoked) };
                    if let Err(e) = unidle.and_then(|()| s.checkpoint_all()) {
                        tracing::error!(error = %e, "checkpoint on revoke failed: the new owner replays from the last one");
                    }
                    s.commit(consumer, CommitMode::Sync);
                }
                for p in revoked {
                    s.let_go(p);
                }
                let _ = consumer.unassign();
            }
            other => {
                tracing::error!(error = ?other, "rebalance error");
                let held: Vec<i32> = s.held.keys().copied().collect();
                for p in held {
                    s.let_go(p);
                }
                let _ = consumer.unassign();
            }
        }
    }
}

fn partitions_of(consumer: &BaseConsumer<impl ConsumerContext>, topic: &str) -> Result<i32> {
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).map_err(Error::Kafka)?;
    let n = md.topics().iter().find(|t| t.name() == topic).map_or(0, |t| t.partitions().len() as i32);
    if n == 0 {
        return Err(Error::Kafka(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition)));
    }
    Ok(n)
}

/// Runs a resolver until `stop` is set, or with `until_end` until every raw partition
/// was read to its end and everything released. Blocking: call it from its own thread.
pub fn resolve(opts: &ResolveOptions, stop: &AtomicBool) -> Result<ResolveReport> {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &opts.brokers).set_log_level(RDKafkaLogLevel::Warning);
    for (k, v) in &opts.properties {
        client.set(k, v);
    }
    let errors = Arc::new(DeliveryErrors::default());
    let producer: BaseProducer<Deliveries> = client
        .clone()
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create_with_context(Deliveries(Arc::clone(&errors)))
        .map_err(Error::Kafka)?;
    let log: BaseConsumer = client
        .clone()
        .set("group.id", format!("{}-log-reader", opts.group))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", opts.session_timeout.as_millis().to_string())
        .set("fetch.wait.max.ms", opts.fetch_max_wait.as_millis().to_string())
        .create()
        .map_err(Error::Kafka)?;
    let sources = partitions_of(&log, &opts.topic)?;
    let outputs = partitions_of(&log, &opts.output_topic)?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&opts.log_topic, 0, Offset::Beginning).map_err(Error::Kafka)?;
    log.assign(&tpl).map_err(Error::Kafka)?;

    let state = Arc::new(Mutex::new(State {
        opts: opts.clone(),
        store: CheckpointStore::new(opts.store.clone(), &format!("resolve.{}", opts.topic)),
        producer,
        errors,
        held: BTreeMap::new(),
        sources,
        outputs,
        fatal: None,
        released_counts: IdentityCounts::default(),
        released_inputs: 0,
    }));
    let consumer: BaseConsumer<Rebalance> = client
        .clone()
        .set("group.id", &opts.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .set("session.timeout.ms", opts.session_timeout.as_millis().to_string())
        .set("fetch.wait.max.ms", opts.fetch_max_wait.as_millis().to_string())
        .create_with_context(Rebalance { state: Arc::clone(&state) })
        .map_err(Error::Kafka)?;
    consumer.subscribe(&[&opts.topic]).map_err(Error::Kafka)?;
    tracing::info!(
        topic = %opts.topic, output = %opts.output_topic, log = %opts.log_topic, group = %opts.group,
        sources, outputs, "resolver started"
    );
    let result = resolve_loop(opts, stop, &consumer, &log, &state);
    consumer.unsubscribe();
    drop(consumer);
    let s = lock(&state);
    let mut counts = s.released_counts;
    let mut inputs = s.released_inputs;
    for h in s.held.values() {
        add(&mut counts, h.resolver.counts());
        inputs += h.resolver.inputs();
    }
    result.map(|reached_end| ResolveReport { inputs, counts, reached_end })
}

fn resolve_loop(
    opts: &ResolveOptions,
    stop: &AtomicBool,
    consumer: &BaseConsumer<Rebalance>,
    log: &BaseConsumer,
    state: &Mutex<State>,
) -> Result<bool> {
    let mut book = IdentityBook::default();
    let mut progress: BTreeMap<i32, Progress> = BTreeMap::new();
    let mut global = i64::MIN;
    let mut next_release = Instant::now();
    let mut next_checkpoint = Instant::now() + opts.commit_interval;
    let mut last_report = Instant::now();
    let mut reported = IdentityCounts::default();
    let mut out = Vec::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            tracing::info!("stopping: flushing what was sent and saving the held partitions");
            let mut s = lock(state);
            if !opts.until_end {
                let held: Vec<i32> = s.held.keys().copied().collect();
                s.unidle(&held)?;
            }
            s.checkpoint_all()?;
            s.commit(consumer, CommitMode::Sync);
            return Ok(false);
        }
        let polled = consumer.poll(Duration::from_millis(50));
        let mut s = lock(state);
        if let Some(e) = s.fatal.take() {
            return Err(e);
        }
        match polled {
            None => {}
            Some(Ok(m)) => {
                let p = m.partition();
                let mut link = None;
                let mut pass = None;
                if let Some(h) = s.held.get_mut(&p)
                    && m.offset() >= h.next_offset
                {
                    (link, pass) = h.resolver.push(m.payload().unwrap_or_default(), m.offset());
                    h.next_offset = m.offset() + 1;
                    h.eof_since = None;
                }
                if let Some(link) = link {
                    s.send_log(&LogEntry::Link(link))?;
                }
                if let Some(pass) = pass {
                    s.send_out(&pass)?;
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                if let Some(h) = s.held.get_mut(&p) {
                    h.eof_since.get_or_insert_with(Instant::now);
                    h.resume_offset = h.next_offset;
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, "kafka (retrying)"),
        }
        // The log: every resolver's links and progress, in the order they were written.
        while let Some(entry) = log.poll(Duration::ZERO) {
            match entry {
                Ok(m) => match serde_json::from_slice::<LogEntry>(m.payload().unwrap_or_default()) {
                    Ok(LogEntry::Link(l)) => book.add_link(l),
                    Ok(LogEntry::Progress(pr)) => {
                        let e = progress.entry(pr.partition).or_insert(pr);
                        e.idle = pr.idle;
                        e.watermark = e.watermark.max(pr.watermark);
                    }
                    Err(e) => tracing::warn!(error = %e, offset = m.offset(), "unreadable identity log entry skipped"),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "identity log (retrying)");
                    break;
                }
            }
        }
        if Instant::now() >= next_release {
            next_release = Instant::now() + Duration::from_millis(200);
            // Progress after the links: the log keeps the order, so a reader that sees
            // a partition's watermark has seen every link of it before that watermark.
            let mine: Vec<Progress> = s
                .held
                .iter()
                .map(|(&p, h)| Progress {
                    partition: p,
                    watermark: h.resolver.watermark(),
                    idle: h.eof_since.is_some_and(|t| opts.until_end || t.elapsed() >= opts.idle_timeout),
                })
                .collect();
            for pr in &mine {
                s.send_log(&LogEntry::Progress(*pr))?;
            }
            let bound = (0..s.sources)
                .map(|p| match progress.get(&p) {
                    Some(pr) if pr.idle => i64::MAX,
                    Some(pr) => pr.watermark.unwrap_or(i64::MIN),
                    None => i64::MIN,
                })
                .min()
                .unwrap_or(i64::MAX);
            global = global.max(bound);
            book.learn_below(global, 0, &mut Vec::new());
            let sources = s.sources;
            let idle: BTreeMap<i32, bool> = mine.iter().map(|pr| (pr.partition, pr.idle)).collect();
            let held: Vec<i32> = s.held.keys().copied().collect();
            for p in held {
                out.clear();
                if let Some(h) = s.held.get_mut(&p) {
                    h.resolver.release(global, idle.get(&p).copied().unwrap_or(false), &book, sources, &mut out);
                }
                for m in &out {
                    s.send_out(m)?;
                }
            }
            s.producer.poll(Duration::ZERO);
        }
        if Instant::now() >= next_checkpoint {
            s.checkpoint_all()?;
            s.commit(consumer, CommitMode::Async);
            next_checkpoint = Instant::now() + opts.commit_interval;
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            let mut now = s.released_counts;
            for h in s.held.values() {
                add(&mut now, h.resolver.counts());
            }
            let delta = IdentityCounts {
                links: now.links.saturating_sub(reported.links),
                conflicts: now.conflicts.saturating_sub(reported.conflicts),
                resolved: now.resolved.saturating_sub(reported.resolved),
                unresolved: now.unresolved.saturating_sub(reported.unresolved),
            };
            opts.metrics.record_identity(&delta);
            reported = now;
            let held_events: usize = s.held.values().map(|h| h.resolver.held()).sum();
            tracing::debug!(held_events, global, links = book.owned(), "resolver progress");
        }
        if opts.until_end {
            let wait = opts.identify_wait;
            let all_idle = (0..s.sources).all(|p| progress.get(&p).is_some_and(|pr| pr.idle));
            let done = !s.held.is_empty()
                && all_idle
                && global == i64::MAX
                && s.held.values().all(|h| {
                    h.eof_since.is_some() && h.resolver.held() == 0 && h.resolver.released_below() >= i64::MAX - wait
                });
            if done {
                tracing::info!(partitions = ?s.held.keys().collect::<Vec<_>>(), "every raw partition resolved to its end");
                s.checkpoint_all()?;
                s.commit(consumer, CommitMode::Sync);
                return Ok(true);
            }
        }
    }
}
