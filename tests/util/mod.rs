//! Shared helpers of the end-to-end tests: run the binary, run Python readers.

#![allow(dead_code, clippy::unwrap_used)]

pub(crate) mod kafka;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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

/// Runs `python3 ARGS` from the repository root and fails the test with its output
/// unless it exits 0. The readers (duckdb, pyarrow) come from PyPI; `.ci/run` installs them.
pub(crate) fn python_check(args: &[&str]) {
    let out =
        Command::new("python3").args(args).current_dir(repo()).output().expect("python3 is needed for reader checks");
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
