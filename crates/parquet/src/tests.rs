//! Sink-level tests: write real files into a temp dir and read them back.

use std::error::Error as StdError;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use omnimeter_engine::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{LogicalType, TimeUnit as PqTimeUnit};
use parquet::schema::types::SchemaDescPtr;

use super::*;

type TestResult = std::result::Result<(), Box<dyn StdError>>;

/// 2024-02-29T13:45:00Z, a leap day.
const T0: i64 = 1_709_214_300_000;
const HOUR: i64 = 3_600_000;

fn name(s: &str) -> Name {
    Arc::from(s)
}

fn journey(end_ts: i64, journey_id: Option<&str>, fcr: Option<bool>) -> JourneyRow {
    JourneyRow {
        partition: 0,
        customer_id: "c-1".into(),
        journey_id: journey_id.map(Into::into),
        start_ts: end_ts - 60_000,
        end_ts,
        duration_ms: 60_000,
        events: 3,
        path: "web>chat".into(),
        hops: 1,
        channels: 2,
        first_channel: name("web"),
        last_channel: name("chat"),
        outcome: Outcome::Resolved,
        conversion_value: 0.0,
        resolution_ms: fcr.map(|_| 45_000),
        first_contact_resolution: fcr,
        repeat_contacts: 0,
        unanswered_contacts: 1,
        errors: 0,
        anonymous_events: 0,
    }
}

/// Every table populated; journeys and rejected span two hours each.
pub(crate) fn sample() -> Rows {
    Rows {
        journeys: vec![journey(T0, Some("j-1"), Some(true)), journey(T0 + HOUR, None, None)],
        activity: vec![ActivityRow {
            partition: 0,
            window_start: T0,
            channel: name("web"),
            event_type: EventType::RequestOpened,
            events: 7,
        }],
        transitions: vec![TransitionRow {
            partition: 0,
            window_start: T0,
            from_channel: name("web"),
            to_channel: name("chat"),
            hops: 2,
        }],
        journey_windows: vec![JourneyWindowRow {
            partition: 0,
            window_start: T0,
            first_channel: name("web"),
            outcome: Outcome::Converted,
            journeys: 4,
            hops: 5,
            conversion_value: 99.5,
            resolved: 0,
            resolution_ms_sum: 0,
            resolution_ms_p50: None,
            resolution_ms_p90: None,
            resolution_ms_p99: None,
            fcr: 0,
        }],
        paths: vec![PathRow {
            partition: 0,
            window_start: T0,
            path: "web>chat".into(),
            journeys: 4,
            conversions: 1,
            conversion_value: 99.5,
        }],
        friction: vec![FrictionRow {
            partition: 0,
            window_start: T0,
            kind: FrictionKind::DropOff,
            channel: name("app"),
            step: None,
            occurrences: 3,
        }],
        attribution: vec![AttributionRow {
            partition: 0,
            window_start: T0,
            model: AttributionModel::Linear,
            channel: name("web"),
            conversions: 0.5,
            value: 49.75,
        }],
        rejected: vec![
            RejectedRow {
                partition: 0,
                offset: 11,
                reason: RejectReason::Late,
                raw: br#"{"ts":1}"#.to_vec(),
                placed_ts: T0,
            },
            RejectedRow {
                partition: 0,
                offset: 12,
                reason: RejectReason::InvalidJson,
                raw: vec![0xff, 0xfe, b'x'],
                placed_ts: 0,
            },
        ],
        identities: vec![IdentityRow {
            partition: 0,
            identity_type: "phone".into(),
            identity_value: "+34600000000".into(),
            customer_id: "c-1".into(),
            linked_ts: T0,
            conflict: false,
        }],
    }
}

/// The single record batch of a file, and the file's Parquet schema.
fn read(path: &Path) -> std::result::Result<(RecordBatch, SchemaDescPtr), Box<dyn StdError>> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?;
    let parquet_schema = builder.metadata().file_metadata().schema_descr_ptr();
    let batches = builder.build()?.collect::<std::result::Result<Vec<_>, _>>()?;
    assert_eq!(batches.len(), 1, "{}", path.display());
    let batch = batches.into_iter().next().ok_or("no batch")?;
    Ok((batch, parquet_schema))
}

fn col<'a>(batch: &'a RecordBatch, name: &str) -> &'a ArrayRef {
    batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name}"))
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if let Ok(rel) = path.strip_prefix(base) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn writes_hive_layout_and_reads_back() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("out");
    let sink = ParquetSink::new(&root)?;
    assert_eq!(sink.output(), &Output::Local(root.clone()));
    let report = sink.write_batch(&sample(), 0, 10)?;

    assert_eq!(report.files, [2, 1, 1, 1, 1, 1, 1, 2, 1]);
    assert_eq!(report.rows, [2, 1, 1, 1, 1, 1, 1, 2, 1]);
    let name = "p00000-o00000000000000000010.parquet";
    let mut expected: Vec<String> = [
        "journeys/date=2024-02-29/hour=13",
        "journeys/date=2024-02-29/hour=14",
        "activity/date=2024-02-29/hour=13",
        "transitions/date=2024-02-29/hour=13",
        "journey_windows/date=2024-02-29/hour=13",
        "paths/date=2024-02-29/hour=13",
        "friction/date=2024-02-29/hour=13",
        "attribution/date=2024-02-29/hour=13",
        "rejected/date=1970-01-01/hour=00",
        "rejected/date=2024-02-29/hour=13",
        "identities/date=2024-02-29/hour=13",
    ]
    .iter()
    .map(|d| format!("{d}/{name}"))
    .collect();
    assert_eq!(report.keys, expected, "report order: table, then hour");
    expected.sort();
    assert_eq!(files(&root), expected, "nothing but the published files");
    let paths: Vec<PathBuf> = report.keys.iter().map(|k| root.join(k)).collect();

    // journeys: types, Parquet logical timestamp, values, nulls
    let (batch, parquet_schema) = read(&paths[0])?;
    let ts_type = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let schema = batch.schema();
    let types: Vec<(&str, &DataType, bool)> =
        schema.fields().iter().map(|f| (f.name().as_str(), f.data_type(), f.is_nullable())).collect();
    assert_eq!(types[0], ("partition", &DataType::Int32, false));
    assert_eq!(types[2], ("journey_id", &DataType::Utf8, true));
    assert_eq!(types[3], ("start_ts", &ts_type, false));
    assert_eq!(types[4], ("end_ts", &ts_type, false));
    assert_eq!(types[15], ("first_contact_resolution", &DataType::Boolean, true));
    assert_eq!(types[19], ("anonymous_events", &DataType::Int64, false));
    assert_eq!(types.len(), 20);
    assert!(!types.iter().any(|(n, ..)| *n == "date" || *n == "hour"));
    let end_ts = parquet_schema.column(4);
    assert_eq!(end_ts.name(), "end_ts");
    assert_eq!(end_ts.logical_type_ref(), Some(&LogicalType::timestamp(true, PqTimeUnit::MILLIS)));
    let ends = col(&batch, "end_ts").as_primitive::<TimestampMillisecondType>();
    assert_eq!(ends.values().as_ref(), [T0]);
    assert_eq!(col(&batch, "journey_id").as_string::<i32>().value(0), "j-1");
    assert_eq!(col(&batch, "outcome").as_string::<i32>().value(0), "resolved");
    assert_eq!(col(&batch, "resolution_ms").as_primitive::<Int64Type>().value(0), 45_000);
    assert!(col(&batch, "first_contact_resolution").as_boolean().value(0));
    assert_eq!(col(&batch, "unanswered_contacts").as_primitive::<Int64Type>().value(0), 1);

    let (batch, _) = read(&paths[1])?;
    assert!(col(&batch, "journey_id").is_null(0));
    assert!(col(&batch, "resolution_ms").is_null(0));
    assert!(col(&batch, "first_contact_resolution").is_null(0));

    let (batch, _) = read(&paths[2])?;
    let names: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["window_start", "partition", "channel", "type", "events"]);
    assert_eq!(col(&batch, "window_start").data_type(), &ts_type);
    assert_eq!(col(&batch, "type").as_string::<i32>().value(0), "request_opened");
    assert_eq!(col(&batch, "partition").as_primitive::<Int32Type>().value(0), 0);

    let (batch, _) = read(&paths[4])?;
    assert_eq!(col(&batch, "resolution_ms_p99").data_type(), &DataType::Int64);
    assert!(col(&batch, "resolution_ms_p99").is_null(0));
    assert_eq!(col(&batch, "conversion_value").as_primitive::<Float64Type>().value(0), 99.5);

    let (batch, _) = read(&paths[6])?;
    assert!(col(&batch, "step").is_null(0));
    assert_eq!(col(&batch, "kind").as_string::<i32>().value(0), "drop_off");

    let (batch, _) = read(&paths[7])?;
    assert_eq!(col(&batch, "model").as_string::<i32>().value(0), "linear");
    assert_eq!(col(&batch, "conversions").as_primitive::<Float64Type>().value(0), 0.5);

    // rejected at 1970: non-UTF-8 bytes survive in `raw`, `raw_text` is null
    let (batch, _) = read(&paths[8])?;
    assert_eq!(col(&batch, "raw").data_type(), &DataType::Binary);
    assert_eq!(col(&batch, "raw").as_binary::<i32>().value(0), [0xff, 0xfe, b'x']);
    assert!(col(&batch, "raw_text").is_null(0));
    assert_eq!(col(&batch, "reason").as_string::<i32>().value(0), "invalid_json");
    assert_eq!(col(&batch, "offset").as_primitive::<Int64Type>().value(0), 12);
    let (batch, _) = read(&paths[9])?;
    assert_eq!(col(&batch, "raw_text").as_string::<i32>().value(0), r#"{"ts":1}"#);

    // identities (SPEC §6)
    let (batch, _) = read(&paths[10])?;
    let names: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["partition", "identity_type", "identity_value", "customer_id", "linked_ts", "conflict"]);
    assert_eq!(col(&batch, "linked_ts").data_type(), &ts_type);
    assert_eq!(col(&batch, "identity_value").as_string::<i32>().value(0), "+34600000000");
    assert!(!col(&batch, "conflict").as_boolean().value(0));
    Ok(())
}

#[test]
fn rewriting_a_batch_replaces_its_files() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let sink = ParquetSink::new(tmp.path())?;
    let first = sink.write_batch(&sample(), 3, 500)?;
    let before = files(tmp.path());
    let again = sink.write_batch(&sample(), 3, 500)?;
    assert_eq!(first, again);
    assert_eq!(files(tmp.path()), before);
    assert_eq!(before.len(), 11, "one file per (table, hour)");
    assert!(before.iter().all(|f| f.ends_with("p00003-o00000000000000000500.parquet")));
    Ok(())
}

#[test]
fn empty_batch_writes_nothing() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let sink = ParquetSink::new(tmp.path())?;
    assert_eq!(sink.write_batch(&Rows::default(), 0, 0)?, WriteReport::default());
    assert!(files(tmp.path()).is_empty());
    Ok(())
}

#[test]
fn remove_from_drops_only_that_partition_from_the_offset() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let sink = ParquetSink::new(tmp.path())?;
    for (partition, offset) in [(0, 0), (0, 100), (0, 200), (1, 100)] {
        sink.write_batch(&sample(), partition, offset)?;
    }
    // Temps left by a crash mid-write, plus a foreign file that must survive.
    let hour = tmp.path().join("journeys/date=2024-02-29/hour=13");
    fs::write(hour.join(".p00000-o00000000000000000050.parquet.tmp"), b"partial")?;
    fs::write(hour.join(".p00001-o00000000000000000300.parquet.tmp"), b"partial")?;
    fs::write(hour.join("notes.txt"), b"keep")?;

    // Recovery keeps regular batches (a replay rewrites them identically) and sweeps temps.
    assert_eq!(sink.remove_from(0, 100, false, false)?, 1);
    assert_eq!(files(tmp.path()).len(), 47 - 1);
    // A change of cut settings drops every batch from the offset on.
    assert_eq!(sink.remove_from(0, 100, false, true)?, 11 + 11);

    let left = files(tmp.path());
    let count = |needle: &str| left.iter().filter(|f| f.contains(needle)).count();
    assert_eq!(count("p00000-o00000000000000000000.parquet"), 11);
    assert_eq!(count("p00000-o00000000000000000100"), 0);
    assert_eq!(count("p00000-o00000000000000000200"), 0);
    assert_eq!(count("p00001-o00000000000000000100.parquet"), 11);
    assert_eq!(count(".p00001-o00000000000000000300.parquet.tmp"), 1);
    assert_eq!(count("notes.txt"), 1);
    assert_eq!(left.len(), 24);

    assert_eq!(sink.remove_from(0, 100, false, true)?, 0, "idempotent");
    Ok(())
}

#[test]
fn closing_batches_have_their_own_names_and_survive_when_committed() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let sink = ParquetSink::new(tmp.path())?;
    sink.write_batch(&sample(), 0, 100)?;
    let report = sink.write_closing_batch(&sample(), 0, 100)?;
    assert!(report.keys.iter().all(|k| k.ends_with("p00000-o00000000000000000100-end.parquet")));
    assert_eq!(files(tmp.path()).len(), 22, "a closing batch does not replace the regular batch at the same offset");
    assert_eq!(sink.remove_from(0, 100, true, false)?, 0, "committed close at 100 kept, regular batch kept");
    assert_eq!(sink.remove_from(0, 100, false, false)?, 11, "an uncommitted close is dropped");
    assert_eq!(files(tmp.path()).len(), 11);
    sink.write_closing_batch(&sample(), 0, 50)?;
    assert_eq!(sink.remove_from(0, 100, false, false)?, 0, "a close before the checkpoint's offset is covered");
    Ok(())
}

#[test]
fn remove_from_on_an_empty_root_is_a_no_op() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let sink = ParquetSink::new(tmp.path())?;
    assert_eq!(sink.remove_from(0, 0, false, true)?, 0);
    Ok(())
}

#[test]
fn new_fails_when_root_cannot_be_created() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("a-file");
    fs::write(&file, b"")?;
    let err = ParquetSink::new(file.join("out")).err().ok_or("expected an error")?;
    assert!(matches!(err, Error::Store(StoreError::Io { op: "create", .. })), "{err:?}");
    assert!(err.to_string().contains("a-file"), "{err}");
    Ok(())
}

#[test]
fn negative_positions_are_rejected() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let sink = ParquetSink::new(tmp.path())?;
    let err = sink.write_batch(&sample(), 0, -1).err().ok_or("expected an error")?;
    assert!(matches!(err, Error::NegativePosition { partition: 0, offset: -1 }));
    assert!(files(tmp.path()).is_empty());
    Ok(())
}

#[test]
fn sinks_opened_at_once_in_one_process_do_not_trip_over_each_others_probe() {
    let dir = tempfile::tempdir().unwrap();
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let root = dir.path().to_path_buf();
            std::thread::spawn(move || (0..50).map(|_| ParquetSink::new(&root).map(|_| ())).collect::<Vec<_>>())
        })
        .collect();
    for t in threads {
        for r in t.join().unwrap() {
            r.unwrap();
        }
    }
}

#[test]
fn local_store_publishes_whole_objects_in_new_folders_and_misses_cleanly() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = Store::open(&Output::from(tmp.path()))?;
    assert_eq!(store.get("_checkpoints/t/p00000.ckpt")?, None, "nothing yet, not an error");
    store.put("_checkpoints/t/p00000.ckpt", b"one".to_vec())?;
    store.put("_checkpoints/t/p00000.ckpt", b"two".to_vec())?;
    assert_eq!(fs::read(tmp.path().join("_checkpoints/t/p00000.ckpt"))?, b"two");
    assert_eq!(store.get("_checkpoints/t/p00000.ckpt")?.as_deref(), Some(&b"two"[..]));
    assert_eq!(files(tmp.path()), ["_checkpoints/t/p00000.ckpt"], "no temp left beside it");
    fs::write(tmp.path().join("_checkpoints/t/.p00001.ckpt.tmp"), b"crashed")?;
    assert_eq!(store.list("_checkpoints")?, ["_checkpoints/t/.p00001.ckpt.tmp", "_checkpoints/t/p00000.ckpt"]);
    store.delete(&["_checkpoints/t/.p00001.ckpt.tmp".to_owned(), "gone/already".to_owned()])?;
    assert_eq!(store.list("")?, ["_checkpoints/t/p00000.ckpt"]);
    assert_eq!(store.location("a/b"), tmp.path().join("a/b").display().to_string());
    Ok(())
}

#[test]
fn a_batch_shows_its_objects_only_when_published_and_leaves_nothing_when_dropped() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = Store::open(&Output::from(tmp.path()))?;
    store.put("t/date=2026-11-02/hour=08/old.parquet", b"old".to_vec())?;
    let mut batch = store.batch();
    batch.put("t/date=2026-11-02/hour=08/old.parquet", b"new".to_vec())?;
    batch.put("t/date=2026-11-02/hour=09/a.parquet", b"a".to_vec())?;
    assert_eq!(
        store.get("t/date=2026-11-02/hour=08/old.parquet")?.as_deref(),
        Some(&b"old"[..]),
        "a replaced object keeps its old bytes until the batch is published"
    );
    assert_eq!(store.get("t/date=2026-11-02/hour=09/a.parquet")?, None, "a new object is not visible yet");
    batch.publish()?;
    assert_eq!(fs::read(tmp.path().join("t/date=2026-11-02/hour=08/old.parquet"))?, b"new");
    assert_eq!(fs::read(tmp.path().join("t/date=2026-11-02/hour=09/a.parquet"))?, b"a");
    assert_eq!(files(tmp.path()), ["t/date=2026-11-02/hour=08/old.parquet", "t/date=2026-11-02/hour=09/a.parquet"]);

    let mut dropped = store.batch();
    dropped.put("t/date=2026-11-02/hour=10/b.parquet", b"b".to_vec())?;
    drop(dropped);
    assert_eq!(
        files(tmp.path()),
        ["t/date=2026-11-02/hour=08/old.parquet", "t/date=2026-11-02/hour=09/a.parquet"],
        "an unpublished batch leaves neither objects nor temps"
    );
    Ok(())
}

#[cfg(target_os = "linux")]
#[test]
fn file_systems_without_syncfs_fall_back_to_fsyncs_and_real_failures_do_not() {
    use crate::store::syncfs_unsupported;
    use std::io::{Error, ErrorKind};
    assert!(syncfs_unsupported(&Error::from_raw_os_error(38)), "ENOSYS");
    assert!(syncfs_unsupported(&Error::from_raw_os_error(22)), "EINVAL");
    assert!(syncfs_unsupported(&Error::from_raw_os_error(95)), "EOPNOTSUPP");
    assert!(!syncfs_unsupported(&Error::from_raw_os_error(5)), "EIO is a failure");
    assert!(!syncfs_unsupported(&Error::from(ErrorKind::PermissionDenied)));
}

#[test]
fn per_column_settings_name_real_columns() {
    // A misspelt name would silently leave the setting off.
    let schemas = [
        ("journeys", schema::journeys(&[]).unwrap().schema()),
        ("journey_windows", schema::journey_windows(&[]).unwrap().schema()),
        ("paths", schema::paths(&[]).unwrap().schema()),
        ("attribution", schema::attribution(&[]).unwrap().schema()),
        ("rejected", schema::rejected(&[]).unwrap().schema()),
        ("identities", schema::identities(&[]).unwrap().schema()),
    ];
    for (table, schema) in schemas {
        for column in schema::distinct_columns(table).iter().chain(schema::unsorted_id_columns(table)) {
            assert!(schema.field_with_name(column).is_ok(), "{table}.{column} is not a column");
        }
    }
    for table in TABLES {
        let listed = !schema::distinct_columns(table).is_empty() || !schema::unsorted_id_columns(table).is_empty();
        let checked =
            ["journeys", "journey_windows", "paths", "attribution", "rejected", "identities"].contains(&table);
        assert!(!listed || checked, "{table} has per-column settings this test does not check");
    }
}

/// Every file under `dir` with its bytes.
fn contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files(dir).into_iter().map(|f| (f.clone(), fs::read(dir.join(&f)).unwrap_or_default())).collect()
}

/// `sample()` with its journeys and activity spread over `hours` hours.
fn many_hours(hours: i64) -> Rows {
    let mut rows = sample();
    for h in 0..hours {
        rows.journeys.push(journey(T0 + h * HOUR, Some("j"), None));
        let mut a = rows.activity[0].clone();
        a.window_start = T0 + h * HOUR;
        rows.activity.push(a);
    }
    rows
}

#[test]
fn split_parts_write_exactly_the_files_of_the_whole_batch() -> TestResult {
    let rows = many_hours(7);
    let (whole, parted) = (tempfile::tempdir()?, tempfile::tempdir()?);
    ParquetSink::new(whole.path())?.write_batch(&rows, 2, 40)?;
    for parts in [1, 2, 3, 5] {
        let split = split_by_file(rows.clone(), parts);
        assert_eq!(split.len(), parts);
        let total: Vec<usize> = (0..TABLES.len()).map(|t| split.iter().map(|p| p.counts()[t]).sum()).collect();
        assert_eq!(total, rows.counts().to_vec(), "{parts} parts keep every row once");
        let sink = ParquetSink::new(parted.path())?;
        let mut keys = Vec::new();
        for part in split.iter().rev() {
            keys.extend(sink.write_batch(part, 2, 40)?.keys);
        }
        keys.sort();
        let before = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), before, "{parts} parts: no file is written by two parts");
        assert_eq!(contents(parted.path()), contents(whole.path()), "{parts} parts");
    }
    Ok(())
}

#[test]
fn a_publication_writes_the_files_of_its_batches_and_shows_them_only_when_published() -> TestResult {
    let (one_by_one, together) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let sink = ParquetSink::new(one_by_one.path())?;
    let mut expected = WriteReport::default();
    for (rows, offset) in [(sample(), 0), (many_hours(3), 100)] {
        let r = sink.write_batch(&rows, 1, offset)?;
        for t in 0..TABLES.len() {
            expected.files[t] += r.files[t];
            expected.rows[t] += r.rows[t];
        }
        expected.keys.extend(r.keys);
    }
    let sink = ParquetSink::new(together.path())?;
    let mut publication = sink.publication();
    publication.add(&sample(), 1, 0, false)?;
    publication.add(&many_hours(3), 1, 100, false)?;
    assert!(
        files(together.path()).iter().all(|f| f.rsplit('/').next().is_some_and(|n| n.starts_with('.'))),
        "nothing under a final name before publish: {:?}",
        files(together.path())
    );
    assert_eq!(publication.publish()?, expected);
    assert_eq!(contents(together.path()), contents(one_by_one.path()));
    Ok(())
}

#[test]
fn small_files_are_written_without_dictionaries_and_large_ones_with() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let sink = ParquetSink::new(tmp.path())?;
    let rows = Rows {
        journeys: (0..SMALL_FILE_ROWS as i64).map(|i| journey(T0 + i, None, None)).collect(),
        activity: sample().activity,
        ..Rows::default()
    };
    let report = sink.write_batch(&rows, 0, 0)?;
    for key in &report.keys {
        let meta = ParquetRecordBatchReaderBuilder::try_new(File::open(tmp.path().join(key))?)?.metadata().clone();
        let dictionaries =
            meta.row_groups().iter().flat_map(|g| g.columns()).filter(|c| c.dictionary_page_offset().is_some()).count();
        let rows_in_file = meta.file_metadata().num_rows() as usize;
        if rows_in_file < SMALL_FILE_ROWS {
            assert_eq!(dictionaries, 0, "{key}: {rows_in_file} rows");
        } else {
            // `first_channel`, `last_channel`, `outcome`…: repeated values keep their dictionary.
            assert!(dictionaries > 0, "{key}: {rows_in_file} rows");
        }
    }
    assert_eq!(report.rows[0], SMALL_FILE_ROWS);
    Ok(())
}
