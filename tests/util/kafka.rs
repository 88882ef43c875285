//! A real Kafka-protocol broker for the tests: `tansu` on a free loopback port
//! with in-memory storage, one per test, plus a batching producer that reports
//! where each message landed.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

pub(crate) struct Broker {
    child: Child,
    pub(crate) port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// Starts a broker; panics with a clear message when `tansu` is not installed
    /// (`deploy/local/setup.sh --test` installs it).
    pub(crate) fn start() -> Broker {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("tansu.log")).unwrap();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new("tansu")
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("tansu (a Kafka-compatible broker) must be installed: run deploy/local/setup.sh --test");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "broker did not start listening on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker { child, port, _dir: dir }
    }

    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub(crate) fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new("tansu")
            .args([
                "topic",
                "create",
                name,
                "--broker",
                &format!("tcp://127.0.0.1:{}", self.port),
                "--partitions",
                &partitions.to_string(),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "topic create failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Produces `lines` in order, keyed by their `customer_id` when they have one,
    /// through a batching producer (linger 5 ms, as real producers run). Returns
    /// each line's (partition, offset).
    pub(crate) fn produce(&self, topic: &str, lines: &[Vec<u8>]) -> Vec<(i32, i64)> {
        let ctx = Deliveries(Arc::new(Mutex::new(vec![None; lines.len()])));
        let producer: BaseProducer<Deliveries> = ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .set("linger.ms", "5")
            .set("message.max.bytes", "2000000")
            .create_with_context(ctx.clone())
            .unwrap();
        for (i, line) in lines.iter().enumerate() {
            let key = customer_key(line);
            let mut record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(topic, i).payload(line.as_slice());
            if let Some(k) = key.as_deref() {
                record = record.key(k);
            }
            let mut pending = Some(record);
            while let Some(r) = pending.take() {
                if let Err((_, r)) = producer.send(r) {
                    producer.poll(Duration::from_millis(20));
                    pending = Some(r);
                }
            }
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(60)).unwrap();
        let got = ctx.0.lock().unwrap().clone();
        got.into_iter().enumerate().map(|(i, d)| d.unwrap_or_else(|| panic!("line {i} not delivered"))).collect()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn customer_key(line: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    v.get("customer_id")?.as_str().map(|s| s.as_bytes().to_vec())
}

type Placed = Arc<Mutex<Vec<Option<(i32, i64)>>>>;

#[derive(Clone)]
struct Deliveries(Placed);

impl rdkafka::ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, i: usize) {
        let m = result.as_ref().unwrap_or_else(|(e, _)| panic!("delivery failed: {e}"));
        self.0.lock().unwrap()[i] = Some((m.partition(), m.offset()));
    }
}

/// Splits `lines` into per-partition NDJSON files in offset order, the input a
/// file-mode run needs to reproduce exactly what each partition's engine saw.
pub(crate) fn partition_slices(
    lines: &[Vec<u8>],
    placed: &[(i32, i64)],
    dir: &std::path::Path,
) -> Vec<std::path::PathBuf> {
    let mut by_partition: std::collections::BTreeMap<i32, Vec<(i64, &[u8])>> = Default::default();
    for (line, &(p, o)) in lines.iter().zip(placed) {
        by_partition.entry(p).or_default().push((o, line));
    }
    by_partition
        .into_iter()
        .map(|(p, mut msgs)| {
            msgs.sort_by_key(|m| m.0);
            let path = dir.join(format!("partition-{p}.ndjson"));
            let mut text = Vec::new();
            for (_, m) in msgs {
                text.extend_from_slice(m);
                text.push(b'\n');
            }
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

/// Every message of `topic` with its `omnimeter-reason` header, read from the beginning to the end.
pub(crate) fn consume_all(broker: &Broker, topic: &str) -> Vec<(String, Vec<u8>)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Headers;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.addr())
        .set("group.id", "test-reader")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut eof = false;
    while !eof && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let reason = m
                    .headers()
                    .and_then(|h| {
                        h.iter()
                            .find(|h| h.key == "omnimeter-reason")
                            .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
                    })
                    .unwrap_or_default();
                got.push((reason, m.payload().unwrap_or_default().to_vec()));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eof = true,
            _ => {}
        }
    }
    got
}
