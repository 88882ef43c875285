//! `omnimeter generate`: seeded synthetic omnichannel traffic as NDJSON on stdout,
//! or produced to a Kafka topic keyed by `customer_id` (by `type:value` of the smallest identity
//! for an event without one, SPEC §6), optionally at a live rate.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use omnimeter_engine::DurationMs;
use omnimeter_generate::{GenConfig, Generator, Timestamps};
use omnimeter_kafka::EventProducer;

#[derive(Debug, Args, Clone)]
pub(crate) struct GenerateArgs {
    /// Distinct customers.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub(crate) customers: u64,
    /// Days during which journeys start.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) days: u32,
    /// Event time of the first events: RFC 3339 (`2026-11-02T08:00:00Z`) or `now`.
    #[arg(long, value_name = "TIME", default_value = "2026-11-02T08:00:00Z")]
    pub(crate) start: String,
    /// Seed: equal seeds and options give equal bytes.
    #[arg(long, value_name = "N", default_value_t = 42)]
    pub(crate) seed: u64,
    /// Events per second (live streaming); 0 = as fast as possible.
    #[arg(long, value_name = "EV/S", default_value_t = 0.0)]
    pub(crate) rate: f64,
    /// Bound on arrival disorder: an event may come up to D after later-stamped ones.
    #[arg(long, value_name = "D", default_value = "2s")]
    pub(crate) disorder: DurationMs,
    /// Share of lines replaced by malformed ones (0 to 1).
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    pub(crate) bad_rate: f64,
    /// Share of events sent twice (0 to 1).
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    pub(crate) duplicate_rate: f64,
    /// Add identity stories (SPEC §6): anonymous web visits under a cookie that log in soon,
    /// late or never, calls and WhatsApp messages by phone number, store visits by loyalty
    /// card, household phones shared by two customers.
    #[arg(long)]
    pub(crate) identities: bool,
    /// How `ts` is written: `producers` (a mix of `Z`, whole seconds, offsets and epoch
    /// ms, as real producers send), `generator` (mostly `…123Z`: the default before
    /// 2026-12, for the bytes of earlier seeds), or one form only: `z`, `offset`,
    /// `epoch`, `seconds`.
    #[arg(long, value_name = "FORM", value_enum, default_value_t = TsForm::Producers)]
    pub(crate) timestamps: TsForm,
    /// Stop after this many lines (default: when every story has ended).
    #[arg(long, value_name = "N")]
    pub(crate) max_events: Option<u64>,
    /// Produce to Kafka instead of stdout (needs --topic).
    #[arg(long, value_name = "HOST:PORT[,...]")]
    pub(crate) brokers: Option<String>,
    /// Topic to produce to; created with --partitions when missing.
    #[arg(long, value_name = "T")]
    pub(crate) topic: Option<String>,
    /// Partitions of a topic that has to be created.
    #[arg(long, value_name = "N", default_value_t = 6)]
    pub(crate) partitions: i32,
}

impl GenerateArgs {
    pub(crate) fn gen_config(&self) -> Result<GenConfig> {
        let start_ms = if self.start == "now" {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
        } else {
            omnimeter_engine::time::parse_rfc3339(&self.start).ok_or_else(|| {
                anyhow!("--start {:?}: expected RFC 3339 like 2026-11-02T08:00:00Z, or now", self.start)
            })?
        };
        for (flag, v) in [("--bad-rate", self.bad_rate), ("--duplicate-rate", self.duplicate_rate)] {
            if !(0.0..=1.0).contains(&v) {
                bail!("{flag} {v}: expected a share from 0 to 1");
            }
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            bail!("--rate {}: expected events per second, 0 or more", self.rate);
        }
        if self.customers == 0 || self.days == 0 {
            bail!("--customers and --days: expected 1 or more");
        }
        Ok(GenConfig {
            seed: self.seed,
            customers: self.customers,
            days: self.days,
            start_ms,
            disorder_ms: self.disorder.0.max(0),
            bad_rate: self.bad_rate,
            duplicate_rate: self.duplicate_rate,
            identities: self.identities,
            timestamps: match self.timestamps {
                TsForm::Generator => Timestamps::Generator,
                TsForm::Producers => Timestamps::Producers,
                TsForm::Z => Timestamps::Zulu,
                TsForm::Offset => Timestamps::Offsets,
                TsForm::Epoch => Timestamps::Epoch,
                TsForm::Seconds => Timestamps::WholeSeconds,
            },
        })
    }
}

/// `--timestamps`: [`Timestamps`] as a flag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TsForm {
    Generator,
    Producers,
    Z,
    Offset,
    Epoch,
    Seconds,
}

/// Holds a steady event rate: sleeps when ahead of `rate` events per second.
pub(crate) struct Pacer {
    rate: f64,
    started: Instant,
}

impl Pacer {
    pub(crate) fn new(rate: f64) -> Self {
        Pacer { rate, started: Instant::now() }
    }

    pub(crate) fn wait(&self, sent: u64) {
        if self.rate <= 0.0 || sent % 64 != 0 {
            return;
        }
        let due = Duration::from_secs_f64(sent as f64 / self.rate);
        if let Some(ahead) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
}

/// Progress on stderr every 2 s.
struct Progress {
    started: Instant,
    last: Instant,
}

impl Progress {
    fn tick(&mut self, lines: u64, ts_ms: i64) {
        if self.last.elapsed() < Duration::from_secs(2) {
            return;
        }
        self.last = Instant::now();
        let rate = lines as f64 / self.started.elapsed().as_secs_f64();
        eprintln!(
            "omnimeter generate: {lines} events, {rate:.0} events/s, event time {}",
            omnimeter_engine::time::format_rfc3339(ts_ms)
        );
    }
}

pub(crate) fn run(args: &GenerateArgs) -> Result<()> {
    let mut generator = Generator::new(args.gen_config()?);
    let pacer = Pacer::new(args.rate);
    let mut progress = Progress { started: Instant::now(), last: Instant::now() };
    let mut line = Vec::with_capacity(1024);
    let mut lines = 0u64;
    match (&args.brokers, &args.topic) {
        (None, None) => {
            let stdout = io::stdout();
            let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
            while args.max_events.is_none_or(|m| lines < m) {
                line.clear();
                let Some(meta) = generator.next_event(&mut line) else { break };
                line.push(b'\n');
                lines += 1;
                if let Err(e) = out.write_all(&line) {
                    // A closed pipe (`| head`) is the reader saying it has enough.
                    if e.kind() == io::ErrorKind::BrokenPipe {
                        return Ok(());
                    }
                    return Err(e).context("writing stdout");
                }
                if args.rate > 0.0 {
                    out.flush().context("writing stdout")?;
                }
                pacer.wait(lines);
                progress.tick(lines, meta.ts);
            }
            match out.flush() {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e).context("writing stdout"),
                _ => Ok(()),
            }
        }
        (Some(brokers), Some(topic)) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime
                .block_on(omnimeter_kafka::ensure_topic(brokers, topic, args.partitions, Duration::from_secs(10)))
                .with_context(|| {
                    format!(
                        "creating topic {topic} on {brokers}: is a broker running at {brokers}? (deploy/local/broker.sh starts one)"
                    )
                })?;
            let producer = EventProducer::new(brokers, topic, &[]).context("starting the producer")?;
            while args.max_events.is_none_or(|m| lines < m) {
                line.clear();
                let Some(meta) = generator.next_event(&mut line) else { break };
                lines += 1;
                producer.send(meta.key().as_bytes(), &line).context("producing")?;
                pacer.wait(lines);
                progress.tick(lines, meta.ts);
            }
            producer.flush(Duration::from_secs(30)).context("waiting for the broker to acknowledge")?;
            if producer.failed() > 0 {
                bail!("{} of {lines} events were not delivered to {topic}", producer.failed());
            }
            eprintln!("omnimeter generate: {lines} events produced to {topic} on {brokers}");
            Ok(())
        }
        _ => bail!("--brokers and --topic go together (without both, events go to stdout)"),
    }
}
