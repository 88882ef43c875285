//! Finalized output rows, one struct per table of SPEC §4, and [`Rows`], the batch
//! the engine hands to sinks. Timestamps are epoch milliseconds (UTC); counts are
//! `i64` because that is what Parquet readers (Spark, Trino) handle without surprises.

use std::sync::Arc;

pub use compact_str::CompactString;

use crate::event::EventType;

/// An interned name (channel or step): cheap to clone into many rows.
pub type Name = Arc<str>;

/// How a journey ended, first that holds in SPEC §2's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    Converted,
    Resolved,
    Abandoned,
    Unresolved,
    Browsed,
}

impl Outcome {
    pub const ALL: [Outcome; 5] =
        [Outcome::Converted, Outcome::Resolved, Outcome::Abandoned, Outcome::Unresolved, Outcome::Browsed];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Converted => "converted",
            Outcome::Resolved => "resolved",
            Outcome::Abandoned => "abandoned",
            Outcome::Unresolved => "unresolved",
            Outcome::Browsed => "browsed",
        }
    }
}

/// Kinds of friction point (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum FrictionKind {
    RepeatContact,
    UnansweredContact,
    Error,
    Abandon,
    DropOff,
}

impl FrictionKind {
    pub const ALL: [FrictionKind; 5] = [
        FrictionKind::RepeatContact,
        FrictionKind::UnansweredContact,
        FrictionKind::Error,
        FrictionKind::Abandon,
        FrictionKind::DropOff,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FrictionKind::RepeatContact => "repeat_contact",
            FrictionKind::UnansweredContact => "unanswered_contact",
            FrictionKind::Error => "error",
            FrictionKind::Abandon => "abandon",
            FrictionKind::DropOff => "drop_off",
        }
    }
}

/// Attribution models (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum AttributionModel {
    FirstTouch,
    LastTouch,
    Linear,
}

impl AttributionModel {
    pub fn as_str(self) -> &'static str {
        match self {
            AttributionModel::FirstTouch => "first_touch",
            AttributionModel::LastTouch => "last_touch",
            AttributionModel::Linear => "linear",
        }
    }
}

/// Why an input was sent to the dead-letter output (SPEC §1, plus `late` from §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum RejectReason {
    InvalidJson,
    NotObject,
    MissingField,
    WrongType,
    FieldLength,
    BadTs,
    BadChannel,
    UnknownType,
    BadValue,
    TooLarge,
    Late,
}

impl RejectReason {
    pub const ALL: [RejectReason; 11] = [
        RejectReason::InvalidJson,
        RejectReason::NotObject,
        RejectReason::MissingField,
        RejectReason::WrongType,
        RejectReason::FieldLength,
        RejectReason::BadTs,
        RejectReason::BadChannel,
        RejectReason::UnknownType,
        RejectReason::BadValue,
        RejectReason::TooLarge,
        RejectReason::Late,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::NotObject => "not_object",
            RejectReason::MissingField => "missing_field",
            RejectReason::WrongType => "wrong_type",
            RejectReason::FieldLength => "field_length",
            RejectReason::BadTs => "bad_ts",
            RejectReason::BadChannel => "bad_channel",
            RejectReason::UnknownType => "unknown_type",
            RejectReason::BadValue => "bad_value",
            RejectReason::TooLarge => "too_large",
            RejectReason::Late => "late",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One closed journey (table `journeys`). Its strings are inline up to 24 bytes:
/// a row per journey is the engine's most frequent allocation otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct JourneyRow {
    pub partition: i32,
    pub customer_id: CompactString,
    pub journey_id: Option<CompactString>,
    pub start_ts: i64,
    pub end_ts: i64,
    pub duration_ms: i64,
    pub events: i64,
    pub path: CompactString,
    pub hops: i64,
    pub channels: i64,
    pub first_channel: Name,
    pub last_channel: Name,
    pub outcome: Outcome,
    pub conversion_value: f64,
    pub resolution_ms: Option<i64>,
    pub first_contact_resolution: Option<bool>,
    pub repeat_contacts: i64,
    pub unanswered_contacts: i64,
    pub errors: i64,
    /// Events of the journey that came without a `customer_id` (SPEC §6).
    pub anonymous_events: i64,
}

/// Table `activity`: processed events per window × channel × type.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityRow {
    pub partition: i32,
    pub window_start: i64,
    pub channel: Name,
    pub event_type: EventType,
    pub events: i64,
}

/// Table `transitions`: channel hops per window × from × to, in the window of the
/// event that changed channel.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionRow {
    pub partition: i32,
    pub window_start: i64,
    pub from_channel: Name,
    pub to_channel: Name,
    pub hops: i64,
}

/// Table `journey_windows`: closed journeys per window (of `end_ts`) × first channel × outcome.
/// Percentiles are nearest-rank over this row's own journeys; null when none resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct JourneyWindowRow {
    pub partition: i32,
    pub window_start: i64,
    pub first_channel: Name,
    pub outcome: Outcome,
    pub journeys: i64,
    pub hops: i64,
    pub conversion_value: f64,
    pub resolved: i64,
    pub resolution_ms_sum: i64,
    pub resolution_ms_p50: Option<i64>,
    pub resolution_ms_p90: Option<i64>,
    pub resolution_ms_p99: Option<i64>,
    pub fcr: i64,
}

/// Table `paths`: closed journeys per window × (possibly truncated) path.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRow {
    pub partition: i32,
    pub window_start: i64,
    pub path: String,
    pub journeys: i64,
    pub conversions: i64,
    pub conversion_value: f64,
}

/// Table `friction`: friction points per window (of their event) × kind × channel × step.
#[derive(Debug, Clone, PartialEq)]
pub struct FrictionRow {
    pub partition: i32,
    pub window_start: i64,
    pub kind: FrictionKind,
    pub channel: Name,
    pub step: Option<Name>,
    pub occurrences: i64,
}

/// Table `attribution`: conversions and value per window × model × channel.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributionRow {
    pub partition: i32,
    pub window_start: i64,
    pub model: AttributionModel,
    pub channel: Name,
    pub conversions: f64,
    pub value: f64,
}

/// Table `rejected`: one dead-lettered input (malformed or late).
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRow {
    pub partition: i32,
    pub offset: i64,
    pub reason: RejectReason,
    pub raw: Vec<u8>,
    /// Event time used to place the row in the Hive layout: the event's own `ts`
    /// when it decoded (late events), else the partition's highest accepted `ts`
    /// so far, else 0 (1970-01-01). Deterministic from the input, so a replay
    /// writes the row to the same folder.
    pub placed_ts: i64,
}

/// Table `identities` (SPEC §6): an identity that got its owner (`conflict = false`),
/// or a later link of it to another customer (`conflict = true`, that customer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRow {
    pub partition: i32,
    pub identity_type: CompactString,
    pub identity_value: CompactString,
    pub customer_id: CompactString,
    pub linked_ts: i64,
    pub conflict: bool,
}

/// A batch of finalized rows, drained from the engine and written by a sink.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub journeys: Vec<JourneyRow>,
    pub activity: Vec<ActivityRow>,
    pub transitions: Vec<TransitionRow>,
    pub journey_windows: Vec<JourneyWindowRow>,
    pub paths: Vec<PathRow>,
    pub friction: Vec<FrictionRow>,
    pub attribution: Vec<AttributionRow>,
    pub rejected: Vec<RejectedRow>,
    pub identities: Vec<IdentityRow>,
}

/// Table names in SPEC §4 order (`gaps` aside: the Kafka adapter writes it);
/// sinks and summaries index counts by this order.
pub const TABLES: [&str; 9] = [
    "journeys",
    "activity",
    "transitions",
    "journey_windows",
    "paths",
    "friction",
    "attribution",
    "rejected",
    "identities",
];

impl Rows {
    /// Row counts per table, in [`TABLES`] order.
    pub fn counts(&self) -> [usize; TABLES.len()] {
        [
            self.journeys.len(),
            self.activity.len(),
            self.transitions.len(),
            self.journey_windows.len(),
            self.paths.len(),
            self.friction.len(),
            self.attribution.len(),
            self.rejected.len(),
            self.identities.len(),
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.counts().iter().all(|&n| n == 0)
    }

    /// Moves every row of `other` into `self`.
    pub fn append(&mut self, other: &mut Rows) {
        self.journeys.append(&mut other.journeys);
        self.activity.append(&mut other.activity);
        self.transitions.append(&mut other.transitions);
        self.journey_windows.append(&mut other.journey_windows);
        self.paths.append(&mut other.paths);
        self.friction.append(&mut other.friction);
        self.attribution.append(&mut other.attribution);
        self.rejected.append(&mut other.rejected);
        self.identities.append(&mut other.identities);
    }
}
