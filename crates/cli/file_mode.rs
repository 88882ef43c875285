//! File mode: NDJSON from a file or stdin through one engine (partition 0) into
//! Parquet. Offsets are 0-based physical line numbers; blank lines are skipped
//! but still counted, so an offset always points at the line in the file.

use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use omnimeter_engine::{
    CutRule, DurationMs, EngineConfig, IdentityCounts, PartitionEngine, RejectReason, Rows, Stats, TABLES,
};
use omnimeter_http::{BackgroundServer, Probe};
use omnimeter_metrics::{Metrics, MetricsSettings, PartitionHealth};
use omnimeter_parquet::ParquetSink;

use crate::args::RunArgs;
use crate::line_blocks::{LineBlocks, Next};

/// At most this many queued batches are published together by one writer.
const MAX_BATCHES_PER_PUBLISH: usize = 16;

/// How often live metrics are brought up to date while input flows (or waits).
const METRICS_EVERY: Duration = Duration::from_millis(500);

pub(crate) fn run(args: &RunArgs) -> Result<()> {
    let Some(input) = args.input.as_deref() else {
        bail!("--input FILE|- is required (Kafka mode with --config comes with the worker)");
    };
    let Some(output) = args.output.as_deref() else {
        bail!("--output DIR|URL is required with --input");
    };
    let output = crate::output::from_env(output)?;
    let cfg = args.engine.apply(EngineConfig::default());
    cfg.validate().context("invalid engine setting")?;
    let reader: Box<dyn Read + Send> = if input == Path::new("-") {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(input).with_context(|| format!("cannot read input {}", input.display()))?)
    };
    if args.linger.is_some() && args.metrics_addr.is_none() {
        bail!("--linger only makes sense with --metrics-addr");
    }
    let sink = ParquetSink::new(output.clone()).with_context(|| format!("cannot write output {output}"))?;
    let served = match &args.metrics_addr {
        Some(a) => {
            let addr: SocketAddr = omnimeter_config::listen_addr(a).ok_or_else(|| {
                anyhow::anyhow!("--metrics-addr {a:?}: expected {}", omnimeter_config::LISTEN_ADDR_FORM)
            })?;
            let metrics = Arc::new(Metrics::new(MetricsSettings {
                label_limit: omnimeter_config::MetricsConfig::default().label_limit,
                window_ms: cfg.window.0,
                gap_ms: cfg.gap.0,
                thread_gap_ms: cfg.thread_gap.0,
            }));
            let probe = Arc::new(InputProbe { open: AtomicBool::new(true) });
            let server = BackgroundServer::start(addr, Arc::clone(&metrics), probe.clone())?;
            Some((metrics, probe, server))
        }
        None => None,
    };
    let defaults = omnimeter_config::OutputConfig::default();
    let cuts = Cuts {
        period: args.file_period.unwrap_or(defaults.file_period),
        rows: args.file_rows.map_or(defaults.file_rows, |n| n as usize),
    };
    if cuts.period.0 <= 0 {
        bail!("--file-period {}: expected a duration above zero, like 1h", cuts.period);
    }
    let summary = process(
        LineBlocks::spawn(reader, several_cores()).context("starting the input reader")?,
        sink,
        cfg,
        cuts,
        served.as_ref().map(|s| &*s.0),
    )
    .with_context(|| format!("processing {}", input.display()))?;
    println!("{}", summary.line());
    if let Some((_, probe, server)) = served {
        probe.open.store(false, Ordering::Relaxed);
        if let Some(d) = args.linger {
            eprintln!("omnimeter: input done; serving final metrics on http://{}/metrics for {d}", server.addr());
            std::thread::sleep(Duration::from_millis(d.0.max(0) as u64));
        }
    }
    Ok(())
}

/// File mode is ready while its input is open.
struct InputProbe {
    open: AtomicBool,
}

impl Probe for InputProbe {
    fn readiness(&self) -> Result<String, String> {
        if self.open.load(Ordering::Relaxed) { Ok("reading input".into()) } else { Err("input finished".into()) }
    }
}

/// What one file-mode run did.
pub(crate) struct Summary {
    pub(crate) lines: u64,
    pub(crate) blank: u64,
    pub(crate) stats: Stats,
    pub(crate) rows: [u64; TABLES.len()],
    pub(crate) identity: IdentityCounts,
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
        let id = &self.identity;
        // Only inputs with identities say anything about them (SPEC §6).
        let identity = if id.links + id.conflicts + id.resolved + id.unresolved > 0 {
            format!(
                ", identities {} linked, {} conflicts, anonymous events {} resolved, {} not",
                id.links, id.conflicts, id.resolved, id.unresolved
            )
        } else {
            String::new()
        };
        let rss = peak_rss_bytes().map_or(String::new(), |b| format!(", peak RSS {:.1} MiB", b as f64 / 1048576.0));
        format!(
            "omnimeter: {} events ({} lines, {} blank), {} processed, rejected {} ({}), late {}, duplicates {}, journeys {}{identity}, rows {}, {} files, {:.2}s, {:.0} events/s{rss}",
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

/// The cut settings of SPEC §4: `file_period` and `file_rows`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cuts {
    pub(crate) period: DurationMs,
    pub(crate) rows: usize,
}

pub(crate) fn process(
    input: LineBlocks,
    sink: ParquetSink,
    cfg: EngineConfig,
    cuts: Cuts,
    metrics: Option<&Metrics>,
) -> Result<Summary> {
    let started = Instant::now();
    // Writer threads share the sink and write in parallel, each a third of every batch's
    // files, spread by table and UTC hour: the tables of an hour's cut spread over them,
    // and so do the many small files of sparse data (100 days: 50,000 files). Every file
    // holds one table and hour and is named by the batch position, so the files are the
    // same as one writer's. On one core
    // (`taskset`, a CPU quota of one) one writer writes everything: three would only add
    // thread switches, and splitting the rows copies them.
    let parallel = several_cores();
    let sink = &sink;
    std::thread::scope(|scope| {
        let mut queues = Vec::new();
        let mut threads = Vec::new();
        for _ in 0..if parallel { 3 } else { 1 } {
            let (queue, batches) = sync_channel::<Batch>(1);
            queues.push(queue);
            threads.push(scope.spawn(move || write_loop(batches, sink, metrics)));
        }
        let mut summary = fold_input(input, Writers(queues), cfg, cuts, metrics, started);
        for writer in threads {
            let written = writer.join().map_err(|_| anyhow::anyhow!("a Parquet writer thread panicked"))?;
            // A writer's own error explains an engine-side "writer stopped" better.
            let (rows, files) = written?;
            if let Ok(s) = &mut summary {
                for (total, n) in s.rows.iter_mut().zip(rows) {
                    *total += n;
                }
                s.files += files;
            }
        }
        let mut summary = summary?;
        summary.elapsed = started.elapsed();
        Ok(summary)
    })
}

/// Whether this process may use more than one core (`taskset`, a CPU quota of one: not).
fn several_cores() -> bool {
    std::thread::available_parallelism().map_or(1, |n| n.get()) > 1
}

/// Rows of one batch and the offset of its first line.
type Batch = (Rows, i64);

/// The writer threads' queues, each for its share of the files (`split_by_file`),
/// or one queue for everything on one core (one batch waiting each bounds memory).
struct Writers(Vec<SyncSender<Batch>>);

/// The engine thread: folds the decoded lines and hands rows to the writers.
fn fold_input(
    input: LineBlocks,
    writers: Writers,
    cfg: EngineConfig,
    cuts: Cuts,
    metrics: Option<&Metrics>,
    started: Instant,
) -> Result<Summary> {
    let mut engine = PartitionEngine::new(cfg, 0);
    let mut cut_rule = CutRule::new(cuts.period, cuts.rows, &engine);
    let (mut offset, mut blank, mut batch_first) = (0i64, 0u64, 0i64);
    let mut summary = Summary {
        lines: 0,
        blank: 0,
        stats: Stats::default(),
        rows: [0; TABLES.len()],
        identity: IdentityCounts::default(),
        files: 0,
        elapsed: Duration::ZERO,
    };
    let mut last_progress = Instant::now();
    let mut last_metrics = Instant::now();
    loop {
        let block = match input.next(METRICS_EVERY).context("reading input")? {
            Next::Block(b) => b,
            Next::Idle => {
                if let Some(m) = metrics {
                    observe(m, &mut engine);
                    last_metrics = Instant::now();
                }
                continue;
            }
            Next::End => break,
        };
        block.try_each_line(|raw, decoded| {
            match decoded {
                None => blank += 1,
                Some((decoded, tie)) => {
                    engine.push_decoded_tied(raw, decoded, tie, offset);
                    if cut_rule.after_push(&engine).is_some() {
                        flush(&mut engine, &writers, batch_first, metrics)?;
                        batch_first = offset + 1;
                    }
                }
            }
            offset += 1;
            anyhow::Ok(())
        })?;
        input.give_back(block);
        if last_progress.elapsed() >= Duration::from_secs(5) {
            last_progress = Instant::now();
            let rate = engine.stats().inputs as f64 / started.elapsed().as_secs_f64();
            eprintln!(
                "omnimeter: {offset} lines, {rate:.0} events/s, {} journeys closed, {} open",
                engine.stats().journeys_closed_total(),
                engine.open_journeys()
            );
        }
        if let Some(m) = metrics
            && last_metrics.elapsed() >= METRICS_EVERY
        {
            observe(m, &mut engine);
            last_metrics = Instant::now();
        }
    }
    engine.finish();
    flush(&mut engine, &writers, batch_first, metrics)?;
    if let Some(m) = metrics {
        observe(m, &mut engine);
        m.finish_windows();
    }
    summary.lines = offset as u64;
    summary.blank = blank;
    summary.stats = engine.stats().clone();
    summary.identity = engine.identity_counts();
    Ok(summary)
}

/// Live counts and gauges read off the engine: the input is partition 0, without a
/// topic or commits. Journeys closed since the last look count now, not at the next cut.
fn observe(m: &Metrics, engine: &mut PartitionEngine) {
    m.record_tally(&engine.take_tally());
    m.record_journeys(engine.newly_closed());
    let health = PartitionHealth {
        partition: 0,
        lag: None,
        committed: None,
        watermark_ms: engine.watermark(),
        checkpoint_age_seconds: None,
    };
    m.set_partitions("", &[health]);
    m.set_active_journeys(engine.open_journeys());
    m.advance_windows(engine.journey_watermark());
}

/// Hands the batch that ends here to the writers.
fn flush(engine: &mut PartitionEngine, writers: &Writers, first_offset: i64, metrics: Option<&Metrics>) -> Result<()> {
    if let Some(m) = metrics {
        m.record_tally(&engine.take_tally());
        m.record_journeys(engine.newly_closed());
    }
    let rows = engine.take_rows();
    if rows.is_empty() {
        return Ok(());
    }
    if let [queue] = writers.0.as_slice() {
        if queue.send((rows, first_offset)).is_err() {
            bail!("a Parquet writer stopped");
        }
        return Ok(());
    }
    // Each writer takes whole files (by table and hour), so the files are the ones a
    // single writer writes.
    for (queue, rows) in writers.0.iter().zip(omnimeter_parquet::split_by_file(rows, writers.0.len())) {
        if !rows.is_empty() && queue.send((rows, first_offset)).is_err() {
            // The writer stopped on an error, which joining it reports.
            bail!("a Parquet writer stopped");
        }
    }
    Ok(())
}

/// A writer thread: writes each batch in order; row and file counts by table at the end.
fn write_loop(
    batches: Receiver<Batch>,
    sink: &ParquetSink,
    metrics: Option<&Metrics>,
) -> Result<([u64; TABLES.len()], u64)> {
    let (mut rows, mut files) = ([0u64; TABLES.len()], 0u64);
    while let Ok((batch, first_offset)) = batches.recv() {
        // Batches that came while the last ones were written go out together, with one
        // pair of syncs (sparse data cuts often and writes little per cut).
        let mut publication = sink.publication();
        publication.add(&batch, 0, first_offset, false).context("writing Parquet")?;
        drop(batch);
        for _ in 1..MAX_BATCHES_PER_PUBLISH {
            let Ok((batch, first_offset)) = batches.try_recv() else { break };
            publication.add(&batch, 0, first_offset, false).context("writing Parquet")?;
        }
        let report = publication.publish().context("writing Parquet")?;
        if let Some(m) = metrics {
            m.record_written(&report.files, &report.rows);
        }
        for (total, n) in rows.iter_mut().zip(report.rows) {
            *total += n as u64;
        }
        files += report.files.iter().sum::<usize>() as u64;
    }
    Ok((rows, files))
}
