//! The Kafka worker against a real Kafka-protocol broker (`tansu`) on loopback:
//! every test compares all tables with file mode run on the same events, one
//! file-mode run per partition (each partition has its own engine and watermark).

#![allow(clippy::unwrap_used)]

mod util;

use std::time::Duration;

use util::kafka::{
    Broker, TOPIC, checkpoints, compare, file_mode_per_partition, generated, log_of, read_lines, sigterm, spawn_logged,
    until_end, wait_ok, worker,
};
use util::{python_check, repo};

#[test]
fn public_samples_through_six_partitions_and_two_workers_match_file_mode() {
    for sample in ["public-sample", "public-late"] {
        let broker = Broker::start();
        broker.create_topic(TOPIC, 6);
        let lines = read_lines(&repo().join(format!("tests/data/{sample}.ndjson")));
        let placed = broker.produce(TOPIC, &lines);
        assert!(
            placed.iter().map(|p| p.0).collect::<std::collections::BTreeSet<_>>().len() > 1,
            "messages spread over partitions"
        );
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("kafka-out");
        let a = worker(&broker, &out, &["--until-end"]).spawn().unwrap();
        let b = worker(&broker, &out, &["--until-end"]).spawn().unwrap();
        let a = wait_ok(a, "worker a");
        wait_ok(b, "worker b");
        let summary = String::from_utf8(a.stdout).unwrap();
        assert!(summary.contains("caught up"), "{summary}");
        compare(&out, &file_mode_per_partition(&lines, &placed, dir.path()));
        if sample == "public-sample" {
            // No late events in one stream means none per partition either: the expected CSVs hold as they are.
            let expected = repo().join("tests/data/public-sample.expected");
            python_check(&["tests/tools/check_tables.py", expected.to_str().unwrap(), out.to_str().unwrap()]);
        }
    }
}

#[test]
fn a_worker_killed_with_sigkill_mid_stream_loses_and_doubles_nothing() {
    let broker = Broker::start();
    broker.create_topic(TOPIC, 6);
    let lines = generated(2500, 11);
    let third = lines.len() / 3;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("kafka-out");
    let mut placed = broker.produce(TOPIC, &lines[..third]);

    let mut w = spawn_logged(&broker, &out, &dir.path().join("w1.log"), &[]);
    util::wait_until("a first checkpoint", Duration::from_secs(60), || checkpoints(&out) > 0);
    placed.extend(broker.produce(TOPIC, &lines[third..2 * third]));
    std::thread::sleep(Duration::from_millis(400));
    w.kill().unwrap(); // SIGKILL: no flush, no commit, possibly mid-write
    w.wait().unwrap();

    // The killed member keeps its partitions until its session times out; then the restart resumes them.
    let mut w = spawn_logged(&broker, &out, &dir.path().join("w2.log"), &[]);
    util::wait_until("the restart to resume from checkpoints", Duration::from_secs(60), || {
        log_of(&dir.path().join("w2.log")).contains("resuming partition from checkpoint")
    });
    placed.extend(broker.produce(TOPIC, &lines[2 * third..]));
    std::thread::sleep(Duration::from_millis(300));
    w.kill().unwrap();
    w.wait().unwrap();

    until_end(&broker, &out, &dir.path().join("final.log"));
    compare(&out, &file_mode_per_partition(&lines, &placed, dir.path()));
}

#[test]
fn workers_joining_and_leaving_one_three_one_keep_every_row_once() {
    let broker = Broker::start();
    broker.create_topic(TOPIC, 6);
    let lines = generated(2500, 12);
    let third = lines.len() / 3;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("kafka-out");
    let log = |n: &str| dir.path().join(format!("{n}.log"));

    let w1 = spawn_logged(&broker, &out, &log("w1"), &[]);
    let mut placed = broker.produce(TOPIC, &lines[..third]);
    // Generous waits: group joins and rebalances take much longer on a busy machine
    // (one run in five timed out at 60 s beside two CPU-bound processes).
    util::wait_until("w1 to checkpoint", Duration::from_secs(120), || checkpoints(&out) > 0);

    let w2 = spawn_logged(&broker, &out, &log("w2"), &[]);
    let w3 = spawn_logged(&broker, &out, &log("w3"), &[]);
    placed.extend(broker.produce(TOPIC, &lines[third..2 * third]));
    util::wait_until("the group to spread over three workers", Duration::from_secs(120), || {
        ["w2", "w3"].iter().all(|w| log_of(&log(w)).contains("resuming partition from checkpoint"))
    });
    std::thread::sleep(Duration::from_millis(500));
    sigterm(&w2);
    sigterm(&w3);
    let (o2, o3) = (w2.wait_with_output().unwrap(), w3.wait_with_output().unwrap());
    assert!(
        o2.status.success() && o3.status.success(),
        "graceful stops exit 0:\n{}\n{}",
        log_of(&log("w2")),
        log_of(&log("w3"))
    );
    assert!(log_of(&log("w2")).contains("stopping: publishing finished batches and committing"));

    placed.extend(broker.produce(TOPIC, &lines[2 * third..]));
    // Once in a clean-clone CI run (2026-12-04) this wait ran out, and never in runs
    // alone or beside CPU hogs: a recurrence shows what w1 last did.
    util::kafka::wait_showing("w1 to hold all six partitions again", Duration::from_secs(150), &[&log("w1")], || {
        log_of(&log("w1")).matches("partitions assigned partitions=[0, 1, 2, 3, 4, 5]").count() >= 2
    });
    std::thread::sleep(Duration::from_millis(500));
    sigterm(&w1);
    assert!(w1.wait_with_output().unwrap().status.success(), "{}", log_of(&log("w1")));

    until_end(&broker, &out, &dir.path().join("final.log"));
    compare(&out, &file_mode_per_partition(&lines, &placed, dir.path()));
}

#[test]
fn malformed_and_oversize_messages_are_dead_lettered_while_the_partition_keeps_flowing() {
    let broker = Broker::start();
    broker.create_topic(TOPIC, 3);
    broker.create_topic("dead-letters", 1);
    let mut lines = read_lines(&repo().join("tests/data/public-late.ndjson"));
    let big = format!(
        r#"{{"event_id":"big","ts":"2026-11-02T09:00:00Z","customer_id":"cust-0000001","channel":"web","type":"touch","attrs":{{"pad":"{}"}}}}"#,
        "x".repeat(70_000)
    );
    let poison: Vec<Vec<u8>> =
        vec![b"not json at all".to_vec(), vec![0xff, 0xfe, 0x00, 0x41], big.into_bytes(), b"[1,2,3]".to_vec()];
    for (i, p) in poison.into_iter().enumerate() {
        lines.insert(10 + i * 50, p);
    }
    let placed = broker.produce(TOPIC, &lines);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("kafka-out");
    let run = wait_ok(
        worker(&broker, &out, &["--until-end"])
            .env("OMNIMETER_KAFKA_DEAD_LETTER_TOPIC", "dead-letters")
            .spawn()
            .unwrap(),
        "worker",
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("caught up"));
    compare(&out, &file_mode_per_partition(&lines, &placed, dir.path()));
    python_check(&[
        "-c",
        &format!(
            "import duckdb\n\
             r = dict(duckdb.connect().execute(\"SELECT reason, count(*) FROM read_parquet('{}/rejected/**/*.parquet') GROUP BY 1\").fetchall())\n\
             assert r.get('too_large') == 1 and r.get('not_object') == 1 and r.get('invalid_json', 0) >= 3, r\n",
            out.display()
        ),
    ]);
    let dead = util::kafka::consume_all(&broker, "dead-letters");
    let rejected_total: usize = 10 + 5 + 4; // public-late: 10 malformed + 5 late (per-partition lateness may differ), + 4 poison
    assert!(dead.len() >= 14 && dead.len() <= rejected_total, "dead letters: {}", dead.len());
    assert!(dead.iter().any(|(reason, payload)| reason == "too_large" && payload.len() > 65_536));
    assert!(dead.iter().all(|(reason, _)| !reason.is_empty()), "every dead letter says why");
}

#[test]
fn a_worker_serves_lag_offsets_and_readiness_while_it_consumes() {
    let broker = Broker::start();
    broker.create_topic(TOPIC, 3);
    let lines = generated(200, 11);
    let placed = broker.produce(TOPIC, &lines);
    let mut ends = std::collections::BTreeMap::new();
    for (p, o) in &placed {
        let e = ends.entry(*p).or_insert(0i64);
        *e = (*e).max(o + 1);
    }
    assert_eq!(ends.len(), 3, "messages on every partition");
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", util::free_port());
    let child = worker(&broker, &dir.path().join("out"), &["--metrics-addr", &addr]).spawn().unwrap();
    let mut child = util::KillOnDrop(child);

    // Caught up: no lag left, everything committed, every event counted.
    let mut text = String::new();
    util::wait_until("the worker to catch up and commit", Duration::from_secs(60), || {
        let Some((200, t)) = util::http_get(&addr, "/metrics") else { return false };
        let committed: Vec<(String, f64)> = util::metric_samples(&t, "omnimeter_committed_offset");
        let lag = util::metric_samples(&t, "omnimeter_consumer_lag");
        let done = committed.len() == 3
            && committed.iter().all(|(labels, v)| {
                let p: i32 = labels.split("partition=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
                *v == ends[&p] as f64 && labels.contains("topic=\"events\"")
            })
            && lag.len() == 3
            && lag.iter().all(|(_, v)| *v == 0.0);
        text = t;
        done
    });
    assert_eq!(util::metric_sum(&text, "omnimeter_input_events_total"), lines.len() as f64);
    assert_eq!(util::metric_samples(&text, "omnimeter_watermark_seconds").len(), 3);
    assert_eq!(util::metric_samples(&text, "omnimeter_checkpoint_age_seconds").len(), 3);
    assert!(util::metric_sum(&text, "omnimeter_journeys_closed_total") > 0.0, "days of traffic close journeys");
    assert!(util::metric_sum(&text, "omnimeter_active_journeys") > 0.0, "the last ones stay open");
    assert!(util::metric_sum(&text, "omnimeter_rejected_total") > 0.0, "1% bad lines");
    assert!(util::metric_sum(&text, "omnimeter_parquet_rows_total") > 0.0);
    let (code, body) = util::http_get(&addr, "/readyz").unwrap();
    assert_eq!((code, body.as_str()), (200, "ready: 3 partitions of events, lag 0\n"));

    sigterm(&child.0);
    let status = child.0.wait().unwrap();
    assert!(status.success(), "graceful stop exits 0: {status}");
    assert!(util::http_get(&addr, "/healthz").is_none(), "the endpoint stops with the worker");
}

/// Offsets a checkpoint needs that the broker no longer has are never skipped
/// silently (SPEC §4): here the topic is deleted and recreated under the workers,
/// so each partition's log now ends before its checkpoint. The worker exits 3 with
/// one line naming topic, partition and offsets, and writes nothing more.
/// (Retention deleting the start of a log is `crates/kafka/tests/data_loss.rs`: tansu
/// 0.6 cannot delete records.)
#[test]
fn a_recreated_topic_stops_the_worker_with_exit_status_3_and_one_line() {
    let broker = Broker::start();
    broker.create_topic(TOPIC, 2);
    let lines = generated(300, 5);
    broker.produce(TOPIC, &lines);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("kafka-out");
    wait_ok(worker(&broker, &out, &["--until-end"]).spawn().unwrap(), "first worker");
    let files = util::parquet_files(&out);

    broker.delete_topic(TOPIC);
    broker.create_topic(TOPIC, 2);
    broker.produce(TOPIC, &lines[..20]);
    let run = worker(&broker, &out, &["--until-end"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(3), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("omnimeter: data loss: topic events partition ") && last.contains("recreated or truncated"),
        "{stderr}"
    );
    assert_eq!(util::parquet_files(&out), files, "nothing written past the loss");
}
