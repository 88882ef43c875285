//! The newcomer's path: `generate` (stdout and Kafka), `demo` end to end (in-process
//! cluster, two workers, metrics, report), read back with DuckDB.

#![allow(clippy::unwrap_used)]

mod util;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::kafka::{Broker, consume_all};
use util::{http_get, metric_sum, omnimeter, python_check, repo};

#[test]
fn generate_is_seeded_reproducible_and_valid() {
    let args = ["generate", "--customers", "300", "--days", "2", "--seed", "5", "--duplicate-rate", "0.02"];
    let a = omnimeter(&args);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(a.stdout, omnimeter(&args).stdout, "same seed, same bytes");
    let other = omnimeter(&["generate", "--customers", "300", "--days", "2", "--seed", "6"]);
    assert_ne!(a.stdout, other.stdout);
    let lines = a.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
    assert!(lines > 3_000, "{lines} lines");

    // Every line is a valid event: file mode rejects none and sees the duplicates.
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("gen.ndjson");
    std::fs::write(&input, &a.stdout).unwrap();
    let out =
        omnimeter(&["run", "--input", input.to_str().unwrap(), "--output", tmp.path().join("o").to_str().unwrap()]);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(summary.contains("rejected 0 (none)") && summary.contains("late 0,"), "{summary}");
    assert!(!summary.contains("duplicates 0,"), "{summary}");

    // Stories carry the business cases: every channel of the SPEC's examples, threads, purchases.
    let text = String::from_utf8_lossy(&a.stdout);
    for needle in [
        "\"channel\":\"web\"",
        "\"channel\":\"phone\"",
        "\"channel\":\"app\"",
        "\"channel\":\"store\"",
        "\"channel\":\"whatsapp\"",
        "\"channel\":\"chat\"",
        "\"channel\":\"email\"",
        "\"journey_id\":",
        "\"type\":\"conversion\"",
        "\"type\":\"abandon\"",
        "\"type\":\"error\"",
    ] {
        assert!(text.contains(needle), "generated traffic has {needle}");
    }

    let bad = omnimeter(&["generate", "--bad-rate", "2"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--bad-rate 2: expected a share from 0 to 1"));
}

#[test]
fn generate_produces_to_kafka_the_same_events_it_prints() {
    let broker = Broker::start();
    let args = ["generate", "--customers", "50", "--seed", "9"];
    let printed = omnimeter(&args).stdout;
    let out = omnimeter(&[&args[..], &["--brokers", &broker.addr(), "--topic", "gen", "--partitions", "1"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: Vec<Vec<u8>> = consume_all(&broker, "gen").into_iter().map(|(_, p)| p).collect();
    let want: Vec<Vec<u8>> = printed.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "same events, same order in one partition");
}

#[test]
fn demo_runs_by_itself_serves_metrics_and_leaves_tables_duckdb_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_omnimeter"))
        .args(["demo", "--duration", "20s", "--rate", "5000", "--metrics-addr", "127.0.0.1:0", "--dir"])
        .arg(&dir)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    let url = first.split("metrics http://").nth(1).unwrap_or_else(|| panic!("metrics URL in {first:?}")).trim();
    let addr = url.trim_end_matches("/metrics").to_owned();
    // While it streams, /metrics counts events.
    let mut counted = 0.0;
    let deadline = Instant::now() + Duration::from_secs(15);
    while counted == 0.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        counted = http_get(&addr, "/metrics").map_or(0.0, |(_, m)| metric_sum(&m, "omnimeter_input_events_total"));
    }
    assert!(counted > 0.0, "events counted while the demo streams");
    let mut log = String::new();
    for line in stderr.lines() {
        log.push_str(&line.unwrap());
        log.push('\n');
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{log}\n{stdout}");
    assert!(started.elapsed() < Duration::from_secs(150), "ends by itself");
    assert!(log.contains("processed") && log.contains("top friction"), "live progress:\n{log}");
    assert!(stdout.contains("report:") && stdout.contains("import duckdb"), "{stdout}");
    assert!(dir.join("report.html").exists());
    // The printed DuckDB one-liner works as printed.
    let query = stdout.lines().find_map(|l| l.strip_prefix("query:")).unwrap().trim();
    let ran = Command::new("sh").args(["-c", query]).output().unwrap();
    assert!(ran.status.success(), "{query}\n{}", String::from_utf8_lossy(&ran.stderr));
    // Every journey closed at the end lands in Parquet once: DuckDB's count equals the summary's.
    let journeys: u64 = stdout
        .split(" journeys,")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .map(|s| s.replace(',', "").parse().unwrap())
        .unwrap();
    assert!(journeys > 100, "{stdout}");
    python_check(&[
        "-c",
        &format!(
            "import duckdb,sys; n=duckdb.sql(\"SELECT count(*) FROM read_parquet('{}/journeys/**/*.parquet', hive_partitioning=true)\").fetchall()[0][0]; sys.exit(0 if n=={journeys} else 'duckdb %d != {journeys}' % n)",
            dir.display()
        ),
    ]);

    // A second run into the same folder replaces the first demo's output.
    let again =
        omnimeter(&["demo", "--duration", "2s", "--metrics-addr", "127.0.0.1:0", "--dir", dir.to_str().unwrap()]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    // But a folder the demo did not make is left alone.
    let foreign = tmp.path().join("mine");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "keep").unwrap();
    let refused = omnimeter(&["demo", "--duration", "1s", "--dir", foreign.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("was not made by omnimeter demo"));
    assert!(foreign.join("notes.txt").exists());
}

/// The demo on a busy machine (two CPU-bound processes beside it, on two cores): it
/// reads every event it sent — its producer never runs further ahead of the workers
/// than the in-process cluster keeps, and the workers stop only at the offsets the
/// producer got acknowledged — and its files stay few (cuts by event hour).
#[test]
fn a_demo_on_a_busy_machine_reads_every_event_it_sent() {
    let _busy: Vec<util::KillOnDrop> = (0..2)
        .map(|_| util::KillOnDrop(Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap()))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out =
        omnimeter(&["demo", "--duration", "20s", "--metrics-addr", "127.0.0.1:0", "--dir", dir.to_str().unwrap()]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}\n{stdout}");
    let summary = stdout.lines().next().unwrap_or_default();
    let count = |after: &str, before: &str| -> u64 {
        let s = summary.split(after).nth(1).and_then(|s| s.split(before).next()).unwrap_or_default();
        s.trim().replace(',', "").parse().unwrap_or_else(|_| panic!("{after:?} in {summary:?}"))
    };
    let (sent, read) = (count("omnimeter demo: ", " events sent"), count("events sent = ", " read"));
    assert_eq!(sent, read, "{summary}");
    assert!(sent > 100_000, "traffic flowed: {summary}");
    // Lag is sent minus processed: non-zero while processing trails sending, 0 at the end.
    let progress: Vec<(u64, u64, u64)> = stderr.lines().filter_map(progress_figures).collect();
    assert!(progress.len() >= 5, "progress lines:\n{stderr}");
    for &(sent, processed, lag) in &progress {
        assert_eq!(lag, sent.saturating_sub(processed), "lag is sent minus processed:\n{stderr}");
    }
    assert!(progress.iter().any(|&(s, p, lag)| p < s && lag > 0), "a line shows the lag:\n{stderr}");
    assert_eq!(progress.last().map(|&(s, p, lag)| (s, p, lag)), Some((sent, sent, 0)), "last line:\n{stderr}");
    let files = util::parquet_files(&dir).len();
    eprintln!("busy machine: {summary}; {files} Parquet files");
    assert!(files <= 600, "{files} Parquet files for a 20 s demo");
}

/// (sent, processed, lag) of a progress line such as
/// `omnimeter demo   4s  sent    80,000  processed    61,000 ( 30,495/s)  lag  19,000  journeys closed …`.
fn progress_figures(line: &str) -> Option<(u64, u64, u64)> {
    let rest = line.strip_prefix("omnimeter demo ")?;
    let after = |label: &str| -> Option<u64> {
        let s = rest.split(label).nth(1)?.split_whitespace().next()?;
        s.replace(',', "").parse().ok()
    };
    Some((after(" sent ")?, after(" processed ")?, after(" lag ")?))
}
