//! A batching producer of raw events keyed by customer, for `omnimeter generate
//! --brokers` and the demo: the key keeps each customer's events in one partition,
//! in order, as SPEC §1 expects of real producers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

/// Counts deliveries the broker acknowledged or refused.
#[derive(Default)]
struct Deliveries {
    acked: AtomicU64,
    failed: AtomicU64,
    /// Per partition, the offset after the last acknowledged event: where a reader
    /// of everything sent must get to.
    ends: Mutex<BTreeMap<i32, i64>>,
}

struct Counting(Arc<Deliveries>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                use rdkafka::message::Message;
                let mut ends = self.0.ends.lock().unwrap_or_else(|e| e.into_inner());
                let end = ends.entry(m.partition()).or_insert(0);
                *end = (*end).max(m.offset() + 1);
                self.0.acked.fetch_add(1, Ordering::Relaxed)
            }
            Err((e, _)) => {
                tracing::warn!(error = %e, "event not delivered");
                self.0.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

pub struct EventProducer {
    producer: BaseProducer<Counting>,
    topic: String,
    deliveries: Arc<Deliveries>,
}

impl EventProducer {
    /// `properties` go to librdkafka verbatim (security settings).
    pub fn new(brokers: &str, topic: &str, properties: &[(String, String)]) -> KafkaResult<Self> {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", brokers).set("linger.ms", "5").set("enable.idempotence", "true");
        for (k, v) in properties {
            cfg.set(k, v);
        }
        let deliveries = Arc::new(Deliveries::default());
        let producer = cfg.create_with_context(Counting(Arc::clone(&deliveries)))?;
        Ok(EventProducer { producer, topic: topic.to_owned(), deliveries })
    }

    /// Queues one event; waits for room when the local queue is full (the broker is slow).
    pub fn send(&self, key: &[u8], payload: &[u8]) -> KafkaResult<()> {
        let mut record = Some(BaseRecord::to(&self.topic).key(key).payload(payload));
        while let Some(r) = record.take() {
            match self.producer.send(r) {
                Ok(()) => {}
                Err((e, r)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    self.producer.poll(Duration::from_millis(10));
                    record = Some(r);
                }
                Err((e, _)) => return Err(e),
            }
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    /// Waits until every queued event is acknowledged (or `timeout`).
    pub fn flush(&self, timeout: Duration) -> KafkaResult<()> {
        self.producer.flush(timeout)
    }

    pub fn acknowledged(&self) -> u64 {
        self.deliveries.acked.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.deliveries.failed.load(Ordering::Relaxed)
    }

    /// Per partition, the offset after the last acknowledged event.
    pub fn delivered_ends(&self) -> BTreeMap<i32, i64> {
        self.deliveries.ends.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Creates `topic` with `partitions` unless it exists.
pub async fn ensure_topic(brokers: &str, topic: &str, partitions: i32, timeout: Duration) -> KafkaResult<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let opts = AdminOptions::new().operation_timeout(Some(timeout)).request_timeout(Some(timeout));
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for r in admin.create_topics([&new], &opts).await? {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(KafkaError::AdminOp(code)),
        }
    }
    Ok(())
}
