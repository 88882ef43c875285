//! Offsets deleted before a worker read them (SPEC §4): librdkafka's in-process
//! cluster keeps at most 5 MiB per partition and deletes older data whether or not
//! anyone read it, as a real topic's retention does. A worker that checkpointed a
//! partition, then finds the offsets after its checkpoint gone, stops naming the
//! range (`on_data_loss = "stop"`) or goes on and says so everywhere (`"skip"`).

#![allow(clippy::unwrap_used)]

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omnimeter_engine::{DurationMs, EngineConfig};
use omnimeter_kafka::{Error, EventProducer, OnDataLoss, WorkerOptions, WorkerStatus};
use omnimeter_metrics::{Metrics, MetricsSettings};
use omnimeter_parquet::Output;
use rdkafka::mocking::MockCluster;

const TOPIC: &str = "events";

fn produce(brokers: &str, from: usize, count: usize) {
    let producer = EventProducer::new(brokers, TOPIC, &[]).unwrap();
    for i in from..from + count {
        // Padding makes the partition outgrow the cluster's 5 MiB quickly.
        let line = format!(
            r#"{{"event_id":"e{i}","ts":{},"customer_id":"c{}","channel":"web","type":"touch","attrs":{{"pad":"{}"}}}}"#,
            1_793_606_400_000i64 + i as i64 * 1_000,
            i % 50,
            "x".repeat(120)
        );
        producer.send(format!("c{}", i % 50).as_bytes(), line.as_bytes()).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(producer.failed(), 0);
}

fn options(brokers: &str, out: &std::path::Path, on_data_loss: OnDataLoss) -> WorkerOptions {
    let engine = EngineConfig::default();
    WorkerOptions {
        brokers: brokers.to_owned(),
        topic: TOPIC.to_owned(),
        group: "loss-test".to_owned(),
        properties: Vec::new(),
        dead_letter_topic: None,
        session_timeout: Duration::from_secs(6),
        drain_timeout: Duration::from_secs(3),
        fetch_max_wait: Duration::from_millis(100),
        output: Output::Local(out.to_path_buf()),
        commit_interval: Duration::from_millis(300),
        file_period: DurationMs(3_600_000),
        file_rows: 100_000,
        on_data_loss,
        engine,
        until_end: true,
        metrics: Arc::new(Metrics::new(MetricsSettings {
            label_limit: 64,
            window_ms: engine.window.0,
            gap_ms: engine.gap.0,
            thread_gap_ms: engine.thread_gap.0,
        })),
        finish: None,
    }
}

#[test]
fn deleted_offsets_stop_the_worker_or_are_skipped_loudly() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let stop = AtomicBool::new(false);

    // A first run reads 1,000 events and checkpoints the partition at their end.
    produce(&brokers, 0, 1_000);
    let first = omnimeter_kafka::run(&options(&brokers, &out, OnDataLoss::Stop), &stop, Arc::default()).unwrap();
    assert!(first.reached_end);
    assert_eq!(first.stats.inputs, 1_000);

    // Then far more than the cluster keeps arrives: the offsets after the checkpoint go.
    produce(&brokers, 1_000, 60_000);

    // Default: stop, naming topic, partition and the missing range; nothing is skipped.
    let err = omnimeter_kafka::run(&options(&brokers, &out, OnDataLoss::Stop), &stop, Arc::default()).unwrap_err();
    assert!(err.is_data_loss(), "{err}");
    let Error::DataLoss { topic, range } = &err else { panic!("{err}") };
    assert_eq!((topic.as_str(), range.partition, range.from), (TOPIC, 0, 1_000), "{err}");
    assert!(range.to > 1_000 && range.to < 61_000, "{err}");
    let line = err.to_string();
    assert!(!line.contains('\n') && line.contains("partition 0 offsets 1000..="), "{line}");

    // Skip: goes on after the gap, and says so in the metrics, the status and the gaps table.
    let opts = options(&brokers, &out, OnDataLoss::Skip);
    let status = Arc::new(Mutex::new(WorkerStatus::default()));
    let report = omnimeter_kafka::run(&opts, &stop, Arc::clone(&status)).unwrap();
    assert!(report.reached_end);
    let lost = (range.to - range.from + 1) as u64;
    assert_eq!(report.stats.inputs, 60_000 - lost, "read everything after the gap");
    let summary = status.lock().unwrap().lost_summary().unwrap();
    assert!(summary.contains(&format!("{lost} offsets of {TOPIC}")), "{summary}");
    let metrics = opts.metrics.encode();
    let sample = format!("omnimeter_lost_offsets_total{{partition=\"0\",topic=\"{TOPIC}\"}} {lost}");
    assert!(metrics.contains(&sample), "{sample} in\n{metrics}");
    let gaps: Vec<_> = walk(&out.join("gaps"));
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert!(gaps[0].ends_with("p00000-o00000000000000001000.parquet"), "{gaps:?}");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            found.extend(walk(&p));
        } else {
            found.push(p.display().to_string());
        }
    }
    found
}
