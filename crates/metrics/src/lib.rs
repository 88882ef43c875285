//! Prometheus metrics of SPEC §4. Adapters feed it what the engine hands out (live
//! tallies and closed journeys) and what they know of the pipeline (lag, offsets,
//! checkpoints); [`Metrics::encode`] renders the text format for `GET /metrics`.

mod labels;
mod windows;

use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use omnimeter_engine::{IdentityCounts, JourneyRow, Outcome, RejectReason, TABLES, Tally};
use prometheus::{
    CounterVec, Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub use labels::{NO_STEP, OTHER};
pub use windows::FinalWindow;

use labels::LabelGuard;
use windows::FinalWindows;

/// Buckets of `omnimeter_resolution_seconds`: resolutions run from seconds (a chat
/// answer) to days (a case thread).
pub const RESOLUTION_BUCKETS: [f64; 19] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0,
    172800.0, 345600.0, 604800.0,
];

/// Settings the metrics need from the engine and config.
#[derive(Debug, Clone, Copy)]
pub struct MetricsSettings {
    /// Distinct `channel` (and `step`) label values kept before the rest fold into `other`.
    pub label_limit: usize,
    pub window_ms: i64,
    pub gap_ms: i64,
    pub thread_gap_ms: i64,
}

/// One partition's pipeline health, as an adapter sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionHealth {
    pub partition: i32,
    /// Broker high watermark minus our position; `None` before the first fetch response.
    pub lag: Option<i64>,
    /// Last committed offset; `None` before the first commit.
    pub committed: Option<i64>,
    /// Event-time watermark, epoch ms.
    pub watermark_ms: Option<i64>,
    /// Seconds since the partition's state was last checkpointed.
    pub checkpoint_age_seconds: Option<f64>,
}

/// Every metric omnimeter exports, in its own registry.
pub struct Metrics {
    registry: Registry,
    inputs: IntCounter,
    events: IntCounterVec,
    rejected: IntCounterVec,
    late: IntCounter,
    duplicates: IntCounter,
    hops: IntCounterVec,
    journeys_closed: IntCounterVec,
    active_journeys: IntGauge,
    resolution: HistogramVec,
    friction: IntCounterVec,
    friction_steps: IntCounterVec,
    conversions: IntCounterVec,
    conversion_value: CounterVec,
    window_conversion_rate: Gauge,
    window_resolution_p90: Gauge,
    window_mean_hops: Gauge,
    window_start: Gauge,
    window_finalized_at: Gauge,
    consumer_lag: IntGaugeVec,
    committed_offset: IntGaugeVec,
    watermark: GaugeVec,
    checkpoint_age: GaugeVec,
    parquet_files: IntCounterVec,
    parquet_rows: IntCounterVec,
    sink_errors: IntCounter,
    lost_offsets: IntCounterVec,
    identity_links: IntCounter,
    identity_conflicts: IntCounter,
    anonymous_events: IntCounterVec,
    labels_folded: IntCounter,
    guard: Mutex<LabelGuard>,
    windows: Mutex<FinalWindows>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_seconds() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Registers a metric; names are constants of this file, so failing is a programming error.
fn reg<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: prometheus::Result<M>) -> M {
    let m = m.expect("metric definitions are valid");
    r.register(Box::new(m.clone())).expect("metric names are unique");
    m
}

impl Metrics {
    pub fn new(s: MetricsSettings) -> Self {
        let r = Registry::new_custom(Some("omnimeter".into()), None).expect("valid prefix");
        let counter_vec =
            |name: &str, help: &str, labels: &[&str]| reg(&r, IntCounterVec::new(Opts::new(name, help), labels));
        let gauge = |name: &str, help: &str| reg(&r, Gauge::new(name, help));
        let m = Metrics {
            inputs: reg(
                &r,
                IntCounter::new(
                    "input_events_total",
                    "Raw events read (lines or messages), whatever became of them; rate() gives events/s",
                ),
            ),
            events: counter_vec(
                "events_total",
                "Processed events (accepted, not late, not duplicates) by channel and type",
                &["channel", "type"],
            ),
            rejected: counter_vec(
                "rejected_total",
                "Malformed events sent to the dead-letter output, by reason (late events are in late_events_total)",
                &["reason"],
            ),
            late: reg(
                &r,
                IntCounter::new("late_events_total", "Events below their partition's watermark, dead-lettered as late"),
            ),
            duplicates: reg(
                &r,
                IntCounter::new("duplicates_total", "Events whose event_id their journey had already seen"),
            ),
            hops: counter_vec(
                "channel_hops_total",
                "Channel changes between adjacent events of a journey",
                &["from", "to"],
            ),
            journeys_closed: counter_vec("journeys_closed_total", "Journeys closed, by outcome", &["outcome"]),
            active_journeys: reg(&r, IntGauge::new("active_journeys", "Journeys open in this worker's partitions")),
            resolution: reg(
                &r,
                HistogramVec::new(
                    HistogramOpts::new("resolution_seconds", "Resolution time of closed journeys, by first channel")
                        .buckets(RESOLUTION_BUCKETS.to_vec()),
                    &["first_channel"],
                ),
            ),
            friction: counter_vec("friction_total", "Friction points by kind and channel", &["kind", "channel"]),
            friction_steps: counter_vec(
                "friction_steps_total",
                "Friction points by kind, channel and step (\"none\" without a step)",
                &["kind", "channel", "step"],
            ),
            conversions: counter_vec("conversions_total", "Converted journeys, by last channel", &["last_channel"]),
            conversion_value: reg(
                &r,
                CounterVec::new(
                    Opts::new("conversion_value_total", "Conversion value of converted journeys, by last channel"),
                    &["last_channel"],
                ),
            ),
            window_conversion_rate: gauge(
                "window_conversion_rate",
                "Converted journeys / journeys in the last final window",
            ),
            window_resolution_p90: gauge(
                "window_resolution_p90_seconds",
                "p90 resolution time in the last final window (NaN when none resolved)",
            ),
            window_mean_hops: gauge("window_mean_hops", "Mean channel hops per journey in the last final window"),
            window_start: gauge(
                "window_start_seconds",
                "Start (event time) of the last final window the window_* gauges describe",
            ),
            window_finalized_at: gauge(
                "window_finalized_timestamp_seconds",
                "Wall-clock time the watermark last completed a window (process start before that)",
            ),
            consumer_lag: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new("consumer_lag", "Broker high watermark minus this worker's position"),
                    &["topic", "partition"],
                ),
            ),
            lost_offsets: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "lost_offsets_total",
                        "Offsets the broker no longer had when this worker needed them (skipped: on_data_loss = skip)",
                    ),
                    &["topic", "partition"],
                ),
            ),
            identity_links: reg(
                &r,
                IntCounter::new(
                    "identity_links_total",
                    "Identities (cookie, phone, card...) that got their owner (SPEC §6)",
                ),
            ),
            identity_conflicts: reg(
                &r,
                IntCounter::new(
                    "identity_conflicts_total",
                    "Links of an owned identity to another customer (shared devices), ignored",
                ),
            ),
            anonymous_events: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "anonymous_events_total",
                        "Events that came without a customer, by whether a link gave them one",
                    ),
                    &["resolved"],
                ),
            ),
            committed_offset: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new("committed_offset", "Last offset committed (everything before it is durable)"),
                    &["topic", "partition"],
                ),
            ),
            watermark: reg(
                &r,
                GaugeVec::new(Opts::new("watermark_seconds", "Event-time watermark of the partition"), &["partition"]),
            ),
            checkpoint_age: reg(
                &r,
                GaugeVec::new(
                    Opts::new("checkpoint_age_seconds", "Seconds since the partition's state was last checkpointed"),
                    &["topic", "partition"],
                ),
            ),
            parquet_files: counter_vec("parquet_files_total", "Parquet files published, by table", &["table"]),
            parquet_rows: counter_vec("parquet_rows_total", "Rows in published Parquet files, by table", &["table"]),
            sink_errors: reg(
                &r,
                IntCounter::new(
                    "sink_errors_total",
                    "Failed output writes (retried; offsets stay uncommitted meanwhile)",
                ),
            ),
            labels_folded: reg(
                &r,
                IntCounter::new(
                    "label_values_folded_total",
                    "Channel or step label values folded into \"other\" by the cardinality guard",
                ),
            ),
            guard: Mutex::new(LabelGuard::new(s.label_limit)),
            windows: Mutex::new(FinalWindows::new(s.window_ms, s.gap_ms, s.thread_gap_ms)),
            registry: r,
        };
        reg(&m.registry, Gauge::new("window_length_seconds", "Length of the tumbling windows"))
            .set(s.window_ms as f64 / 1000.0);
        // Start-up counts as progress, so a fresh worker is not already "stalled".
        m.window_finalized_at.set(now_seconds());
        m.window_resolution_p90.set(f64::NAN);
        m.window_conversion_rate.set(f64::NAN);
        m.window_mean_hops.set(f64::NAN);
        // Every table and outcome exists from the start, so rates and alerts see zeros, not gaps.
        for t in TABLES {
            m.parquet_files.with_label_values(&[t]);
            m.parquet_rows.with_label_values(&[t]);
        }
        for o in Outcome::ALL {
            m.journeys_closed.with_label_values(&[o.as_str()]);
        }
        for resolved in ["true", "false"] {
            m.anonymous_events.with_label_values(&[resolved]);
        }
        for r in RejectReason::ALL.iter().filter(|r| **r != RejectReason::Late) {
            m.rejected.with_label_values(&[r.as_str()]);
        }
        m
    }

    /// What the engine folded since the last call.
    pub fn record_tally(&self, t: &Tally) {
        self.inputs.inc_by(t.inputs);
        self.record_identity(&t.identity);
        self.duplicates.inc_by(t.duplicates);
        for r in RejectReason::ALL {
            let n = t.rejected[r.index()];
            if n > 0 {
                if r == RejectReason::Late {
                    self.late.inc_by(n)
                } else {
                    self.rejected.with_label_values(&[r.as_str()]).inc_by(n)
                }
            }
        }
        let mut g = lock(&self.guard);
        for (channel, ty, n) in &t.events {
            self.events.with_label_values(&[g.channel(channel), ty.as_str()]).inc_by(*n);
        }
        for (from, to, n) in &t.hops {
            let from = g.channel(from);
            self.hops.with_label_values(&[from, g.channel(to)]).inc_by(*n);
        }
        for (kind, channel, step, n) in &t.friction {
            let channel = g.channel(channel);
            self.friction.with_label_values(&[kind.as_str(), channel]).inc_by(*n);
            self.friction_steps.with_label_values(&[kind.as_str(), channel, g.step(step.as_deref())]).inc_by(*n);
        }
        self.sync_folded(&g);
    }

    /// Journeys the engine closed since the last call.
    pub fn record_journeys(&self, journeys: &[JourneyRow]) {
        let mut g = lock(&self.guard);
        let mut w = lock(&self.windows);
        for j in journeys {
            self.journeys_closed.with_label_values(&[j.outcome.as_str()]).inc();
            if let Some(ms) = j.resolution_ms {
                self.resolution.with_label_values(&[g.channel(&j.first_channel)]).observe(ms as f64 / 1000.0);
            }
            if j.outcome == Outcome::Converted {
                let last = g.channel(&j.last_channel);
                self.conversions.with_label_values(&[last]).inc();
                self.conversion_value.with_label_values(&[last]).inc_by(j.conversion_value.max(0.0));
            }
            w.add(j);
        }
        self.sync_folded(&g);
    }

    fn sync_folded(&self, g: &LabelGuard) {
        let seen = self.labels_folded.get();
        if g.folded > seen {
            self.labels_folded.inc_by(g.folded - seen);
        }
    }

    /// The lowest watermark of the partitions feeding this process moved.
    pub fn advance_windows(&self, watermark: Option<i64>) {
        let r = lock(&self.windows).advance(watermark);
        self.show_window(r);
    }

    /// A finite input ended: every window is final.
    pub fn finish_windows(&self) {
        let r = lock(&self.windows).finish();
        self.show_window(r);
    }

    fn show_window(&self, (newest, moved): (Option<FinalWindow>, bool)) {
        if moved {
            self.window_finalized_at.set(now_seconds());
        }
        if let Some(f) = newest {
            self.window_start.set(f.start_ms as f64 / 1000.0);
            self.window_conversion_rate.set(f.conversion_rate);
            self.window_mean_hops.set(f.mean_hops);
            self.window_resolution_p90.set(f.resolution_p90_ms.map_or(f64::NAN, |ms| ms / 1000.0));
        }
    }

    /// Files and rows a sink published, per table in [`TABLES`] order.
    pub fn record_written(&self, files: &[usize; TABLES.len()], rows: &[usize; TABLES.len()]) {
        for (i, t) in TABLES.iter().enumerate() {
            self.parquet_files.with_label_values(&[t]).inc_by(files[i] as u64);
            self.parquet_rows.with_label_values(&[t]).inc_by(rows[i] as u64);
        }
    }

    /// Offsets skipped because the broker had deleted them (SPEC §4 `on_data_loss = "skip"`).
    /// SPEC §6 counts: from the engine (file mode) or the resolve stage.
    pub fn record_identity(&self, c: &IdentityCounts) {
        self.identity_links.inc_by(c.links);
        self.identity_conflicts.inc_by(c.conflicts);
        self.anonymous_events.with_label_values(&["true"]).inc_by(c.resolved);
        self.anonymous_events.with_label_values(&["false"]).inc_by(c.unresolved);
    }

    pub fn record_lost_offsets(&self, topic: &str, partition: i32, count: u64) {
        self.lost_offsets.with_label_values(&[topic, partition.to_string().as_str()]).inc_by(count);
    }

    pub fn record_sink_error(&self) {
        self.sink_errors.inc();
    }

    pub fn set_active_journeys(&self, n: usize) {
        self.active_journeys.set(n as i64);
    }

    /// Replaces the per-partition gauges: partitions no longer held disappear.
    pub fn set_partitions(&self, topic: &str, parts: &[PartitionHealth]) {
        self.consumer_lag.reset();
        self.committed_offset.reset();
        self.watermark.reset();
        self.checkpoint_age.reset();
        for p in parts {
            let partition = p.partition.to_string();
            let tp = [topic, partition.as_str()];
            if let Some(lag) = p.lag {
                self.consumer_lag.with_label_values(&tp).set(lag.max(0));
            }
            if let Some(c) = p.committed {
                self.committed_offset.with_label_values(&tp).set(c);
            }
            if let Some(w) = p.watermark_ms {
                self.watermark.with_label_values(&[partition.as_str()]).set(w as f64 / 1000.0);
            }
            if let Some(a) = p.checkpoint_age_seconds {
                self.checkpoint_age.with_label_values(&tp).set(a);
            }
        }
    }

    /// Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        // Encoding our own registry into memory cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Content type of [`encode`](Self::encode)'s output.
    pub fn content_type(&self) -> &'static str {
        prometheus::TEXT_FORMAT
    }

    /// The most frequent friction point so far as `(kind, channel, count)`, for progress lines.
    pub fn top_friction(&self) -> Option<(String, String, u64)> {
        use prometheus::core::Collector;
        let label = |m: &prometheus::proto::Metric, name: &str| {
            m.get_label().iter().find(|l| l.name() == name).map(|l| l.value().to_owned()).unwrap_or_default()
        };
        self.friction
            .collect()
            .iter()
            .flat_map(|f| f.get_metric().iter())
            .map(|m| (label(m, "kind"), label(m, "channel"), m.get_counter().get_value() as u64))
            .filter(|t| t.2 > 0)
            .max_by_key(|t| t.2)
    }

    /// Windows waiting to become final (bounded; for tests and diagnostics).
    pub fn pending_windows(&self) -> usize {
        lock(&self.windows).pending()
    }
}

#[cfg(test)]
mod tests;
