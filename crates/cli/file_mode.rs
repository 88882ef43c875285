//! File mode: NDJSON from a file or stdin through one engine (partition 0) into
//! Parquet. Offsets are 0-based physical line numbers; blank lines are skipped
//! but still counted, so an offset always points at the line in the file.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use omnimeter_engine::{EngineConfig, PartitionEngine, RejectReason, Stats, TABLES};
use omnimeter_parquet::ParquetSink;

use crate::args::RunArgs;

pub(crate) fn run(args: &RunArgs) -> Result<()> {
    let Some(input) = args.input.as_deref() else {
        bail!("--input FILE|- is required (Kafka mode with --config comes with the worker)");
    };
    let Some(output) = args.output.as_deref() else {
        bail!("--output DIR is required with --input");
    };
    let cfg = args.engine.apply(EngineConfig::default());
    cfg.validate().context("invalid engine setting")?;
    let reader: Box<dyn Read> = if input == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(input).with_context(|| format!("cannot read input {}", input.display()))?)
    };
    let sink = ParquetSink::new(output).with_context(|| format!("cannot write output {}", output.display()))?;
    let summary = process(BufReader::with_capacity(1 << 20, reader), sink, cfg, args.flush_lines)
        .with_context(|| format!("processing {}", input.display()))?;
    println!("{}", summary.line());
    Ok(())
}

/// What one file-mode run did.
pub(crate) struct Summary {
    pub(crate) lines: u64,
    pub(crate) blank: u64,
    pub(crate) stats: Stats,
    pub(crate) rows: [u64; 8],
    pub(crate) files: u64,
    pub(crate) elapsed: Duration,
}

impl Summary {
    pub(crate) fn line(&self) -> String {
        let s = &self.stats;
        let rejected: Vec<String> = RejectReason::ALL
            .iter()
            .filter(|r| **r != RejectReason::Late && s.rejected[r.index()] > 0)
            .map(|r| format!("{r}={}", s.rejected[r.index()]))
            .collect();
        let rows: Vec<String> = TABLES.iter().zip(self.rows).map(|(t, n)| format!("{t}={n}")).collect();
        let secs = self.elapsed.as_secs_f64();
        let rss = peak_rss_bytes().map_or(String::new(), |b| format!(", peak RSS {:.1} MiB", b as f64 / 1048576.0));
        format!(
            "omnimeter: {} events ({} lines, {} blank), {} processed, rejected {} ({}), late {}, duplicates {}, journeys {}, rows {}, {} files, {:.2}s, {:.0} events/s{rss}",
            s.inputs,
            self.lines,
            self.blank,
            s.processed,
            s.malformed(),
            if rejected.is_empty() { "none".to_owned() } else { rejected.join(" ") },
            s.late(),
            s.duplicates,
            s.journeys_closed_total(),
            rows.join(" "),
            self.files,
            secs,
            s.inputs as f64 / secs.max(1e-9),
        )
    }
}

/// Peak resident memory of this process (Linux `VmHWM`), for the summary and benchmarks.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim();
    kb.parse::<u64>().ok().map(|kb| kb * 1024)
}

pub(crate) fn process(
    mut reader: impl BufRead,
    mut sink: ParquetSink,
    cfg: EngineConfig,
    flush_lines: u64,
) -> Result<Summary> {
    let started = Instant::now();
    let mut engine = PartitionEngine::new(cfg, 0);
    let mut line = Vec::with_capacity(4096);
    let (mut offset, mut blank, mut batch_first) = (0i64, 0u64, 0i64);
    let mut summary =
        Summary { lines: 0, blank: 0, stats: Stats::default(), rows: [0; 8], files: 0, elapsed: Duration::ZERO };
    let mut last_progress = Instant::now();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).context("reading input")? == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            blank += 1;
        } else {
            engine.push(text, offset);
        }
        offset += 1;
        if offset - batch_first >= flush_lines as i64 {
            flush(&mut engine, &mut sink, batch_first, &mut summary)?;
            batch_first = offset;
            if last_progress.elapsed() >= Duration::from_secs(5) {
                last_progress = Instant::now();
                let rate = engine.stats().inputs as f64 / started.elapsed().as_secs_f64();
                eprintln!(
                    "omnimeter: {offset} lines, {rate:.0} events/s, {} journeys closed, {} open",
                    engine.stats().journeys_closed_total(),
                    engine.open_journeys()
                );
            }
        }
    }
    engine.finish();
    flush(&mut engine, &mut sink, batch_first, &mut summary)?;
    summary.lines = offset as u64;
    summary.blank = blank;
    summary.stats = engine.stats().clone();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn flush(engine: &mut PartitionEngine, sink: &mut ParquetSink, first_offset: i64, summary: &mut Summary) -> Result<()> {
    let rows = engine.take_rows();
    if rows.is_empty() {
        return Ok(());
    }
    let report = sink.write_batch(&rows, engine.partition(), first_offset).context("writing Parquet")?;
    for (total, n) in summary.rows.iter_mut().zip(rows.counts()) {
        *total += n as u64;
    }
    summary.files += report.files.iter().sum::<usize>() as u64;
    Ok(())
}
