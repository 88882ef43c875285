//! Turns an omnimeter Parquet output directory into one self-contained HTML report:
//! headline figures plus channel flow, resolution time, friction, path and attribution
//! charts as inline SVG, with no scripts and nothing fetched over the network. Outputs with
//! identity data (SPEC §6) also get identity resolution figures; older outputs, without the
//! `anonymous_events` column or the `identities` table, render as before.

mod aggregate;
mod charts;
mod format;
mod read;
mod render;

use std::io;
use std::path::{Path, PathBuf};

use arrow_schema::ArrowError;
use parquet::errors::ParquetError;

/// A count with thousands separators, as the report writes counts: `1234567` → `"1,234,567"`.
pub fn thousands(n: u64) -> String {
    format::count(n)
}

/// Why a report could not be built. Messages are one line and name the path, table
/// or column; the underlying cause is the error's `source()`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no omnimeter output at {}", path.display())]
    NoOutput { path: PathBuf, source: io::Error },
    #[error("cannot read {}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot read parquet file {}", path.display())]
    Parquet { path: PathBuf, source: ParquetError },
    #[error("cannot decode parquet file {}", path.display())]
    Arrow { path: PathBuf, source: ArrowError },
    #[error("table {table}: column {column} is missing in {}", path.display())]
    MissingColumn { table: &'static str, column: &'static str, path: PathBuf },
    #[error("table {table}: column {column} has type {found}, expected {expected}, in {}", path.display())]
    ColumnType { table: &'static str, column: &'static str, found: String, expected: &'static str, path: PathBuf },
    #[error("cannot render the report template")]
    Template(#[from] minijinja::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Headline figures over every journey in the output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Headline {
    /// Journey rows (one per closed journey).
    pub journeys: u64,
    /// Sum of the journeys' `events`.
    pub events: u64,
    /// `converted / journeys`; `None` without journeys.
    pub conversion_rate: Option<f64>,
    /// Journeys resolved at first contact over journeys with a resolution time.
    pub fcr_rate: Option<f64>,
    pub mean_hops: Option<f64>,
    pub unanswered_contacts: u64,
    /// Journeys whose outcome is `converted`.
    pub converted: u64,
    /// Earliest `start_ts`, epoch milliseconds UTC.
    pub start_ms: Option<i64>,
    /// Latest `end_ts`, epoch milliseconds UTC.
    pub end_ms: Option<i64>,
}

/// Identity resolution (SPEC §6): how anonymous events were stitched to customers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdentityFigures {
    /// Journeys with anonymous events whose customer is known (not `anon:…`): events that
    /// came without a `customer_id`, stitched into a customer's journey.
    pub stitched_journeys: u64,
    /// `stitched_journeys` over all journeys; `None` without journeys.
    pub stitched_share: Option<f64>,
    /// Journeys of anonymous customers (`customer_id` `anon:<type>:<value>`).
    pub anonymous_journeys: u64,
    /// Sum of the journeys' `anonymous_events`.
    pub anonymous_events: u64,
    /// Of those, events in journeys of known customers (resolved to an owner).
    pub resolved_events: u64,
    /// `identities` rows with `conflict = false`: identities that got an owner.
    pub links: u64,
    /// `identities` rows with `conflict = true`: links of an identity to another customer
    /// than its owner.
    pub conflicts: u64,
    /// Links per identity type, most first, then by type.
    pub links_by_type: Vec<(String, u64)>,
}

/// Journeys per outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeCount {
    pub outcome: String,
    pub journeys: u64,
}

/// Channel hops from one channel to another, summed over windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub hops: u64,
}

/// Resolution times of the journeys that started on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelResolution {
    pub channel: String,
    /// Journeys with a resolution time.
    pub resolved: u64,
    /// Nearest-rank percentiles, milliseconds.
    pub p50_ms: i64,
    pub p90_ms: i64,
    /// Counts per [`RESOLUTION_BUCKETS`] bucket.
    pub buckets: [u64; RESOLUTION_BUCKETS.len()],
}

/// Histogram buckets for resolution times: label and exclusive upper bound in
/// milliseconds (the last bucket is open-ended). Log-spaced because resolution
/// times run from seconds (chat) to days (email).
pub const RESOLUTION_BUCKETS: [(&str, i64); 7] = [
    ("<1m", 60_000),
    ("1–5m", 5 * 60_000),
    ("5–15m", 15 * 60_000),
    ("15m–1h", 3_600_000),
    ("1–4h", 4 * 3_600_000),
    ("4–24h", 24 * 3_600_000),
    (">1d", i64::MAX),
];

/// Friction occurrences of one kind × channel × step, summed over windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrictionPoint {
    pub kind: String,
    pub channel: String,
    pub step: Option<String>,
    pub occurrences: u64,
}

/// One path's journeys and conversions, summed over windows.
#[derive(Debug, Clone, PartialEq)]
pub struct PathStats {
    pub path: String,
    pub journeys: u64,
    pub conversions: u64,
    pub value: f64,
}

/// Attributed conversions and value of one model × channel, summed over windows.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    pub model: String,
    pub channel: String,
    pub conversions: f64,
    pub value: f64,
}

/// Everything the report shows, aggregated over all files of all partitions.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The output directory that was read.
    pub source: PathBuf,
    /// Parquet files read, over all tables.
    pub files_read: usize,
    pub headline: Headline,
    /// Known outcomes in lifecycle order, then any others by name.
    pub outcomes: Vec<OutcomeCount>,
    /// Most hops first.
    pub transitions: Vec<Transition>,
    /// Per first channel, most resolved journeys first.
    pub resolution: Vec<ChannelResolution>,
    /// Resolution percentiles over all channels, milliseconds.
    pub resolution_p50_ms: Option<i64>,
    pub resolution_p90_ms: Option<i64>,
    /// Most occurrences first, then kind, channel, step.
    pub friction: Vec<FrictionPoint>,
    /// Most conversions first, then most journeys, then path.
    pub paths: Vec<PathStats>,
    /// By channel, then model.
    pub attribution: Vec<Attribution>,
    /// Identity resolution figures, when the output has identity data: `identities` rows,
    /// or journeys with anonymous events. `None` for outputs without (older versions, or
    /// inputs that carry no `identities`).
    pub identity: Option<IdentityFigures>,
}

impl Report {
    /// Reads and aggregates every table under `dir` (the `--output` of omnimeter).
    /// Missing tables count as empty; a missing `dir` is an error.
    pub fn from_dir(dir: &Path) -> Result<Report, Error> {
        aggregate::load(dir)
    }

    /// Renders the report as one self-contained HTML page.
    pub fn to_html(&self) -> Result<String, Error> {
        render::html(self, render::Clock::Event)
    }

    /// Renders the report of generated traffic (`omnimeter demo`): as [`Report::to_html`],
    /// but the page says its dates are simulated event time.
    pub fn to_html_simulated(&self) -> Result<String, Error> {
        render::html(self, render::Clock::Simulated)
    }

    pub fn headline(&self) -> &Headline {
        &self.headline
    }
}

#[cfg(test)]
mod tests;
