//! Arrow schemas of the SPEC §4 tables and the conversion of engine rows into
//! record batches. Columns are built in one pass each with pre-sized builders.

use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, TimestampMillisecondArray,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, TimeUnit};
use omnimeter_engine::{
    ActivityRow, AttributionRow, FrictionRow, IdentityRow, JourneyRow, JourneyWindowRow, PathRow, RejectedRow,
    TransitionRow,
};

/// Builds one table's batch from the rows that share a file.
pub(crate) type Build<T> = fn(&[&T]) -> Result<RecordBatch, ArrowError>;

// Column constructors, named by their Parquet meaning.

fn ts_type() -> DataType {
    // A zone makes the Parquet column TIMESTAMP(MILLIS, isAdjustedToUTC=true).
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn ts<T>(rows: &[&T], f: impl Fn(&T) -> i64) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| f(r))).with_timezone("UTC"))
}

fn i32s<T>(rows: &[&T], f: impl Fn(&T) -> i32) -> ArrayRef {
    Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| f(r))))
}

fn i64s<T>(rows: &[&T], f: impl Fn(&T) -> i64) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| f(r))))
}

fn opt_i64s<T>(rows: &[&T], f: impl Fn(&T) -> Option<i64>) -> ArrayRef {
    Arc::new(rows.iter().map(|r| f(r)).collect::<Int64Array>())
}

fn f64s<T>(rows: &[&T], f: impl Fn(&T) -> f64) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| f(r))))
}

fn opt_bools<T>(rows: &[&T], f: impl Fn(&T) -> Option<bool>) -> ArrayRef {
    Arc::new(rows.iter().map(|r| f(r)).collect::<BooleanArray>())
}

/// Nullable strings; a first pass sizes the value buffer so it never regrows.
fn opt_strs<'a, T: 'a>(rows: &[&'a T], f: impl Fn(&'a T) -> Option<&'a str>) -> ArrayRef {
    let bytes = rows.iter().filter_map(|r| f(r)).map(str::len).sum();
    let mut b = StringBuilder::with_capacity(rows.len(), bytes);
    for r in rows {
        b.append_option(f(r));
    }
    Arc::new(b.finish())
}

fn strs<'a, T: 'a>(rows: &[&'a T], f: impl Fn(&'a T) -> &'a str) -> ArrayRef {
    opt_strs(rows, |r| Some(f(r)))
}

/// Columns of `table` whose values are mostly distinct within a file (ids, event
/// times, durations, money and resolution sums or percentiles), measured on generated
/// data: 13–100% distinct values against at most 9% for the columns not listed. They
/// are written without a dictionary.
pub(crate) fn distinct_columns(table: &str) -> &'static [&'static str] {
    match table {
        "journeys" => {
            &["customer_id", "journey_id", "start_ts", "end_ts", "duration_ms", "conversion_value", "resolution_ms"]
        }
        "journey_windows" => {
            &["conversion_value", "resolution_ms_sum", "resolution_ms_p50", "resolution_ms_p90", "resolution_ms_p99"]
        }
        "paths" => &["conversion_value"],
        "attribution" => &["value"],
        "rejected" => &["offset", "raw", "raw_text"],
        "identities" => &["identity_value", "customer_id", "linked_ts"],
        _ => &[],
    }
}

/// A table's string id columns. A file holds one hour's rows in the order they were
/// finalized, so its ids span about the whole id range: min/max statistics could never
/// skip a file or page for them, and computing them cost a string comparison per
/// value (about 2% of file mode's instructions). They are written without statistics.
pub(crate) fn unsorted_id_columns(table: &str) -> &'static [&'static str] {
    match table {
        "journeys" => &["customer_id", "journey_id"],
        "identities" => &["identity_value", "customer_id"],
        _ => &[],
    }
}

fn field(name: &str, data_type: DataType, nullable: bool) -> Field {
    Field::new(name, data_type, nullable)
}

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

pub(crate) fn journeys(rows: &[&JourneyRow]) -> Result<RecordBatch, ArrowError> {
    use DataType::{Boolean, Float64, Int32, Int64, Utf8};
    batch(
        vec![
            field("partition", Int32, false),
            field("customer_id", Utf8, false),
            field("journey_id", Utf8, true),
            field("start_ts", ts_type(), false),
            field("end_ts", ts_type(), false),
            field("duration_ms", Int64, false),
            field("events", Int64, false),
            field("path", Utf8, false),
            field("hops", Int64, false),
            field("channels", Int64, false),
            field("first_channel", Utf8, false),
            field("last_channel", Utf8, false),
            field("outcome", Utf8, false),
            field("conversion_value", Float64, false),
            field("resolution_ms", Int64, true),
            field("first_contact_resolution", Boolean, true),
            field("repeat_contacts", Int64, false),
            field("unanswered_contacts", Int64, false),
            field("errors", Int64, false),
            field("anonymous_events", Int64, false),
        ],
        vec![
            i32s(rows, |r| r.partition),
            strs(rows, |r| &r.customer_id),
            opt_strs(rows, |r| r.journey_id.as_deref()),
            ts(rows, |r| r.start_ts),
            ts(rows, |r| r.end_ts),
            i64s(rows, |r| r.duration_ms),
            i64s(rows, |r| r.events),
            strs(rows, |r| &r.path),
            i64s(rows, |r| r.hops),
            i64s(rows, |r| r.channels),
            strs(rows, |r| &r.first_channel),
            strs(rows, |r| &r.last_channel),
            strs(rows, |r| r.outcome.as_str()),
            f64s(rows, |r| r.conversion_value),
            opt_i64s(rows, |r| r.resolution_ms),
            opt_bools(rows, |r| r.first_contact_resolution),
            i64s(rows, |r| r.repeat_contacts),
            i64s(rows, |r| r.unanswered_contacts),
            i64s(rows, |r| r.errors),
            i64s(rows, |r| r.anonymous_events),
        ],
    )
}

pub(crate) fn activity(rows: &[&ActivityRow]) -> Result<RecordBatch, ArrowError> {
    use DataType::{Int32, Int64, Utf8};
    batch(
        vec![
            field("window_start", ts_type(), false),
            field("partition", Int32, false),
            field("channel", Utf8, false),
            field("type", Utf8, false),
            field("events", Int64, false),
        ],
        vec![
            ts(rows, |r| r.window_start),
            i32s(rows, |r| r.partition),
            strs(rows, |r| &r.channel),
            strs(rows, |r| r.event_type.as_str()),
            i64s(rows, |r| r.events),
        ],
    )
}

pub(crate) fn transitions(rows: &[&TransitionRow]) -> Result<RecordBatch, ArrowError> {
    use DataType::{Int32, Int64, Utf8};
    batch(
        vec![
            field("window_start", ts_type(), false),
            field("partition", Int32, false),
            field("from_channel", Utf8, false),
            field("to_channel", Utf8, false),
            field("hops", Int64, false),
        ],
        vec![
            ts(rows, |r| r.window_start),
            i32s(rows, |r| r.partition),
            strs(rows, |r| &r.from_channel),
            strs(rows, |r| &r.to_channel),
            i64s(rows, |r| r.hops),
        ],
    )
}

pub(crate) fn journey_windows(rows: &[&JourneyWindowRow]) -> Result<RecordBatch, ArrowError> {
    use DataType::{Float64, Int32, Int64, Utf8};
    batch(
        vec![
            field("window_start", ts_type(), false),
            field("partition", Int32, false),
            field("first_channel", Utf8, false),
            field("outcome", Utf8, false),
            field("journeys", Int64, false),
            field("hops", Int64, false),
            field("conversion_value", Float64, false),
            field("resolved", Int64, false),
            field("resolution_ms_sum", Int64, false),
            field("resolution_ms_p50", Int64, true),
            field("resolution_ms_p90", Int64, true),
            field("resolution_ms_p99", Int64, true),
            field("fcr", Int64, false),
        ],
        vec![
            ts(rows, |r| r.window_start),
            i32s(rows, |r| r.partition),
            strs(rows, |r| &r.first_channel),
            strs(rows, |r| r.outcome.as_str()),
            i64s(rows, |r| r.journeys),
            i64s(rows, |r| r.hops),
            f64s(rows, |r| r.conversion_value),
            i64s(rows, |r| r.resolved),
            i64s(rows, |r| r.resolution_ms_sum),
            opt_i64s(rows, |r| r.resolution_ms_p50),
            opt_i64s(rows, |r| r.resolution_ms_p90),
            opt_i64s(rows, |r| r.resolution_ms_p99),
            i64s(rows, |r| r.fcr),
        ],
    )
}

pub(crate) fn paths(rows: &[&PathRow]) -> Result<RecordBatch, ArrowError> {
    use DataType::{Float64, Int32, Int64, Utf8};
    batch(
        vec![
            field("window_start", ts_type(), false),
            field("partition", Int32, false),
            field("path", Utf8, false),
            field("journeys", Int64, false),
            field("conversions", Int64, false),
            field("conversion_value", Float64, false),
        ],
        vec![
            ts(rows, |r| r.window_start),
            i32s(rows, |r| r.partition),
            strs(rows, |r| &r.path),
            i64s(rows, |r| r.journeys),
            i64s(rows, |r| r.conversions),
            f64s(rows, |r| r.conversion_value),
        ],
    )
}

pub(crate) fn friction(rows: &[&FrictionRow]) -> Result<RecordBatch, ArrowError> {
    use DataType::{Int32, Int64, Utf8};
    batch(
        vec![
            field("window_start", ts_type(), false),
            field("partition", Int32, false),
            field("kind", Utf8, false),
            field("channel", Utf8, false),
            field("step", Utf8, true),
            field("occurrences", Int64, false),
        ],
        vec![
            ts(rows, |r| r.window_start),
            i32s(rows, |r| r.partition),
            strs(rows, |r| r.kind.as_str()),
            strs(rows, |r| &r.channel),
            opt_strs(rows, |r| r.step.as_deref()),
            i64s(rows, |r| r.occurrences),
        ],
    )
}

pub(crate) fn attribution(rows: &[&AttributionRow]) -> Result<RecordBatch, ArrowError> {
    use DataType::{Float64, Int32, Utf8};
    batch(
        vec![
            field("window_start", ts_type(), false),
            field("partition", Int32, false),
            field("model", Utf8, false),
            field("channel", Utf8, false),
            field("conversions", Float64, false),
            field("value", Float64, false),
        ],
        vec![
            ts(rows, |r| r.window_start),
            i32s(rows, |r| r.partition),
            strs(rows, |r| r.model.as_str()),
            strs(rows, |r| &r.channel),
            f64s(rows, |r| r.conversions),
            f64s(rows, |r| r.value),
        ],
    )
}

pub(crate) fn rejected(rows: &[&RejectedRow]) -> Result<RecordBatch, ArrowError> {
    use DataType::{Binary, Int32, Int64, Utf8};
    let bytes = rows.iter().map(|r| r.raw.len()).sum();
    let mut raw = BinaryBuilder::with_capacity(rows.len(), bytes);
    // Text for humans and SQL; null where not UTF-8, which stays byte-exact in `raw`.
    let mut text = StringBuilder::with_capacity(rows.len(), bytes);
    for r in rows {
        raw.append_value(&r.raw);
        text.append_option(std::str::from_utf8(&r.raw).ok());
    }
    batch(
        vec![
            field("partition", Int32, false),
            field("offset", Int64, false),
            field("reason", Utf8, false),
            field("raw", Binary, false),
            field("raw_text", Utf8, true),
        ],
        vec![
            i32s(rows, |r| r.partition),
            i64s(rows, |r| r.offset),
            strs(rows, |r| r.reason.as_str()),
            Arc::new(raw.finish()),
            Arc::new(text.finish()),
        ],
    )
}

pub(crate) fn identities(rows: &[&IdentityRow]) -> Result<RecordBatch, ArrowError> {
    use DataType::{Boolean, Int32, Utf8};
    batch(
        vec![
            field("partition", Int32, false),
            field("identity_type", Utf8, false),
            field("identity_value", Utf8, false),
            field("customer_id", Utf8, false),
            field("linked_ts", ts_type(), false),
            field("conflict", Boolean, false),
        ],
        vec![
            i32s(rows, |r| r.partition),
            strs(rows, |r| &r.identity_type),
            strs(rows, |r| &r.identity_value),
            strs(rows, |r| &r.customer_id),
            ts(rows, |r| r.linked_ts),
            opt_bools(rows, |r| Some(r.conflict)),
        ],
    )
}

/// A range of offsets the broker no longer had (SPEC §4 `gaps`, `on_data_loss = "skip"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapRow {
    pub topic: String,
    pub partition: i32,
    /// First and last missing offset, inclusive.
    pub from_offset: i64,
    pub to_offset: i64,
    /// Wall-clock time the worker found the range missing, epoch ms.
    pub detected_at: i64,
}

pub(crate) fn gaps(rows: &[&GapRow]) -> Result<RecordBatch, ArrowError> {
    use DataType::{Int32, Int64, Utf8};
    batch(
        vec![
            field("topic", Utf8, false),
            field("partition", Int32, false),
            field("from_offset", Int64, false),
            field("to_offset", Int64, false),
            Field::new("detected_at", ts_type(), false),
        ],
        vec![
            strs(rows, |r| r.topic.as_str()),
            i32s(rows, |r| r.partition),
            i64s(rows, |r| r.from_offset),
            i64s(rows, |r| r.to_offset),
            ts(rows, |r| r.detected_at),
        ],
    )
}
