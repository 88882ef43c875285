//! Command-line arguments (SPEC §5).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use omnimeter_engine::{DurationMs, EngineConfig};

#[derive(Debug, Parser)]
#[command(
    name = "omnimeter",
    version,
    about = "Measures omnichannel customer journeys: NDJSON or Kafka in, Parquet and Prometheus out"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the journey engine: a Kafka consumer worker (`--config`, flags), or over
    /// an NDJSON file or stdin (`--input`).
    Run(RunArgs),
    /// Synthetic omnichannel events, seeded and reproducible: NDJSON to stdout, or to a
    /// Kafka topic keyed by customer_id.
    Generate(crate::generate::GenerateArgs),
    /// The whole system on this machine: an in-process Kafka cluster, generated traffic,
    /// two workers, /metrics, live progress, then report.html.
    Demo(crate::demo::DemoArgs),
    /// A self-contained HTML journey report from an output folder's Parquet tables.
    Report(crate::report::ReportArgs),
    /// The identity stage (SPEC §6): reads the raw topic, stitches events known only by
    /// a cookie, phone or card to their customer across partitions, and writes them
    /// to the topic `run` workers read (`kafka.input = "resolved"`).
    Resolve(crate::resolve_mode::ResolveArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// NDJSON input file, or `-` for stdin: file mode, no Kafka.
    #[arg(long, value_name = "FILE|-")]
    pub(crate) input: Option<PathBuf>,
    /// Output root for the Parquet tables (and a worker's checkpoints): a directory,
    /// file:///path or s3://bucket/prefix (overrides `output.url`; bucket credentials
    /// from `[output.s3]`, `OMNIMETER_OUTPUT_S3_*` or the `AWS_*` variables).
    #[arg(long, value_name = "DIR|URL")]
    pub(crate) output: Option<String>,
    /// TOML configuration (see config/omnimeter.example.toml); `OMNIMETER_*` variables override it, flags override both.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Kafka bootstrap servers (overrides `kafka.brokers`).
    #[arg(long, value_name = "HOST:PORT[,...]")]
    pub(crate) brokers: Option<String>,
    /// Topic to consume (overrides `kafka.topics`).
    #[arg(long, value_name = "T")]
    pub(crate) topic: Option<String>,
    /// Consumer group (overrides `kafka.group`); workers with the same group share the partitions.
    #[arg(long, value_name = "G")]
    pub(crate) group: Option<String>,
    /// Serve /metrics, /healthz and /readyz here (overrides `metrics.addr`).
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) metrics_addr: Option<String>,
    /// Consume until every held partition is caught up with the broker's high watermark,
    /// then close journeys, write everything, commit and exit 0.
    #[arg(long)]
    pub(crate) until_end: bool,
    /// File mode with --metrics-addr: after the input ends, keep serving the final
    /// metrics for D (so a scraper sees them) before exiting; /readyz answers 503 meanwhile.
    #[arg(long, value_name = "D")]
    pub(crate) linger: Option<DurationMs>,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
    /// Event time per published batch: a partition cuts its output when its watermark
    /// enters a new multiple of D (overrides `output.file_period`; default 1h).
    #[arg(long, value_name = "D")]
    pub(crate) file_period: Option<DurationMs>,
    /// Rows waiting that force a cut before the period ends (overrides
    /// `output.file_rows`; default 100000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub(crate) file_rows: Option<u64>,
}

/// Engine settings as flags; an absent flag keeps the SPEC default.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct EngineArgs {
    /// Tumbling window length [default: 1m].
    #[arg(long, value_name = "D")]
    pub(crate) window: Option<DurationMs>,
    /// Inactivity that ends a sessionized journey [default: 30m].
    #[arg(long, value_name = "D")]
    pub(crate) gap: Option<DurationMs>,
    /// Inactivity that ends an explicit `journey_id` thread [default: 24h].
    #[arg(long, value_name = "D")]
    pub(crate) thread_gap: Option<DurationMs>,
    /// How far behind the highest seen `ts` an event may arrive [default: 5s].
    #[arg(long, value_name = "D")]
    pub(crate) allowed_lateness: Option<DurationMs>,
    /// Time within which a contact must get a reply [default: 15m].
    #[arg(long, value_name = "D")]
    pub(crate) reply_sla: Option<DurationMs>,
    /// Path segments kept before `>…` [default: 12].
    #[arg(long, value_name = "N")]
    pub(crate) max_path: Option<usize>,
    /// How long after an anonymous event a link still claims it (SPEC §6) [default: 30m].
    #[arg(long, value_name = "D")]
    pub(crate) identify_wait: Option<DurationMs>,
}

impl EngineArgs {
    /// Applies the flags that were given over a config file's engine section.
    pub(crate) fn apply_to_section(&self, s: &mut omnimeter_config::EngineSection) {
        let merged = self.apply(EngineConfig::from(&*s));
        *s = merged.into();
    }

    /// Applies the flags that were given over `base`.
    pub(crate) fn apply(&self, base: EngineConfig) -> EngineConfig {
        EngineConfig {
            window: self.window.unwrap_or(base.window),
            gap: self.gap.unwrap_or(base.gap),
            thread_gap: self.thread_gap.unwrap_or(base.thread_gap),
            allowed_lateness: self.allowed_lateness.unwrap_or(base.allowed_lateness),
            reply_sla: self.reply_sla.unwrap_or(base.reply_sla),
            max_path: self.max_path.unwrap_or(base.max_path),
            identify_wait: self.identify_wait.unwrap_or(base.identify_wait),
            resolve_identities: base.resolve_identities,
            resolved_input: base.resolved_input,
        }
    }
}
