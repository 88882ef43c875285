//! Optional dead-letter topic: every rejected or late message is also produced
//! there with its reason and source position in headers, so operators can
//! replay or inspect it with ordinary Kafka tools.

use std::time::Duration;

use omnimeter_engine::RejectReason;
use rdkafka::ClientConfig;
use rdkafka::error::KafkaResult;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

pub(crate) struct DeadLetters {
    producer: BaseProducer,
    topic: String,
    source_topic: String,
}

impl DeadLetters {
    pub(crate) fn new(base: &ClientConfig, topic: &str, source_topic: &str) -> KafkaResult<Self> {
        let mut cfg = base.clone();
        // Only producer-relevant settings carry over; consumer keys would be warned about.
        for key in [
            "group.id",
            "enable.auto.commit",
            "enable.auto.offset.store",
            "auto.offset.reset",
            "enable.partition.eof",
            "session.timeout.ms",
            "fetch.wait.max.ms",
        ] {
            cfg.remove(key);
        }
        cfg.set("enable.idempotence", "true");
        // librdkafka's default send queue may hold 1 GiB; bound it like the consumer's
        // 64 MiB pre-fetch queue. When full, `send` waits (backpressure on the partition).
        if cfg.get("queue.buffering.max.kbytes").is_none() {
            cfg.set("queue.buffering.max.kbytes", "65536");
        }
        Ok(DeadLetters { producer: cfg.create()?, topic: topic.to_owned(), source_topic: source_topic.to_owned() })
    }

    pub(crate) fn send(&self, partition: i32, offset: i64, key: Option<&[u8]>, payload: &[u8], reason: RejectReason) {
        let position = format!("{}/{partition}/{offset}", self.source_topic);
        let headers = OwnedHeaders::new()
            .insert(Header { key: "omnimeter-reason", value: Some(reason.as_str()) })
            .insert(Header { key: "omnimeter-source", value: Some(position.as_str()) });
        let mut record = BaseRecord::<[u8], [u8]>::to(&self.topic).payload(payload).headers(headers);
        if let Some(k) = key {
            record = record.key(k);
        }
        // A full local queue means the broker is slow: wait for room rather than drop.
        let mut record = Some(record);
        while let Some(r) = record.take() {
            if let Err((e, r)) = self.producer.send(r) {
                if matches!(e.rdkafka_error_code(), Some(rdkafka::types::RDKafkaErrorCode::QueueFull)) {
                    self.producer.poll(Duration::from_millis(50));
                    record = Some(r);
                } else {
                    tracing::warn!(error = %e, "dead-letter send failed");
                }
            }
        }
        self.producer.poll(Duration::ZERO);
    }

    /// Waits until every dead letter so far is acknowledged: called before offsets are committed.
    pub(crate) fn flush(&self, timeout: Duration) -> KafkaResult<()> {
        self.producer.flush(timeout)
    }
}
