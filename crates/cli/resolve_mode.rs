//! `omnimeter resolve`: the identity stage of SPEC §6 between the raw topic and the
//! topic `run` workers read. Configuration like `run` (defaults ← file ←
//! `OMNIMETER_*` ← flags), the resolver on a blocking thread, metrics over HTTP.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use clap::Args;
use omnimeter_config::Config;
use omnimeter_engine::DurationMs;
use omnimeter_http::Probe;
use omnimeter_kafka::ResolveOptions;
use omnimeter_metrics::{Metrics, MetricsSettings};

use crate::Failure;
use crate::kafka_mode::{init_logging, std_duration, until_set};

#[derive(Debug, Args)]
pub(crate) struct ResolveArgs {
    /// TOML configuration (its `[kafka]`, `[resolve]`, `[output]` and `[engine]` sections).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Kafka bootstrap servers (overrides `kafka.brokers`).
    #[arg(long, value_name = "HOST:PORT[,...]")]
    pub(crate) brokers: Option<String>,
    /// The raw topic (overrides `kafka.topics`).
    #[arg(long, value_name = "T")]
    pub(crate) topic: Option<String>,
    /// Where resolved events go (overrides `resolve.output_topic`).
    #[arg(long, value_name = "T")]
    pub(crate) output_topic: Option<String>,
    /// Consumer group of the resolvers (overrides `resolve.group`).
    #[arg(long, value_name = "G")]
    pub(crate) group: Option<String>,
    /// Where the resolvers' checkpoints go: a directory or s3://bucket/prefix shared by
    /// every resolver (overrides `output.url`).
    #[arg(long, value_name = "DIR|URL")]
    pub(crate) output: Option<String>,
    /// Serve /metrics, /healthz and /readyz here (overrides `metrics.addr`).
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) metrics_addr: Option<String>,
    /// Read every raw partition to its end, release everything, exit 0 (backfills, tests).
    #[arg(long)]
    pub(crate) until_end: bool,
    /// How long after an anonymous event a link still claims it [default: 30m].
    #[arg(long, value_name = "D")]
    pub(crate) identify_wait: Option<DurationMs>,
    /// How far behind the highest seen `ts` an event may arrive [default: 5s].
    #[arg(long, value_name = "D")]
    pub(crate) allowed_lateness: Option<DurationMs>,
}

fn options(args: &ResolveArgs) -> Result<(Config, ResolveOptions), Failure> {
    let usage = |e: anyhow::Error| Failure::Usage(e);
    let mut cfg = Config::load(args.config.as_deref(), std::env::vars()).map_err(|e| usage(anyhow!(e)))?;
    if let Some(b) = &args.brokers {
        cfg.kafka.brokers = b.clone();
    }
    if let Some(t) = &args.topic {
        cfg.kafka.topics = vec![t.clone()];
    }
    if let Some(t) = &args.output_topic {
        cfg.resolve.output_topic = t.clone();
    }
    if let Some(g) = &args.group {
        cfg.resolve.group = g.clone();
    }
    if let Some(o) = &args.output {
        cfg.output.url = o.clone();
    }
    if let Some(a) = &args.metrics_addr {
        cfg.metrics.addr = a.clone();
    }
    if let Some(d) = args.identify_wait {
        cfg.engine.identify_wait = d;
    }
    if let Some(d) = args.allowed_lateness {
        cfg.engine.allowed_lateness = d;
    }
    cfg.validate().map_err(|e| usage(anyhow!(e)))?;
    let [topic] = cfg.kafka.topics.as_slice() else {
        return Err(usage(anyhow!("kafka.topics = {:?}: expected the one raw topic to resolve", cfg.kafka.topics)));
    };
    if *topic == cfg.resolve.output_topic || *topic == cfg.resolve.log_topic {
        return Err(usage(anyhow!(
            "kafka.topics = [{topic:?}]: the raw topic must differ from resolve.output_topic and resolve.log_topic"
        )));
    }
    let output = crate::output::output_of(&cfg.output).map_err(|e| usage(anyhow!(e)))?;
    let store = omnimeter_parquet::Store::open(&output).map_err(|e| usage(anyhow!(e)))?;
    let engine = cfg.engine();
    let metrics = Arc::new(Metrics::new(MetricsSettings {
        label_limit: cfg.metrics.label_limit,
        window_ms: engine.window.0,
        gap_ms: engine.gap.0,
        thread_gap_ms: engine.thread_gap.0,
    }));
    let opts = ResolveOptions {
        brokers: cfg.kafka.brokers.clone(),
        topic: topic.clone(),
        output_topic: cfg.resolve.output_topic.clone(),
        log_topic: cfg.resolve.log_topic.clone(),
        group: cfg.resolve.group.clone(),
        properties: cfg.kafka.properties.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        session_timeout: std_duration(cfg.kafka.session_timeout),
        fetch_max_wait: std_duration(cfg.kafka.fetch_max_wait),
        commit_interval: std_duration(cfg.kafka.commit_interval),
        idle_timeout: std_duration(cfg.resolve.idle_timeout),
        allowed_lateness: engine.allowed_lateness.0,
        identify_wait: engine.identify_wait.0,
        store,
        until_end: args.until_end,
        metrics,
    };
    Ok((cfg, opts))
}

/// How many partitions the raw topic has (the resolved topic gets as many by default).
async fn raw_partitions(brokers: &str, topic: &str) -> anyhow::Result<i32> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let topic = topic.to_owned();
    let n = tokio::task::spawn_blocking(move || -> anyhow::Result<i32> {
        let md = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        Ok(md.topics().iter().find(|t| t.name() == topic).map_or(0, |t| t.partitions().len() as i32))
    })
    .await??;
    Ok(n)
}

struct ResolverProbe {
    stop: Arc<AtomicBool>,
}

impl Probe for ResolverProbe {
    fn refresh(&self, _: &Metrics) {}

    fn readiness(&self) -> Result<String, String> {
        if self.stop.load(Ordering::Relaxed) { Err("stopping".into()) } else { Ok("resolving".into()) }
    }
}

pub(crate) fn run(args: &ResolveArgs) -> Result<(), Failure> {
    let (cfg, opts) = options(args)?;
    init_logging("info");
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
    let report = runtime.block_on(async {
        let raw = raw_partitions(&opts.brokers, &opts.topic).await.with_context(|| {
            format!(
                "reading the partitions of {} on {}: is a broker running there? (deploy/local/broker.sh starts one)",
                opts.topic, opts.brokers
            )
        })?;
        if raw == 0 {
            anyhow::bail!("topic {} does not exist on {}: create it, or produce to it first", opts.topic, opts.brokers);
        }
        let out_partitions = if cfg.resolve.output_partitions > 0 { cfg.resolve.output_partitions } else { raw };
        let timeout = Duration::from_secs(10);
        omnimeter_kafka::ensure_topic(&opts.brokers, &opts.output_topic, out_partitions, timeout)
            .await
            .with_context(|| format!("creating topic {}", opts.output_topic))?;
        omnimeter_kafka::ensure_topic(&opts.brokers, &opts.log_topic, 1, timeout)
            .await
            .with_context(|| format!("creating topic {}", opts.log_topic))?;
        let stop = Arc::new(AtomicBool::new(false));
        tokio::spawn(crate::kafka_mode::stop_on_signal(Arc::clone(&stop)));
        if let Some(listener) = listener {
            let probe = Arc::new(ResolverProbe { stop: Arc::clone(&stop) });
            let stopped = until_set(Arc::clone(&stop));
            let metrics = Arc::clone(&opts.metrics);
            tokio::spawn(async move {
                if let Err(e) = omnimeter_http::serve(listener, metrics, probe, stopped).await {
                    tracing::error!(error = %e, "metrics endpoint stopped");
                }
            });
        }
        let resolver = tokio::task::spawn_blocking(move || omnimeter_kafka::resolve(&opts, &stop));
        Ok(resolver.await?)
    });
    let report = match report.map_err(Failure::Runtime)? {
        Ok(r) => r,
        Err(e) => return Err(Failure::Runtime(anyhow!(e).context("resolver"))),
    };
    let c = &report.counts;
    println!(
        "omnimeter resolve: {} events, identities {} linked, {} conflicts, anonymous events {} resolved, {} not, {:.1}s{}",
        report.inputs,
        c.links,
        c.conflicts,
        c.resolved,
        c.unresolved,
        started.elapsed().as_secs_f64(),
        if report.reached_end { ", caught up" } else { ", stopped" }
    );
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}
