//! File mode end to end: generated NDJSON file → `omnimeter run --input` → Parquet.
//! Reports events/s and the run's peak RSS (from its summary line).
//!
//!     cargo bench --bench file_mode                # 1,000,000 events
//!     cargo bench --bench file_mode -- 5000000     # any count
//!
//! A benchmark, not a test: it asserts nothing about speed, it measures.

#![allow(clippy::unwrap_used)]

use std::io::{BufWriter, Write};
use std::process::Command;
use std::time::Instant;

use omnimeter_generate::{GenConfig, Generator};

fn main() {
    let events: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    // About 10 events per customer over one day: realistic journey sizes and open-journey counts.
    let cfg = GenConfig { customers: (events / 8).max(1), days: 1, seed: 7, ..GenConfig::default() };
    let mut generator = Generator::new(cfg);
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&input).unwrap());
    let written = generator.write_to(&mut out, Some(events)).unwrap();
    out.flush().unwrap();
    drop(out);
    let bytes = std::fs::metadata(&input).unwrap().len();
    eprintln!("bench: generated {written} events ({:.1} MiB), running file mode…", bytes as f64 / 1048576.0);

    let started = Instant::now();
    let run = Command::new(env!("CARGO_BIN_EXE_omnimeter"))
        .args(["run", "--input", input.to_str().unwrap(), "--output", dir.path().join("out").to_str().unwrap()])
        .output()
        .unwrap();
    let wall = started.elapsed().as_secs_f64();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let summary = String::from_utf8(run.stdout).unwrap();
    let rss = summary.split("peak RSS ").nth(1).map_or("?".to_owned(), |s| s.trim().to_owned());
    println!("file mode end to end (NDJSON file -> Parquet), {written} events, {:.1} MiB", bytes as f64 / 1048576.0);
    println!("  wall time      {wall:.2} s (process start to exit)");
    println!("  throughput     {:.0} events/s", written as f64 / wall);
    println!("  per event      {:.0} ns", wall * 1e9 / written as f64);
    println!("  peak RSS       {rss}");
    println!("  summary        {}", summary.trim());
}
