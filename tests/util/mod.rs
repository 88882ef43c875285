//! Shared helpers of the end-to-end tests: run the binary, run Python readers.

#![allow(dead_code, clippy::unwrap_used)]

pub(crate) mod kafka;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The checkout under test: cargo's variable at run time first, because test binaries
/// in a shared `CARGO_TARGET_DIR` (CI's) may have been built from another clone of the
/// same sources, whose path `env!` baked in and which may be gone.
pub(crate) fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")), std::path::PathBuf::from)
}

pub(crate) fn omnimeter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_omnimeter")).args(args).current_dir(repo()).output().unwrap()
}

pub(crate) fn omnimeter_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_omnimeter"))
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// The Python with the test packages: `deploy/local/setup.sh` makes `.venv/` in the
/// repository (Debian's own Python refuses pip installs); `python3` without it.
pub(crate) fn python() -> PathBuf {
    let venv = repo().join(".venv/bin/python3");
    if venv.exists() { venv } else { PathBuf::from("python3") }
}

/// Runs `python3 ARGS` from the repository root and fails the test with its output
/// unless it exits 0. The readers (duckdb, pyarrow) come from PyPI; `.ci/run` installs them.
pub(crate) fn python_check(args: &[&str]) {
    let out =
        Command::new(python()).args(args).current_dir(repo()).output().expect("python3 is needed for reader checks");
    assert!(
        out.status.success(),
        "python check failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file under `root`, sorted.
pub(crate) fn all_files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { walk(&p, out) } else { out.push(p) }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.sort();
    out
}

/// Every published Parquet file under `root`, sorted.
pub(crate) fn parquet_files(root: &Path) -> Vec<PathBuf> {
    all_files(root)
        .into_iter()
        .filter(|p| {
            p.extension().is_some_and(|x| x == "parquet") && !p.file_name().unwrap().to_string_lossy().starts_with('.')
        })
        .collect()
}

/// A loopback port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET path` over plain HTTP/1.0: status code and body; `None` when nothing listens.
pub(crate) fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((code, body))
}

/// Sum of the samples of `name` (any labels) in a Prometheus text exposition.
pub(crate) fn metric_sum(text: &str, name: &str) -> f64 {
    metric_samples(text, name).iter().map(|(_, v)| v).sum()
}

/// `(labels, value)` of every sample of `name` in a Prometheus text exposition.
pub(crate) fn metric_samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => {
                    let (labels, v) = r.split_once("} ")?;
                    (labels.to_owned(), v)
                }
                None => (String::new(), rest.strip_prefix(' ')?),
            };
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}

/// Polls `probe` every 100 ms until it returns `Some`, or panics with `what` after `secs`.
pub(crate) fn wait_for<T>(secs: u64, what: &str, probe: impl FnMut() -> Option<T>) -> T {
    poll(std::time::Duration::from_secs(secs), probe, || format!("timed out after {secs}s waiting for {what}"))
}

/// Polls `probe` every 100 ms until it returns `Some`; after `timeout` panics with `failure()`.
pub(crate) fn poll<T>(
    timeout: std::time::Duration,
    mut probe: impl FnMut() -> Option<T>,
    failure: impl FnOnce() -> String,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if std::time::Instant::now() >= deadline {
            panic!("{}", failure());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Polls `cond` every 100 ms until it holds, or panics with `what` after `timeout`.
pub(crate) fn wait_until(what: &str, timeout: std::time::Duration, mut cond: impl FnMut() -> bool) {
    wait_for(timeout.as_secs().max(1), what, || cond().then_some(()));
}

/// Waits up to `timeout` for `child` to exit; one still running then is killed and
/// reaped, and the answer is `None`.
pub(crate) fn exit_within(
    child: &mut std::process::Child,
    timeout: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A child process killed when the test ends, however it ends.
pub(crate) struct KillOnDrop(pub(crate) std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
