//! Kafka mode: configuration (defaults ← file ← `OMNIMETER_*` ← flags), logging,
//! signals, and the worker on a blocking thread of a small tokio runtime.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use omnimeter_config::Config;
use omnimeter_http::Probe;
use omnimeter_kafka::{OnDataLoss, WorkerOptions, WorkerStatus};
use omnimeter_metrics::{Metrics, MetricsSettings};

use crate::Failure;
use crate::args::RunArgs;

pub(crate) fn std_duration(d: omnimeter_engine::DurationMs) -> Duration {
    Duration::from_millis(d.0.max(0) as u64)
}

/// Builds the worker's options from the layered configuration.
pub(crate) fn options(args: &RunArgs) -> Result<(Config, WorkerOptions), Failure> {
    let mut cfg = Config::load(args.config.as_deref(), std::env::vars()).map_err(|e| Failure::Usage(anyhow!(e)))?;
    if let Some(b) = &args.brokers {
        cfg.kafka.brokers = b.clone();
    }
    if let Some(t) = &args.topic {
        cfg.kafka.topics = vec![t.clone()];
    }
    if let Some(g) = &args.group {
        cfg.kafka.group = g.clone();
    }
    if let Some(o) = &args.output {
        cfg.output.url = o.clone();
    }
    if let Some(a) = &args.metrics_addr {
        cfg.metrics.addr = a.clone();
    }
    if let Some(p) = args.file_period {
        cfg.output.file_period = p;
    }
    if let Some(n) = args.file_rows {
        cfg.output.file_rows = n as usize;
    }
    args.engine.apply_to_section(&mut cfg.engine);
    cfg.validate().map_err(|e| Failure::Usage(anyhow!(e)))?;
    let [topic] = cfg.kafka.topics.as_slice() else {
        return Err(Failure::Usage(anyhow!(
            "kafka.topics = {:?}: expected exactly one topic per worker group (run one group per topic)",
            cfg.kafka.topics
        )));
    };
    let output = crate::output::output_of(&cfg.output).map_err(|e| Failure::Usage(anyhow!(e)))?;
    let engine = cfg.engine();
    let metrics = Arc::new(Metrics::new(MetricsSettings {
        label_limit: cfg.metrics.label_limit,
        window_ms: engine.window.0,
        gap_ms: engine.gap.0,
        thread_gap_ms: engine.thread_gap.0,
    }));
    let opts = WorkerOptions {
        brokers: cfg.kafka.brokers.clone(),
        topic: topic.clone(),
        group: cfg.kafka.group.clone(),
        properties: cfg.kafka.properties.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        dead_letter_topic: cfg.kafka.dead_letter().map(str::to_owned),
        session_timeout: std_duration(cfg.kafka.session_timeout),
        drain_timeout: std_duration(cfg.kafka.drain_timeout),
        fetch_max_wait: std_duration(cfg.kafka.fetch_max_wait),
        output,
        commit_interval: std_duration(cfg.kafka.commit_interval),
        file_period: cfg.output.file_period,
        file_rows: cfg.output.file_rows,
        on_data_loss: match cfg.kafka.on_data_loss {
            omnimeter_config::DataLossPolicy::Stop => OnDataLoss::Stop,
            omnimeter_config::DataLossPolicy::Skip => OnDataLoss::Skip,
        },
        engine,
        until_end: args.until_end,
        metrics,
        finish: None,
    };
    Ok((cfg, opts))
}

/// Logs to stderr; `OMNIMETER_LOG` (an env-filter like `info` or `omnimeter_kafka=debug`) overrides `default`.
pub(crate) fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OMNIMETER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

pub(crate) fn run(args: &RunArgs) -> Result<(), Failure> {
    let (cfg, opts) = options(args)?;
    if args.linger.is_some() {
        return Err(Failure::Usage(anyhow!(
            "--linger is for file mode (--input); a worker serves metrics while it runs"
        )));
    }
    init_logging("info");
    // Bound before anything starts, so a taken port is a start-up error.
    let listener = match cfg.metrics.socket_addr() {
        Some(addr) => Some(omnimeter_http::bind(addr).map_err(|e| Failure::Usage(anyhow!(e)))?),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")
        .map_err(Failure::Runtime)?;
    let started = Instant::now();
    let status = Arc::new(Mutex::new(WorkerStatus::default()));
    let report = runtime.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        tokio::spawn(stop_on_signal(Arc::clone(&stop)));
        tokio::spawn(report_progress(Arc::clone(&status)));
        if let Some(listener) = listener {
            let probe = Arc::new(WorkerProbe { status: Arc::clone(&status), stop: Arc::clone(&stop) });
            let stopped = until_set(Arc::clone(&stop));
            let metrics = Arc::clone(&opts.metrics);
            tokio::spawn(async move {
                if let Err(e) = omnimeter_http::serve(listener, metrics, probe, stopped).await {
                    tracing::error!(error = %e, "metrics endpoint stopped");
                }
            });
        }
        let worker = {
            let (stop, status) = (Arc::clone(&stop), Arc::clone(&status));
            tokio::task::spawn_blocking(move || omnimeter_kafka::run(&opts, &stop, status))
        };
        worker.await
    });
    let report = match report.context("worker thread").map_err(Failure::Runtime)? {
        Ok(r) => r,
        Err(e) if e.is_data_loss() => return Err(Failure::DataLoss(anyhow!(e))),
        Err(e) => return Err(Failure::Runtime(anyhow!(e).context("worker"))),
    };
    let s = &report.stats;
    println!(
        "omnimeter: {} events, {} processed, rejected {}, late {}, duplicates {}, journeys {}, {:.1}s{}",
        s.inputs,
        s.processed,
        s.malformed(),
        s.late(),
        s.duplicates,
        s.journeys_closed_total(),
        started.elapsed().as_secs_f64(),
        if report.reached_end { ", caught up" } else { ", stopped" }
    );
    // Background tasks (signal watcher, progress) end with the runtime.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}

/// Readiness and read-on-demand gauges of a consumer worker.
struct WorkerProbe {
    status: Arc<Mutex<WorkerStatus>>,
    stop: Arc<AtomicBool>,
}

/// A poll loop that has not refreshed its status for this long is stuck.
const STALL: Duration = Duration::from_secs(30);

impl Probe for WorkerProbe {
    fn refresh(&self, metrics: &Metrics) {
        let st = self.status.lock().unwrap_or_else(|e| e.into_inner()).clone();
        metrics.set_partitions(&st.topic, &st.partition_health());
        metrics.set_active_journeys(st.open_journeys());
    }

    fn readiness(&self) -> Result<String, String> {
        if self.stop.load(Ordering::Relaxed) {
            return Err("stopping".into());
        }
        let st = self.status.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(trouble) = st.trouble() {
            return Err(trouble);
        }
        if st.refreshed_at.is_some_and(|t| t.elapsed() > STALL) {
            return Err(format!("poll loop stalled for {}s", st.refreshed_at.map_or(0, |t| t.elapsed().as_secs())));
        }
        if st.partitions.is_empty() {
            return Err(if st.assigned {
                "no partitions assigned".into()
            } else {
                "joining the consumer group".into()
            });
        }
        let lag = st.lag();
        let lost = st.lost_summary().map_or(String::new(), |l| format!("; {l}"));
        Ok(format!("{} partitions of {}, lag {lag}{lost}", st.partitions.len(), st.topic))
    }
}

/// Resolves once `flag` is set: the HTTP endpoint's shutdown, tied to the worker's stop flag.
pub(crate) async fn until_set(flag: Arc<AtomicBool>) {
    while !flag.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) async fn stop_on_signal(stop: Arc<AtomicBool>) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("signal received: stopping gracefully");
    stop.store(true, Ordering::Relaxed);
}

/// One progress line every 10 s: events/s, lag, journeys closed.
async fn report_progress(status: Arc<Mutex<WorkerStatus>>) {
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let st = status.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let lag = st.lag();
        let rate = (st.stats.inputs.saturating_sub(last.1)) as f64 / last.0.elapsed().as_secs_f64();
        last = (Instant::now(), st.stats.inputs);
        tracing::info!(
            partitions = st.partitions.len(),
            events = st.stats.inputs,
            events_per_s = rate.round(),
            lag,
            journeys_closed = st.stats.journeys_closed_total(),
            "progress"
        );
    }
}
