//! The users' reference (`docs/reference.md`) and the event schema
//! (`docs/event.schema.json`) against the code: every rejection reason, table, column
//! (with its Parquet type), metric (with its type and labels), config key, subcommand and
//! flag the code has must be in the reference, and the schema must agree with the
//! decoder's verdicts on the public samples.

#![allow(clippy::unwrap_used)]

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};

use omnimeter_metrics::{Metrics, MetricsSettings, PartitionHealth};
use serde_json::{Value, json};
use util::{KillOnDrop, free_port, http_get, omnimeter, python_check, repo, wait_for};

/// The Parquet type the reference names for a column declared in
/// `crates/parquet/src/schema.rs` (for tables no file-mode run writes).
fn parquet_type(arrow: &str) -> &'static str {
    match arrow {
        "Utf8" => "STRING",
        "Binary" => "BINARY",
        "Int32" => "INT32",
        "Int64" => "INT64",
        "Float64" => "DOUBLE",
        "Boolean" => "BOOLEAN",
        "ts_type()" => "TIMESTAMP(MILLIS, UTC)",
        other => panic!("unknown Arrow type {other} in schema.rs"),
    }
}

/// `(column, Parquet type)` of one table's builder in schema.rs (`fn gaps(` …).
fn declared_columns(table: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("crates/parquet/src/schema.rs")).unwrap();
    let start = text.find(&format!("fn {table}(")).unwrap_or_else(|| panic!("no fn {table} in schema.rs"));
    let body = &text[start..];
    let body = &body[..body.find("\n}\n").unwrap()];
    let mut out = Vec::new();
    for line in body.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field(\"").or_else(|| line.strip_prefix("Field::new(\"")) else {
            continue;
        };
        let (name, rest) = rest.split_once('"').unwrap();
        let ty = rest.trim_start_matches(',').trim().trim_end_matches(',');
        let ty = ty.strip_suffix(')').unwrap().rsplit_once(',').unwrap().0.trim();
        out.push((name.to_owned(), parquet_type(ty).to_owned()));
    }
    assert!(!out.is_empty(), "no columns found for {table}");
    out
}

/// `(section.key)` of every config key.
fn config_keys() -> Vec<String> {
    let keys: Vec<String> = omnimeter_config::env::key_names().collect();
    assert!(keys.len() > 20, "too few config keys: {keys:?}");
    keys
}

/// Metric name → (type, label names) from a Prometheus text exposition.
fn metric_families(text: &str, out: &mut BTreeMap<String, (String, BTreeSet<String>)>) {
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap();
            out.entry(name.to_owned()).or_insert_with(|| (ty.to_owned(), BTreeSet::new()));
        }
    }
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name_end = line.find(['{', ' ']).unwrap();
        let sample = &line[..name_end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| sample.strip_suffix(s))
            .find(|f| out.get(*f).is_some_and(|(t, _)| t == "histogram"))
            .unwrap_or(sample);
        let Some((_, labels)) = out.get_mut(family) else { continue };
        if let Some(body) = line[name_end..].strip_prefix('{') {
            let body = &body[..body.rfind('}').unwrap()];
            for pair in body.split("\",") {
                let label = pair.split_once('=').unwrap().0.trim_start_matches(',');
                if label != "le" && !label.is_empty() {
                    labels.insert(label.to_owned());
                }
            }
        }
    }
}

/// Metrics only a Kafka worker feeds (lag, offsets, lost offsets), set on a registry of its own.
fn kafka_only_metrics() -> String {
    let m = Metrics::new(MetricsSettings {
        label_limit: 64,
        window_ms: 60_000,
        gap_ms: 1_800_000,
        thread_gap_ms: 86_400_000,
    });
    m.set_partitions(
        "t",
        &[PartitionHealth {
            partition: 0,
            lag: Some(1),
            committed: Some(1),
            watermark_ms: Some(0),
            checkpoint_age_seconds: Some(1.0),
        }],
    );
    m.record_lost_offsets("t", 0, 1);
    m.record_sink_error();
    m.encode()
}

/// Subcommands of `omnimeter --help`, and the long flags of each one's `--help`.
fn cli() -> BTreeMap<String, Vec<String>> {
    fn help(args: &[&str]) -> String {
        let out = omnimeter(args);
        assert!(out.status.success(), "omnimeter {args:?} failed");
        String::from_utf8(out.stdout).unwrap()
    }
    let top = help(&["--help"]);
    let commands: Vec<String> = top
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 5, "subcommands: {commands:?}");
    commands
        .into_iter()
        .map(|c| {
            let flags = help(&[&c, "--help"])
                .lines()
                .filter_map(|l| {
                    let l = l.trim_start();
                    let l = if l.len() > 4 && l.as_bytes()[0] == b'-' && &l[2..4] == ", " { &l[4..] } else { l };
                    let name: String =
                        l.strip_prefix("--")?.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
                    Some(format!("--{name}"))
                })
                .filter(|f| f != "--help" && f != "--version")
                .collect();
            (c, flags)
        })
        .collect()
}

#[test]
fn the_reference_names_everything_the_code_has() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    // File mode over the identity sample: its tables give every written column, its /metrics every
    // metric a file-mode run moves.
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_omnimeter"))
        .args(["run", "--input", "tests/data/public-identity.ndjson", "--metrics-addr", &addr, "--linger", "60s"])
        .arg("--output")
        .arg(&out_dir)
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _child = KillOnDrop(child);
    wait_for(60, "file mode to finish", || {
        http_get(&addr, "/readyz").filter(|(code, body)| *code == 503 && body.contains("input finished"))
    });
    let (code, exposition) = http_get(&addr, "/metrics").unwrap();
    assert_eq!(code, 200);

    let mut metrics = BTreeMap::new();
    metric_families(&exposition, &mut metrics);
    metric_families(&kafka_only_metrics(), &mut metrics);
    let metrics: BTreeMap<String, Value> =
        metrics.into_iter().map(|(name, (ty, labels))| (name, json!({"type": ty, "labels": labels}))).collect();

    let mut tables: Vec<String> = omnimeter_engine::TABLES.iter().map(|t| (*t).to_owned()).collect();
    tables.push("gaps".to_owned());
    let items = json!({
        "rejection reasons": omnimeter_engine::RejectReason::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "tables": tables,
        "declared columns": { "gaps": declared_columns("gaps") },
        "metrics": metrics,
        "config keys": config_keys(),
        "cli": cli(),
    });
    let items_path = tmp.path().join("items.json");
    std::fs::write(&items_path, serde_json::to_string_pretty(&items).unwrap()).unwrap();
    python_check(&[
        "tests/tools/check_reference.py",
        "docs/reference.md",
        items_path.to_str().unwrap(),
        out_dir.to_str().unwrap(),
    ]);
}

#[test]
fn the_event_schema_agrees_with_the_decoder_on_the_public_samples() {
    python_check(&[
        "tests/tools/check_schema.py",
        "docs/event.schema.json",
        "tests/data/public-sample.ndjson",
        "tests/data/public-late.ndjson",
        "tests/data/public-identity.ndjson",
    ]);
}
