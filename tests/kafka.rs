//! The Kafka worker against a real Kafka-protocol broker (`tansu`) on loopback:
//! every test compares all tables with file mode run on the same events, one
//! file-mode run per partition (each partition has its own engine and watermark).

#![allow(clippy::unwrap_used)]

mod util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use util::kafka::{Broker, partition_slices};
use util::{python_check, repo};

const TOPIC: &str = "events";

/// A worker process; `extra` adds flags such as `--until-end`.
fn worker(broker: &Broker, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_omnimeter"));
    cmd.args(["run", "--brokers", &broker.addr(), "--topic", TOPIC, "--group", "omnimeter-test", "--output"])
        .arg(out)
        .args(extra)
        .env("OMNIMETER_OUTPUT_FLUSH_INTERVAL", "300ms")
        .env("OMNIMETER_KAFKA_SESSION_TIMEOUT", "6s")
        .env("OMNIMETER_KAFKA_DRAIN_TIMEOUT", "3s")
        .env("OMNIMETER_LOG", "info")
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn wait_ok(child: Child, what: &str) -> Output {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{what} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

fn read_lines(path: &Path) -> Vec<Vec<u8>> {
    std::fs::read(path).unwrap().split(|&b| b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)).map(<[u8]>::to_vec).collect()
}

/// File mode over each partition's messages, in offset order: the reference output.
fn file_mode_per_partition(lines: &[Vec<u8>], placed: &[(i32, i64)], dir: &Path) -> String {
    let slices = partition_slices(lines, placed, dir);
    let mut roots = Vec::new();
    for (i, slice) in slices.iter().enumerate() {
        let root = dir.join(format!("file-mode-{i}"));
        let out = Command::new(env!("CARGO_BIN_EXE_omnimeter"))
            .args(["run", "--input", slice.to_str().unwrap(), "--output", root.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        roots.push(root.display().to_string());
    }
    roots.join(",")
}

fn compare(kafka_out: &Path, reference: &str) {
    python_check(&["tests/tools/compare_outputs.py", kafka_out.to_str().unwrap(), reference]);
}

#[test]
fn public_samples_through_six_partitions_and_two_workers_match_file_mode() {
    for sample in ["public-sample", "public-late"] {
        let broker = Broker::start();
        broker.create_topic(TOPIC, 6);
        let lines = read_lines(&repo().join(format!("tests/data/{sample}.ndjson")));
        let placed = broker.produce(TOPIC, &lines);
        assert!(placed.iter().map(|p| p.0).collect::<std::collections::BTreeSet<_>>().len() > 1, "messages spread over partitions");
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
