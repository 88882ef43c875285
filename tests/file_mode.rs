//! End-to-end tests of `omnimeter run --input`: the real binary over the public
//! samples, its Parquet read back by DuckDB and pyarrow (independent readers),
//! and the command's contract for bad flags, inputs and outputs.

#![allow(clippy::unwrap_used)]

mod util;

use util::{omnimeter, parquet_files, python_check, repo};

fn golden(sample: &str) {
    let out = tempfile::tempdir().unwrap();
    let input = repo().join(format!("tests/data/{sample}.ndjson"));
    let run = omnimeter(&["run", "--input", input.to_str().unwrap(), "--output", out.path().to_str().unwrap()]);
    assert!(run.status.success(), "omnimeter failed: {}", String::from_utf8_lossy(&run.stderr));
    let summary = String::from_utf8(run.stdout).unwrap();
    assert_eq!(summary.lines().count(), 1, "one summary line: {summary}");
    assert!(summary.contains("events/s"), "{summary}");
    let expected = repo().join(format!("tests/data/{sample}.expected"));
    python_check(&["tests/tools/check_tables.py", expected.to_str().unwrap(), out.path().to_str().unwrap()]);
}

#[test]
fn public_sample_tables_match_expected() {
    golden("public-sample");
}

#[test]
fn public_late_tables_match_expected() {
    golden("public-late");
}

#[test]
fn public_identity_tables_match_expected() {
    golden("public-identity");
}

#[test]
fn summary_counts_match_the_sample_summary() {
    let out = tempfile::tempdir().unwrap();
    let input = repo().join("tests/data/public-late.ndjson");
    let run = omnimeter(&["run", "--input", input.to_str().unwrap(), "--output", out.path().to_str().unwrap()]);
    let line = String::from_utf8(run.stdout).unwrap();
    let want: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo().join("tests/data/public-late.expected/summary.json")).unwrap())
            .unwrap();
    for (label, key) in
        [("processed", "processed_events"), ("duplicates", "duplicates"), ("journeys", "journeys"), ("late", "late")]
    {
        let n = want[key].as_u64().unwrap();
        let needle = if label == "processed" { format!("{n} processed") } else { format!("{label} {n}") };
        assert!(line.contains(&needle), "summary lacks {needle:?}: {line}");
    }
}

#[test]
fn layout_is_hive_partitioned_with_millisecond_utc_timestamps_and_no_temp_files() {
    let out = tempfile::tempdir().unwrap();
    let input = repo().join("tests/data/public-sample.ndjson");
    assert!(
        omnimeter(&["run", "--input", input.to_str().unwrap(), "--output", out.path().to_str().unwrap()])
            .status
            .success()
    );
    let files = parquet_files(out.path());
    for table in
        ["journeys", "activity", "transitions", "journey_windows", "paths", "friction", "attribution", "rejected"]
    {
        assert!(files.iter().any(|f| f.starts_with(out.path().join(table))), "no files for {table}");
    }
    for f in &files {
        let rel = f.strip_prefix(out.path()).unwrap().to_str().unwrap().to_owned();
        let parts: Vec<&str> = rel.split('/').collect();
        assert_eq!(parts.len(), 4, "{rel}");
        assert!(parts[1].starts_with("date=") && parts[1].len() == 15, "{rel}");
        assert!(parts[2].starts_with("hour=") && parts[2].len() == 7, "{rel}");
        assert!(parts[3].starts_with("p00000-o") && parts[3].ends_with(".parquet"), "{rel}");
    }
    let root = format!("{}/", out.path().display());
    let temps: Vec<String> = util::all_files(out.path())
        .into_iter()
        .map(|p| p.display().to_string())
        .filter(|p| p.trim_start_matches(&root).contains(".tmp"))
        .collect();
    assert!(temps.is_empty(), "temp files left: {:?}", &temps[..temps.len().min(3)]);
    // pyarrow reads the files on its own and sees TIMESTAMP(MILLIS, UTC).
    python_check(&[
        "-c",
        &format!(
            "import pyarrow.dataset as ds, sys\n\
             d = ds.dataset('{}/journeys', format='parquet', partitioning='hive')\n\
             t = d.to_table()\n\
             assert str(t.schema.field('start_ts').type) == 'timestamp[ms, tz=UTC]', t.schema\n\
             assert str(t.schema.field('end_ts').type) == 'timestamp[ms, tz=UTC]'\n\
             assert t.num_rows == 101, t.num_rows\n",
            out.path().display()
        ),
    ]);
}

#[test]
fn a_second_run_into_the_same_output_replaces_files_instead_of_adding_copies() {
    let out = tempfile::tempdir().unwrap();
    let input = repo().join("tests/data/public-sample.ndjson");
    let args = ["run", "--input", input.to_str().unwrap(), "--output", out.path().to_str().unwrap()];
    assert!(omnimeter(&args).status.success());
    let first = parquet_files(out.path());
    assert!(omnimeter(&args).status.success());
    assert_eq!(parquet_files(out.path()), first);
    let expected = repo().join("tests/data/public-sample.expected");
    python_check(&["tests/tools/check_tables.py", expected.to_str().unwrap(), out.path().to_str().unwrap()]);
}

#[test]
fn stdin_blank_lines_and_crlf() {
    let out = tempfile::tempdir().unwrap();
    let good = r#"{"event_id":"a","ts":"2026-11-02T08:00:00Z","customer_id":"c","channel":"web","type":"touch"}"#;
    let input = format!("{good}\r\n\n   \nnot json\r\n");
    let run =
        util::omnimeter_stdin(&["run", "--input", "-", "--output", out.path().to_str().unwrap()], input.as_bytes());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let line = String::from_utf8(run.stdout).unwrap();
    assert!(line.contains("4 lines, 2 blank"), "{line}");
    assert!(line.contains("journeys 1"), "{line}");
    // The bad line is line 3 (0-based, blank lines counted), without its CR.
    python_check(&[
        "-c",
        &format!(
            "import duckdb\n\
             rows = duckdb.connect().execute(\"SELECT reason, \\\"offset\\\", raw_text FROM read_parquet('{}/rejected/**/*.parquet')\").fetchall()\n\
             assert rows == [('invalid_json', 3, 'not json')], rows\n",
            out.path().display()
        ),
    ]);
}

fn assert_usage_error(args: &[&str], needle: &str) {
    let run = omnimeter(args);
    assert_eq!(run.status.code(), Some(2), "{args:?}");
    let err = String::from_utf8(run.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "one line on stderr, got: {err}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_flags_inputs_and_outputs_give_one_line_and_exit_2() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    let sample = repo().join("tests/data/public-sample.ndjson");
    let s = sample.to_str().unwrap();
    assert_usage_error(&["run", "--input", s, "--output", o, "--bogus"], "--bogus");
    assert_usage_error(&["run", "--input", s, "--output", o, "--gap", "30 minutes"], "invalid duration");
    assert_usage_error(
        &["run", "--input", s, "--output", o, "--window", "0s"],
        "window = 0ms: expected a duration above zero",
    );
    assert_usage_error(&["run", "--input", s, "--output", o, "--max-path", "x"], "--max-path");
    assert_usage_error(
        &["run", "--input", "/nonexistent/events.ndjson", "--output", o],
        "cannot read input /nonexistent/events.ndjson",
    );
    let file = out.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    assert_usage_error(&["run", "--input", s, "--output", file.join("sub").to_str().unwrap()], "cannot write output");
    // Without --input it is a Kafka worker: configuration errors also stop it at once.
    assert_usage_error(&["run", "--config", "/nonexistent/omnimeter.toml"], "/nonexistent/omnimeter.toml");
    let bad = out.path().join("bad.toml");
    std::fs::write(&bad, "[engine]\ngap = \"30x\"\n").unwrap();
    assert_usage_error(&["run", "--config", bad.to_str().unwrap()], "engine.gap: invalid duration \"30x\"");
    std::fs::write(&bad, "[kafka]\nbrokerz = \"x\"\n").unwrap();
    assert_usage_error(&["run", "--config", bad.to_str().unwrap()], "unknown key kafka.brokerz");
}

#[test]
fn engine_flags_change_the_result() {
    let out = tempfile::tempdir().unwrap();
    let input = repo().join("tests/data/public-sample.ndjson");
    let run = omnimeter(&[
        "run",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.path().to_str().unwrap(),
        "--gap",
        "1m",
        "--window",
        "1h",
    ]);
    assert!(run.status.success());
    let line = String::from_utf8(run.stdout).unwrap();
    assert!(!line.contains("journeys 101,"), "a 1m gap splits more journeys: {line}");
}

/// On one core the engine thread decodes each line itself (the input thread only
/// reads); on several, the input thread decodes. Either way every file has the same
/// bytes: samples with late events, malformed lines and identities, one core via `taskset`.
#[test]
fn one_core_and_several_write_the_same_bytes() {
    let files = |root: &std::path::Path| -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut all: Vec<_> = parquet_files(root)
            .into_iter()
            .map(|p| (p.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&p).unwrap()))
            .collect();
        all.sort();
        all
    };
    for sample in ["public-sample", "public-late", "public-identity"] {
        let input = repo().join(format!("tests/data/{sample}.ndjson"));
        let (one, several) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let pinned = std::process::Command::new("taskset")
            .args(["-c", "0", env!("CARGO_BIN_EXE_omnimeter"), "run", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(one.path())
            .output()
            .expect("taskset (util-linux) runs the one-core case");
        assert!(pinned.status.success(), "{}", String::from_utf8_lossy(&pinned.stderr));
        let run = omnimeter(&["run", "--input", input.to_str().unwrap(), "--output", several.path().to_str().unwrap()]);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let (a, b) = (files(one.path()), files(several.path()));
        assert!(!a.is_empty(), "{sample}: no files");
        assert_eq!(a.len(), b.len(), "{sample}: file counts");
        for ((pa, ba), (pb, bb)) in a.iter().zip(&b) {
            assert_eq!(pa, pb, "{sample}: file names");
            assert!(ba == bb, "{sample}: {} differs between one core and several", pa.display());
        }
    }
}
