//! Metrics and the deploy kit against real parts: a Prometheus server (Debian's
//! `prometheus`) scraping omnimeter over the public samples (identity included), checked against the
//! expected tables through Prometheus' HTTP API; promtool over the shipped config,
//! rules and rule tests; the dashboard's PromQL through the same Prometheus.

#![allow(clippy::unwrap_used)]

mod util;

use std::io::Write;
use std::process::{Command, Stdio};

use util::{KillOnDrop, free_port, http_get, metric_sum, omnimeter, python_check, repo, wait_for};

fn spawn_file_mode(input: &str, out: &std::path::Path, addr: &str) -> KillOnDrop {
    let child = Command::new(env!("CARGO_BIN_EXE_omnimeter"))
        .args(["run", "--input", input, "--metrics-addr", addr, "--linger", "10m", "--output"])
        .arg(out)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    KillOnDrop(child)
}

#[test]
fn a_real_prometheus_scrapes_what_the_expected_tables_say() {
    for sample in ["public-sample", "public-late", "public-identity"] {
        scrape_and_check(sample);
    }
}

fn scrape_and_check(sample: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let input = format!("tests/data/{sample}.ndjson");
    let addr = format!("127.0.0.1:{}", free_port());
    let _omnimeter = spawn_file_mode(&input, &tmp.path().join("out"), &addr);
    // Finished (and lingering) once /readyz says the input is over.
    wait_for(60, "file mode to finish", || {
        http_get(&addr, "/readyz").filter(|(code, body)| *code == 503 && body.contains("input finished"))
    });

    let prom_port = free_port();
    let config = tmp.path().join("prometheus.yml");
    let rules = repo().join("deploy/prometheus/rules.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: omnimeter\n    static_configs:\n      - targets: [\"{addr}\"]\n",
            rules.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(tmp.path().join("prometheus.log")).unwrap();
    let prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", tmp.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("prometheus (Debian package) must be installed: run deploy/local/setup.sh --test");
    let _prometheus = KillOnDrop(prometheus);
    python_check(&[
        "tests/tools/check_prometheus.py",
        &format!("http://127.0.0.1:{prom_port}"),
        &input,
        &format!("tests/data/{sample}.expected"),
        "deploy/grafana/omnimeter.json",
    ]);
}

/// An expected table as rows of column → text.
fn csv_rows(path: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_path(repo().join(path)).unwrap();
    let headers = r.headers().unwrap().clone();
    r.records()
        .map(|rec| headers.iter().map(str::to_owned).zip(rec.unwrap().iter().map(str::to_owned)).collect())
        .collect()
}

#[test]
fn readiness_follows_the_input_and_metrics_count_as_it_goes() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = spawn_file_mode("-", &tmp.path().join("out"), &addr);
    let (code, body) = wait_for(30, "the metrics endpoint", || http_get(&addr, "/readyz"));
    assert_eq!((code, body.as_str()), (200, "ready: reading input\n"));
    assert_eq!(http_get(&addr, "/healthz").unwrap(), (200, "ok\n".to_owned()));
    let text = std::fs::read("tests/data/public-sample.ndjson").unwrap();
    let mut stdin = child.0.stdin.take().unwrap();
    stdin.write_all(&text).unwrap();
    stdin.flush().unwrap();
    let lines = text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count() as f64;
    // Counted while the input is still open (every 500 ms), not only at the end.
    wait_for(30, "input events to be counted", || {
        let (_, m) = http_get(&addr, "/metrics")?;
        (metric_sum(&m, "omnimeter_input_events_total") == lines).then_some(())
    });
    // Journeys that closed while the input is still open show at once, though no cut
    // has published them yet: those whose end + gap the journey stage's watermark has
    // reached (highest ts − allowed_lateness 5 s − identify_wait 30 m, SPEC §2 and §6).
    let journeys = csv_rows("tests/data/public-sample.expected/journeys.csv");
    let ts = |v: &str| omnimeter_engine::time::parse_rfc3339(v).unwrap();
    let last = journeys.iter().map(|j| ts(&j["end_ts"])).max().unwrap();
    let stage = last - 5_000 - 30 * 60_000;
    let closed: Vec<_> = journeys
        .iter()
        .filter(|j| {
            let gap = if j["journey_id"].is_empty() { 30 * 60_000 } else { 24 * 3_600_000 };
            ts(&j["end_ts"]) + gap <= stage
        })
        .collect();
    assert!(closed.len() > 10, "the sample closes journeys before its end: {}", closed.len());
    wait_for(10, "closed journeys in the metrics while stdin is open", || {
        let (_, m) = http_get(&addr, "/metrics")?;
        (metric_sum(&m, "omnimeter_journeys_closed_total") == closed.len() as f64).then_some(m)
    });
    let (_, m) = http_get(&addr, "/metrics").unwrap();
    let resolved = closed.iter().filter(|j| !j["resolution_ms"].is_empty()).count() as f64;
    assert_eq!(metric_sum(&m, "omnimeter_resolution_seconds_count"), resolved);
    let converted = closed.iter().filter(|j| j["outcome"] == "converted").count() as f64;
    assert_eq!(metric_sum(&m, "omnimeter_conversions_total"), converted);
    assert_eq!(http_get(&addr, "/readyz").unwrap().0, 200);
    drop(stdin);
    wait_for(30, "readiness to drop at the end of input", || {
        http_get(&addr, "/readyz").filter(|(code, _)| *code == 503)
    });
    let (_, m) = http_get(&addr, "/metrics").unwrap();
    assert_eq!(metric_sum(&m, "omnimeter_journeys_closed_total"), 101.0);
    assert_eq!(metric_sum(&m, "omnimeter_active_journeys"), 0.0);
}

#[test]
fn a_bad_or_taken_metrics_address_is_one_line_and_exit_2() {
    let out = omnimeter(&[
        "run",
        "--input",
        "tests/data/public-sample.ndjson",
        "--output",
        "/tmp/x",
        "--metrics-addr",
        "nowhere",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--metrics-addr \"nowhere\": expected an IP address and port"), "{err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().to_str().unwrap();
    for args in [
        vec!["run", "--input", "tests/data/public-sample.ndjson", "--output", out_dir, "--metrics-addr", &addr],
        vec!["run", "--brokers", "127.0.0.1:1", "--topic", "t", "--output", out_dir, "--metrics-addr", &addr],
    ] {
        let out = omnimeter(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.lines().last().unwrap().contains(&format!("cannot serve metrics on {addr}")), "{err}");
    }
}

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo())
        .output()
        .expect("promtool (Debian package prometheus) must be installed: run deploy/local/setup.sh --test");
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_the_config_the_rules_and_their_unit_tests() {
    promtool(&["check", "config", "deploy/prometheus/prometheus.yml"]);
    promtool(&["check", "rules", "deploy/prometheus/rules.yml"]);
    // Each alert fires on a synthetic series that should trip it, and not on one that should not.
    promtool(&["test", "rules", "deploy/prometheus/rules_test.yml"]);
}

#[test]
fn kubernetes_manifests_parse_and_fit_together() {
    python_check(&["tests/tools/check_manifests.py", "deploy/kubernetes"]);
}
