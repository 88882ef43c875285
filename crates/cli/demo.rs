//! `omnimeter demo`: the whole system on one machine with nothing installed — an
//! in-process Kafka-compatible cluster (librdkafka's mock cluster), generated traffic
//! streamed into it, two workers in one consumer group writing Parquet, `/metrics`
//! served, live progress, then a wind-down that closes every journey and the report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use omnimeter_engine::{DurationMs, EngineConfig};
use omnimeter_generate::{GenConfig, Generator, customer_id};
use omnimeter_http::Probe;
use omnimeter_kafka::{EventProducer, FinishAt, OnDataLoss, WorkerOptions, WorkerStatus};
use omnimeter_metrics::{Metrics, MetricsSettings};
use omnimeter_report::thousands;

use crate::generate::Pacer;

const TOPIC: &str = "omnimeter-events";
const PARTITIONS: i32 = 6;
const GROUP: &str = "omnimeter-demo";
const WORKERS: usize = 2;
/// Events the producer may run ahead of the workers. The in-process cluster keeps
/// at most 5 MiB (or 100,000 messages) per partition and deletes older data even if
/// nobody read it: ~60,000 events over 6 partitions are ~2 MiB each, so nothing
/// unread is ever deleted, however slow the workers are (a busy machine).
const MAX_AHEAD: u64 = 60_000;
/// Marks a folder the demo owns, so a re-run may clear it.
const MARKER: &str = ".omnimeter-demo";

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How long traffic streams before the demo winds down and writes the report.
    #[arg(long, value_name = "D", default_value = "30s")]
    pub(crate) duration: DurationMs,
    /// Output folder: Parquet tables, checkpoints and report.html (cleared when it holds an earlier demo).
    #[arg(long, value_name = "DIR", default_value = "omnimeter-demo")]
    pub(crate) dir: PathBuf,
    /// Run against a real broker instead of the in-process mock cluster.
    #[arg(long, value_name = "HOST:PORT[,...]")]
    pub(crate) brokers: Option<String>,
    /// Serve /metrics, /healthz and /readyz here (another free port if taken).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9898")]
    pub(crate) metrics_addr: String,
    /// Events per second streamed into the topic.
    #[arg(long, value_name = "EV/S", default_value_t = 20_000.0)]
    pub(crate) rate: f64,
    /// Seed of the generated traffic.
    #[arg(long, value_name = "N", default_value_t = 7)]
    pub(crate) seed: u64,
}

/// Readiness and partition gauges over both workers.
struct DemoProbe {
    statuses: Vec<Arc<Mutex<WorkerStatus>>>,
}

fn snapshot(s: &Arc<Mutex<WorkerStatus>>) -> WorkerStatus {
    s.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

impl Probe for DemoProbe {
    fn refresh(&self, metrics: &Metrics) {
        let (mut parts, mut open) = (Vec::new(), 0);
        for s in &self.statuses {
            let st = snapshot(s);
            open += st.open_journeys();
            parts.extend(st.partition_health());
        }
        metrics.set_partitions(TOPIC, &parts);
        metrics.set_active_journeys(open);
    }

    fn readiness(&self) -> Result<String, String> {
        if let Some(trouble) = self.statuses.iter().find_map(|s| snapshot(s).trouble()) {
            return Err(trouble);
        }
        let held: usize = self.statuses.iter().map(|s| snapshot(s).partitions.len()).sum();
        if held == 0 { Err("no partitions assigned".into()) } else { Ok(format!("{held} partitions of {TOPIC}")) }
    }
}

/// Clears an earlier demo's output (never a folder the demo did not create).
fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.next().is_none();
        if !empty {
            if !dir.join(MARKER).exists() {
                bail!("{} exists and was not made by omnimeter demo; pick another --dir", dir.display());
            }
            std::fs::remove_dir_all(dir).with_context(|| format!("clearing the earlier demo in {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(MARKER), b"made by omnimeter demo; a re-run clears this folder\n")
        .with_context(|| format!("writing in {}", dir.display()))?;
    Ok(())
}

pub(crate) fn run(args: &DemoArgs) -> Result<()> {
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        bail!("--rate {}: expected events per second above 0", args.rate);
    }
    if args.duration.0 <= 0 {
        bail!("--duration {}: expected a positive duration like 20s", args.duration);
    }
    // Progress lines are the demo's voice; worker logs only when something is wrong.
    crate::kafka_mode::init_logging("warn");
    prepare_dir(&args.dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;

    // The cluster: in-process unless --brokers names a real one.
    let mock = match &args.brokers {
        Some(_) => None,
        None => {
            let cluster = rdkafka::mocking::MockCluster::new(1).context("starting the in-process Kafka cluster")?;
            cluster.create_topic(TOPIC, PARTITIONS, 1).context("creating the demo topic")?;
            Some(cluster)
        }
    };
    let brokers = match (&args.brokers, &mock) {
        (Some(b), _) => {
            runtime
                .block_on(omnimeter_kafka::ensure_topic(b, TOPIC, PARTITIONS, Duration::from_secs(10)))
                .with_context(|| format!("creating topic {TOPIC} on {b}"))?;
            b.clone()
        }
        (None, Some(m)) => m.bootstrap_servers(),
        (None, None) => return Err(anyhow!("no cluster")),
    };

    let engine = EngineConfig::default();
    let metrics = Arc::new(Metrics::new(MetricsSettings {
        label_limit: omnimeter_config::MetricsConfig::default().label_limit,
        window_ms: engine.window.0,
        gap_ms: engine.gap.0,
        thread_gap_ms: engine.thread_gap.0,
    }));
    let statuses: Vec<_> = (0..WORKERS).map(|_| Arc::new(Mutex::new(WorkerStatus::default()))).collect();

    // /metrics: the configured port, or any free one when it is taken (a second demo).
    let wanted = omnimeter_config::listen_addr(&args.metrics_addr).ok_or_else(|| {
        anyhow!("--metrics-addr {:?}: expected {}", args.metrics_addr, omnimeter_config::LISTEN_ADDR_FORM)
    })?;
    let listener = omnimeter_http::bind(wanted)
        .or_else(|_| omnimeter_http::bind(std::net::SocketAddr::new(wanted.ip(), 0)))
        .context("serving metrics")?;
    let metrics_url = format!("http://{}/metrics", listener.local_addr()?);
    let stop = Arc::new(AtomicBool::new(false));
    {
        let probe = Arc::new(DemoProbe { statuses: statuses.clone() });
        let (metrics, stop) = (Arc::clone(&metrics), Arc::clone(&stop));
        let stopped = crate::kafka_mode::until_set(stop);
        runtime.spawn(async move {
            let _ = omnimeter_http::serve(listener, metrics, probe, stopped).await;
        });
    }

    // Two workers in one group, as two processes would be.
    let finish: FinishAt = Arc::new(Mutex::new(None));
    let mut workers = Vec::new();
    for status in &statuses {
        let opts = WorkerOptions {
            brokers: brokers.clone(),
            topic: TOPIC.to_owned(),
            group: GROUP.to_owned(),
            properties: Vec::new(),
            dead_letter_topic: None,
            session_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(5),
            fetch_max_wait: Duration::from_millis(100),
            output: omnimeter_parquet::Output::Local(args.dir.clone()),
            commit_interval: Duration::from_secs(1),
            file_period: omnimeter_config::OutputConfig::default().file_period,
            file_rows: omnimeter_config::DEFAULT_FILE_ROWS,
            on_data_loss: OnDataLoss::Stop,
            engine,
            until_end: false,
            metrics: Arc::clone(&metrics),
            finish: Some(Arc::clone(&finish)),
        };
        let (stop, status) = (Arc::clone(&stop), Arc::clone(status));
        workers.push(std::thread::spawn(move || omnimeter_kafka::run(&opts, &stop, status)));
    }

    // Traffic: many customers over a day of event time, streamed at --rate: 20 s
    // of demo are about 7 hours of event time, so files stay few (one per table,
    // partition and hour; SPEC §4 cuts publish hourly).
    let produced = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop_producing = Arc::new(AtomicBool::new(false));
    let producer_thread = {
        let (brokers, produced, stop_producing) = (brokers.clone(), Arc::clone(&produced), Arc::clone(&stop_producing));
        let (rate, seed) = (args.rate, args.seed);
        let statuses = statuses.clone();
        std::thread::spawn(move || -> Result<(u64, BTreeMap<i32, i64>)> {
            let producer = EventProducer::new(&brokers, TOPIC, &[]).context("starting the producer")?;
            let mut generator = Generator::new(GenConfig {
                seed,
                customers: 300_000,
                days: 1,
                bad_rate: 0.002,
                duplicate_rate: 0.01,
                ..GenConfig::default()
            });
            let pacer = Pacer::new(rate);
            let mut line = Vec::with_capacity(1024);
            let mut n = 0u64;
            while !stop_producing.load(Ordering::Relaxed) {
                line.clear();
                let Some(meta) = generator.next_event(&mut line) else { break };
                producer.send(customer_id(meta.customer).as_bytes(), &line).context("producing")?;
                n += 1;
                produced.store(n, Ordering::Relaxed);
                pacer.wait(n);
                // Never further ahead of the workers than the cluster keeps (see MAX_AHEAD).
                while n % 1_000 == 0
                    && n.saturating_sub(read_positions(&statuses)) > MAX_AHEAD
                    && !stop_producing.load(Ordering::Relaxed)
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            producer.flush(Duration::from_secs(30)).context("flushing the producer")?;
            if producer.failed() > 0 {
                bail!("{} events were not delivered to the cluster", producer.failed());
            }
            Ok((n, producer.delivered_ends()))
        })
    };

    eprintln!(
        "omnimeter demo: {} for {}, {} workers in group {GROUP}, output {}, metrics {metrics_url}",
        if args.brokers.is_some() { format!("broker {brokers}") } else { "in-process Kafka cluster".to_owned() },
        args.duration,
        WORKERS,
        args.dir.display()
    );
    let started = Instant::now();
    let streaming = Duration::from_millis(args.duration.0 as u64);
    let mut last = (Instant::now(), 0u64);
    while started.elapsed() < streaming {
        std::thread::sleep(Duration::from_secs(2).min(streaming.saturating_sub(started.elapsed())));
        last = progress(started, last, &produced, &statuses, &metrics);
        if workers.iter().any(|w| w.is_finished()) {
            break; // a worker stopped early: its error is reported below
        }
    }
    stop_producing.store(true, Ordering::Relaxed);
    if let Some(i) = workers.iter().position(|w| w.is_finished()) {
        stop.store(true, Ordering::Relaxed);
        let failed = workers.swap_remove(i);
        for w in workers {
            let _ = w.join();
        }
        return match failed.join() {
            Ok(Err(e)) => Err(anyhow!(e)).context("a worker stopped"),
            _ => Err(anyhow!("a worker stopped early")),
        };
    }
    let (sent, ends) = producer_thread.join().map_err(|_| anyhow!("producer thread panicked"))??;
    eprintln!("omnimeter demo: {} events sent; workers catch up, close journeys and write everything", thousands(sent));
    let end_total: i64 = ends.values().sum();
    *finish.lock().unwrap_or_else(|e| e.into_inner()) = Some(ends.clone());
    let deadline = Instant::now() + Duration::from_secs(120);
    while workers.iter().any(|w| !w.is_finished()) {
        if Instant::now() > deadline {
            stop.store(true, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(500));
        if last.0.elapsed() >= Duration::from_secs(2) {
            last = progress(started, last, &produced, &statuses, &metrics);
        }
    }
    let mut processed = omnimeter_engine::Stats::default();
    let mut all_reached_end = true;
    for w in workers {
        let report = w.join().map_err(|_| anyhow!("worker thread panicked"))?.context("worker")?;
        all_reached_end &= report.reached_end;
        processed.add(&report.stats);
    }
    stop.store(true, Ordering::Relaxed);
    drop(mock);
    // Every offset the producer got acknowledged was read: the workers stop only at
    // those ends, and a deleted offset stops them with an error (on_data_loss = stop).
    if !all_reached_end || end_total as u64 != sent {
        bail!(
            "NOT EVERY EVENT WAS READ: {} sent, {} acknowledged, workers {} the end; the tables are incomplete",
            thousands(sent),
            thousands(end_total.max(0) as u64),
            if all_reached_end { "reached" } else { "did not reach" }
        );
    }
    // The last progress line: everything sent was read (checked just above), lag 0.
    progress_line(started, last, sent, sent, processed.journeys_closed_total(), &metrics);

    let report = omnimeter_report::Report::from_dir(&args.dir).context("reading the demo output")?;
    let html_path = args.dir.join("report.html");
    std::fs::write(&html_path, report.to_html_simulated().context("rendering the report")?)
        .with_context(|| format!("writing {}", html_path.display()))?;
    let h = report.headline();
    let pct = |x: Option<f64>| x.map_or("–".to_owned(), |v| format!("{:.1}%", v * 100.0));
    println!(
        "omnimeter demo: {} events sent = {} read → {} journeys, conversion {}, first-contact resolution {}, {} rejected, {} duplicates",
        thousands(sent),
        thousands(end_total as u64),
        thousands(h.journeys),
        pct(h.conversion_rate),
        pct(h.fcr_rate),
        thousands(processed.malformed()),
        thousands(processed.duplicates),
    );
    println!("report:  {}", html_path.display());
    println!("tables:  {}/<table>/date=…/hour=…/*.parquet", args.dir.display());
    let glob = args.dir.join("journeys/**/*.parquet");
    println!(
        "query:   python3 -c \"import duckdb; duckdb.sql(\\\"SELECT first_channel, outcome, count(*) AS journeys, round(avg(hops), 2) AS mean_hops FROM read_parquet('{}', hive_partitioning=true) GROUP BY ALL ORDER BY journeys DESC LIMIT 10\\\").show()\"",
        glob.display()
    );
    Ok(())
}

/// Events read so far: per partition the furthest position any worker reached
/// (positions only grow, and a replay after a rebalance does not count twice).
fn read_positions(statuses: &[Arc<Mutex<WorkerStatus>>]) -> u64 {
    let mut furthest: BTreeMap<i32, i64> = BTreeMap::new();
    for s in statuses {
        for (&p, st) in &snapshot(s).partitions {
            let f = furthest.entry(p).or_insert(0);
            *f = (*f).max(st.position);
        }
    }
    furthest.values().sum::<i64>().max(0) as u64
}

/// One progress line: events/s, lag, journeys closed, top friction point.
fn progress(
    started: Instant,
    (since, consumed_before): (Instant, u64),
    produced: &std::sync::atomic::AtomicU64,
    statuses: &[Arc<Mutex<WorkerStatus>>],
    metrics: &Metrics,
) -> (Instant, u64) {
    let closed: u64 = statuses.iter().map(|s| snapshot(s).stats.journeys_closed_total()).sum();
    // Read and lag as the demo knows them exactly: positions (a partition replayed
    // after a rebalance is not read twice), and sent minus read.
    let consumed = read_positions(statuses);
    progress_line(started, (since, consumed_before), produced.load(Ordering::Relaxed), consumed, closed, metrics);
    (Instant::now(), consumed)
}

/// Prints one progress line; lag is sent minus processed.
fn progress_line(
    started: Instant,
    (since, consumed_before): (Instant, u64),
    sent: u64,
    consumed: u64,
    closed: u64,
    metrics: &Metrics,
) {
    let lag = sent.saturating_sub(consumed);
    let rate = consumed.saturating_sub(consumed_before) as f64 / since.elapsed().as_secs_f64().max(1e-3);
    let friction = metrics
        .top_friction()
        .map_or("none yet".to_owned(), |(kind, channel, n)| format!("{kind} on {channel} ({})", thousands(n)));
    eprintln!(
        "omnimeter demo {:>4.0}s  sent {:>9}  processed {:>9} ({:>7}/s)  lag {:>7}  journeys closed {:>8}  top friction: {friction}",
        started.elapsed().as_secs_f64(),
        thousands(sent),
        thousands(consumed),
        thousands(rate.round() as u64),
        thousands(lag),
        thousands(closed),
    );
}
