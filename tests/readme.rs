//! Every command the README shows, run as printed, in a scratch directory shaped like
//! a clone (its `tests/`, `config/`, `deploy/` and `.venv/`). `omnimeter` is this
//! build's binary, as `cargo install --path .` would put it on `PATH`, and
//! `cargo run --release --` runs the same binary. A command added to the README that
//! this test does not know fails it, so the README cannot drift from what works.

#![allow(clippy::unwrap_used)]

mod util;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use util::{KillOnDrop, repo};

/// The commands of the README's `sh` blocks, comments stripped.
fn readme_commands() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            inside = t == "```sh";
            continue;
        }
        if inside {
            let cmd = t.split("  #").next().unwrap_or("").trim();
            if !cmd.is_empty() {
                out.push(cmd.to_owned());
            }
        }
    }
    out
}

/// A scratch clone: links to what the README's commands read, and a `PATH` with
/// `omnimeter` and a `cargo` whose `run --release --` runs it.
struct Scratch {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        for name in ["tests", "config", "deploy", ".venv"] {
            symlink(repo().join(name), dir.path().join(name)).unwrap();
        }
        let bin = dir.path().join(".bin");
        std::fs::create_dir(&bin).unwrap();
        symlink(env!("CARGO_BIN_EXE_omnimeter"), bin.join("omnimeter")).unwrap();
        let cargo = bin.join("cargo");
        std::fs::write(
            &cargo,
            "#!/bin/sh\nif [ \"$1 $2 $3\" = \"run --release --\" ]; then shift 3; exec omnimeter \"$@\"; fi\n\
             echo \"this test runs only cargo run --release -- …\" >&2; exit 2\n",
        )
        .unwrap();
        std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch { dir, bin }
    }

    fn shell(&self, cmd: &str) -> Command {
        let path = format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap_or_default());
        let mut c = Command::new("bash");
        c.args(["-c", cmd]).current_dir(self.dir.path()).env("PATH", path).env("OMNIMETER_LOG", "info");
        c
    }

    /// Runs `cmd` to completion: it must exit 0.
    fn run(&self, cmd: &str) -> String {
        let out = self.shell(cmd).output().unwrap();
        assert!(
            out.status.success(),
            "README command failed ({}): {cmd}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a long-running `cmd`; returns it once its stderr has shown `needle`.
    fn start(&self, cmd: &str, needle: &str) -> Child {
        let mut child = self.shell(&exec(cmd)).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let wanted = needle.to_owned();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(&wanted) {
                    let _ = tx.send(Ok(()));
                }
                seen.push(line);
            }
            let _ = tx.send(Err(seen.join("\n")));
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(())) => child,
            Ok(Err(log)) => panic!("README command ended before {needle:?}: {cmd}\n{log}"),
            Err(_) => panic!("README command never said {needle:?}: {cmd}"),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
}

/// `cmd` with the shell replaced by it (so that a signal reaches it), its leading
/// `VAR=value` assignments exported first.
fn exec(cmd: &str) -> String {
    let mut words = cmd.splitn(2, ' ');
    match (words.next(), words.next()) {
        (Some(first), Some(rest)) if first.contains('=') && !first.starts_with('-') => {
            format!("export {first}; {}", exec(rest))
        }
        _ => format!("exec {cmd}"),
    }
}

/// Stops a long-running command the way the README says (Ctrl-C / SIGTERM): it must exit 0.
fn stop(mut child: Child, cmd: &str) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = util::exit_within(&mut child, Duration::from_secs(60));
    let status = status.unwrap_or_else(|| panic!("README command did not stop: {cmd}"));
    assert!(status.success(), "README command did not stop cleanly ({status}): {cmd}");
}

fn has_files(dir: &Path) -> bool {
    dir.exists() && !util::parquet_files(dir).is_empty()
}

#[test]
fn every_readme_command_runs_as_printed() {
    let commands = readme_commands();
    let s = Scratch::new();
    let mut ran = Vec::new();
    let mut find = |prefix: &str| -> String {
        let cmd = commands
            .iter()
            .find(|c| c.starts_with(prefix))
            .unwrap_or_else(|| panic!("the README no longer shows {prefix:?}"))
            .clone();
        ran.push(cmd.clone());
        cmd
    };

    // File mode, the generator, the DuckDB one-liner.
    let summary = s.run(&find("cargo run --release -- run --input"));
    assert!(summary.contains("journeys 101"), "{summary}");
    s.run(&find("cargo run --release -- generate --customers"));
    assert!(std::fs::metadata(s.path("events.ndjson")).unwrap().len() > 1_000_000);
    let top = s.run(&find(".venv/bin/python3 -c \"import duckdb"));
    assert!(top.contains("journeys") && top.contains("web"), "{top}");

    // The demo as printed (30 s of traffic), then the report of its output.
    let demo = s.run(&find("cargo run --release -- demo"));
    assert!(demo.contains("report"), "{demo}");
    s.run(&find("omnimeter report --input omnimeter-demo"));
    assert!(std::fs::read_to_string(s.path("report.html")).unwrap().contains("<svg"));

    // The Kafka path: broker, worker, live traffic; then the identity stage against it.
    s.run(&find("deploy/local/broker.sh"));
    let pid = std::fs::read_to_string("/tmp/omnimeter-tansu.pid").unwrap();
    struct KillPid(String);
    impl Drop for KillPid {
        fn drop(&mut self) {
            let _ = Command::new("kill").arg(self.0.trim()).status();
        }
    }
    let _tansu = KillPid(pid);
    let worker_cmd = find("cargo run --release -- run --config config/omnimeter.toml");
    let worker = s.start(&worker_cmd, "partitions assigned");
    let traffic_cmd = find("cargo run --release -- generate --rate 2000 --brokers");
    let traffic = KillOnDrop(s.shell(&exec(&traffic_cmd)).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    std::thread::sleep(Duration::from_secs(4));
    drop(traffic);
    stop(worker, &worker_cmd);
    assert!(s.path("omnimeter-out/_checkpoints").exists(), "the worker checkpointed under ./omnimeter-out");

    let resolve_cmd = find("omnimeter resolve --brokers 127.0.0.1:9092");
    let resolver = s.start(&resolve_cmd, "raw partitions assigned");
    let run_cmd = find("OMNIMETER_KAFKA_INPUT=resolved omnimeter run");
    let runner = s.start(&run_cmd, "partitions assigned");
    std::thread::sleep(Duration::from_secs(3));
    stop(runner, &run_cmd);
    stop(resolver, &resolve_cmd);
    assert!(has_files(&s.path("out")), "file mode's tables are still there");

    // The rest is CI itself and the benchmarks (run by hand; figures in the README).
    let not_here = ["bash deploy/local/setup.sh", "cargo bench --bench perf"];
    let unknown: Vec<&String> =
        commands.iter().filter(|c| !ran.contains(c) && !not_here.iter().any(|p| c.starts_with(p))).collect();
    assert!(unknown.is_empty(), "README commands this test does not run: {unknown:#?}");
}
