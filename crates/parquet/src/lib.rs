//! The Parquet sink of SPEC §4: writes a batch of engine [`Rows`] as one file per
//! table and UTC hour under `ROOT/<table>/date=YYYY-MM-DD/hour=HH/`, named after the
//! batch's source position and published atomically, so replays overwrite rather than
//! duplicate. ROOT is a local directory or an S3 bucket and prefix ([`Store`]).

mod layout;
mod schema;
mod store;
mod writer;

use std::collections::BTreeMap;

use arrow_schema::ArrowError;
use omnimeter_engine::{
    ActivityRow, AttributionRow, FrictionRow, IdentityRow, JourneyRow, JourneyWindowRow, PathRow, RejectedRow, Rows,
    TABLES, TransitionRow,
};
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

pub use layout::hour_of;
pub use schema::GapRow;
pub use store::{Output, PutBatch, S3Output, Store, StoreError};

/// Rows per row group: large enough for good compression and scans, small enough
/// that readers can parallelise over big hourly files.
const MAX_ROW_GROUP_ROWS: usize = 128 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot encode parquet file {location}")]
    Parquet { location: String, source: ParquetError },
    #[error("cannot build the arrow batch for {location}")]
    Arrow { location: String, source: ArrowError },
    #[error("negative source position (partition {partition}, offset {offset}) cannot name a parquet file")]
    NegativePosition { partition: i32, offset: i64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What one [`ParquetSink::write_batch`] published. `files` and `rows` are indexed
/// like [`omnimeter_engine::TABLES`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    pub files: [usize; TABLES.len()],
    pub rows: [usize; TABLES.len()],
    /// Keys (`<table>/date=…/hour=…/<name>.parquet`, relative to the output root) of
    /// every published file, in table order then hour order.
    pub keys: Vec<String>,
}

/// Writes row batches under one output root.
#[derive(Debug)]
pub struct ParquetSink {
    store: Store,
    /// Writer properties per table, indexed like [`TABLES`].
    props: [WriterProperties; TABLES.len()],
    /// The same without dictionaries, for files of fewer than [`SMALL_FILE_ROWS`] rows.
    small_props: [WriterProperties; TABLES.len()],
}

/// Below this many rows a file is written without dictionaries. A dictionary column
/// allocates a hash table of 4,096 slots per file whatever its rows, and glibc handed
/// that memory back to the kernel after each small file (an `madvise`, and a TLB
/// shootdown on every core): sparse data, ~20 rows a file, spent about a sixth of its time so.
/// Below a thousand rows the dictionary saves little, and these files come out no larger.
const SMALL_FILE_ROWS: usize = 1024;

/// SNAPPY, bounded row groups, and dictionary encoding (the default) except on the
/// table's columns of mostly distinct values ([`schema::distinct_columns`]): their
/// dictionary would be about as large as the data, so it cost a hash lookup per value
/// and made the files bigger (written plain: 3.4% fewer instructions in file mode, 11%
/// smaller files). Statistics (page level) and page indexes stay at the defaults,
/// except on id columns ([`schema::unsorted_id_columns`]).
fn table_props(table: &str) -> WriterProperties {
    table_props_builder(table).build()
}

/// [`table_props`] without dictionaries, for files under [`SMALL_FILE_ROWS`] rows.
fn small_table_props(table: &str) -> WriterProperties {
    table_props_builder(table).set_dictionary_enabled(false).build()
}

fn table_props_builder(table: &str) -> parquet::file::properties::WriterPropertiesBuilder {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS));
    for column in schema::distinct_columns(table) {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(*column), false);
    }
    for column in schema::unsorted_id_columns(table) {
        builder = builder.set_column_statistics_enabled(ColumnPath::from(*column), EnabledStatistics::None);
    }
    builder
}

impl ParquetSink {
    /// Opens `output` (creating a local root if needed) and checks that files can
    /// be created in it, so a bad output fails at start-up rather than at the first flush.
    pub fn new(output: impl Into<Output>) -> Result<Self> {
        Self::with_store(Store::open(&output.into())?)
    }

    /// A sink over an opened store (shared with the checkpoints of a worker).
    pub fn with_store(store: Store) -> Result<Self> {
        store.probe()?;
        let props = TABLES.map(table_props);
        let small_props = TABLES.map(small_table_props);
        Ok(ParquetSink { store, props, small_props })
    }

    /// Where the files go.
    pub fn output(&self) -> &Output {
        self.store.output()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Writes `rows`, which came from `partition` starting at `first_offset`, as one
    /// file per (table, UTC hour). The file name depends only on the position, so
    /// writing the same batch again replaces its files; callers must therefore give
    /// each distinct batch of a partition a distinct `first_offset`.
    ///
    /// The batch's files appear together ([`Store::batch`]); an error while renaming
    /// them may leave some published: retry the batch, or drop them with
    /// [`ParquetSink::remove_from`].
    pub fn write_batch(&self, rows: &Rows, partition: i32, first_offset: i64) -> Result<WriteReport> {
        self.write_named(rows, partition, first_offset, false)
    }

    /// Writes the last batch of a finite input (`--until-end`): the rows since the
    /// batch began at `first_offset` plus those of closing every journey, cut where the
    /// input ended rather than by the data. The `-end` mark keeps it apart from the
    /// regular batch a later run starts at the same offset.
    pub fn write_closing_batch(&self, rows: &Rows, partition: i32, first_offset: i64) -> Result<WriteReport> {
        self.write_named(rows, partition, first_offset, true)
    }

    /// Writes `gaps` rows (offset ranges the broker no longer had) of `partition`,
    /// one file per UTC hour of detection, named after the first missing offset.
    pub fn write_gaps(&self, rows: &[GapRow], partition: i32) -> Result<usize> {
        let Some(first) = rows.iter().map(|g| g.from_offset).min() else { return Ok(0) };
        if partition < 0 || first < 0 {
            return Err(Error::NegativePosition { partition, offset: first });
        }
        let mut out = Out { name: layout::file_name(partition, first, false), report: WriteReport::default() };
        let props = table_props("gaps");
        let mut by_hour: BTreeMap<i64, Vec<&GapRow>> = BTreeMap::new();
        for row in rows {
            by_hour.entry(layout::hour_of(row.detected_at)).or_default().push(row);
        }
        for (hour, group) in by_hour {
            let key = format!("{}/{}", layout::hour_dir("gaps", hour), out.name);
            let location = || self.store.location(&key);
            let batch = schema::gaps(&group).map_err(|source| Error::Arrow { location: location(), source })?;
            let bytes =
                writer::encode(&batch, &props).map_err(|source| Error::Parquet { location: location(), source })?;
            self.store.put(&key, bytes)?;
            out.report.keys.push(key);
        }
        Ok(out.report.keys.len())
    }

    /// Starts writing several consecutive batches whose files are published together
    /// ([`Publication`]).
    pub fn publication(&self) -> Publication<'_> {
        Publication { sink: self, files: self.store.batch(), report: WriteReport::default() }
    }

    fn write_named(&self, rows: &Rows, partition: i32, first_offset: i64, closing: bool) -> Result<WriteReport> {
        let mut files = self.store.batch();
        let report = self.stage(&mut files, rows, partition, first_offset, closing)?;
        files.publish()?;
        Ok(report)
    }

    /// Encodes a batch's files into `files`, unpublished.
    fn stage(
        &self,
        files: &mut store::PutBatch<'_>,
        rows: &Rows,
        partition: i32,
        first_offset: i64,
        closing: bool,
    ) -> Result<WriteReport> {
        if partition < 0 || first_offset < 0 {
            return Err(Error::NegativePosition { partition, offset: first_offset });
        }
        let mut out = Out { name: layout::file_name(partition, first_offset, closing), report: WriteReport::default() };
        self.write_table(&mut out, files, 0, &rows.journeys, schema::journeys)?;
        self.write_table(&mut out, files, 1, &rows.activity, schema::activity)?;
        self.write_table(&mut out, files, 2, &rows.transitions, schema::transitions)?;
        self.write_table(&mut out, files, 3, &rows.journey_windows, schema::journey_windows)?;
        self.write_table(&mut out, files, 4, &rows.paths, schema::paths)?;
        self.write_table(&mut out, files, 5, &rows.friction, schema::friction)?;
        self.write_table(&mut out, files, 6, &rows.attribution, schema::attribution)?;
        self.write_table(&mut out, files, 7, &rows.rejected, schema::rejected)?;
        self.write_table(&mut out, files, 8, &rows.identities, schema::identities)?;
        Ok(out.report)
    }

    fn write_table<T: FileHour>(
        &self,
        out: &mut Out,
        files: &mut store::PutBatch<'_>,
        table: usize,
        rows: &[T],
        build: schema::Build<T>,
    ) -> Result<()> {
        let mut by_hour: BTreeMap<i64, Vec<&T>> = BTreeMap::new();
        for row in rows {
            by_hour.entry(row.file_hour()).or_default().push(row);
        }
        for (hour, group) in by_hour {
            let key = format!("{}/{}", layout::hour_dir(TABLES[table], hour), out.name);
            let location = || self.store.location(&key);
            let batch = build(&group).map_err(|source| Error::Arrow { location: location(), source })?;
            let props = if group.len() < SMALL_FILE_ROWS { &self.small_props[table] } else { &self.props[table] };
            let bytes =
                writer::encode(&batch, props).map_err(|source| Error::Parquet { location: location(), source })?;
            files.put(&key, bytes)?;
            out.report.files[table] += 1;
            out.report.rows[table] += group.len();
            out.report.keys.push(key);
        }
        Ok(())
    }

    /// Deletes the files of `partition` that a replay from `from_offset` must not
    /// find, in all tables, and returns how many: that partition's leftover temp
    /// files; closing (`-end`) batches from `from_offset` on, except one at exactly
    /// `from_offset` when `closed_at_from` (the checkpoint covers it); and, with
    /// `regular`, every batch from `from_offset` on.
    ///
    /// Regular batches are cut by the data, so a replay rewrites them byte for byte:
    /// recovery leaves them (`regular = false`), because deleting a file that a
    /// stale worker's later checkpoint covers would lose it. Only a change of the
    /// cut settings, which moves the cuts, needs them gone.
    ///
    /// It lists each table's files once: in a bucket, one request per 1,000 objects.
    pub fn remove_from(&self, partition: i32, from_offset: i64, closed_at_from: bool, regular: bool) -> Result<usize> {
        let mut removed = 0;
        for table in TABLES {
            let doomed: Vec<String> = self
                .store
                .list(table)?
                .into_iter()
                .filter(|key| {
                    let Some(named) = layout::file_in_hour(key, table).and_then(layout::parse_name) else {
                        return false;
                    };
                    // Any temp of the partition is stale: recovery runs before writing resumes.
                    let uncommitted = if named.closing && named.first_offset == from_offset {
                        !closed_at_from
                    } else {
                        (named.closing || regular) && named.first_offset >= from_offset
                    };
                    named.partition == partition && (named.temp || uncommitted)
                })
                .collect();
            self.store.delete(&doomed)?;
            removed += doomed.len();
        }
        Ok(removed)
    }
}

/// The UTC hour ([`hour_of`]) whose folder holds a row's file (SPEC §4: a journey
/// by its `end_ts`, a window row by its `window_start`, a rejected event where it
/// was placed, an identity when it was linked).
trait FileHour {
    fn file_hour(&self) -> i64;
}

macro_rules! file_hour {
    ($($row:ty => $ts:ident),* $(,)?) => {
        $(impl FileHour for $row {
            fn file_hour(&self) -> i64 {
                hour_of(self.$ts)
            }
        })*
    };
}

file_hour! {
    JourneyRow => end_ts,
    ActivityRow => window_start,
    TransitionRow => window_start,
    JourneyWindowRow => window_start,
    PathRow => window_start,
    FrictionRow => window_start,
    AttributionRow => window_start,
    RejectedRow => placed_ts,
    IdentityRow => linked_ts,
}

/// Splits a batch into `parts` batches by file, that is by table and hour of the row's
/// file (`(table + hour) % parts`): no file's rows are split, so writing the parts under
/// the batch's position, in any order and on any threads, publishes the files that
/// writing the whole batch does. Lets several writer threads share a batch: a batch of
/// one hour still spreads its tables over them, and many hours spread each table.
pub fn split_by_file(rows: Rows, parts: usize) -> Vec<Rows> {
    fn split<T: FileHour>(rows: Vec<T>, out: &mut [Rows], table: usize, of: fn(&mut Rows) -> &mut Vec<T>) {
        let n = out.len() as i64;
        if n == 1 {
            *of(&mut out[0]) = rows;
            return;
        }
        for row in rows {
            let part = (row.file_hour() + table as i64).rem_euclid(n) as usize;
            of(&mut out[part]).push(row);
        }
    }
    let mut out: Vec<Rows> = (0..parts.max(1)).map(|_| Rows::default()).collect();
    split(rows.journeys, &mut out, 0, |r| &mut r.journeys);
    split(rows.activity, &mut out, 1, |r| &mut r.activity);
    split(rows.transitions, &mut out, 2, |r| &mut r.transitions);
    split(rows.journey_windows, &mut out, 3, |r| &mut r.journey_windows);
    split(rows.paths, &mut out, 4, |r| &mut r.paths);
    split(rows.friction, &mut out, 5, |r| &mut r.friction);
    split(rows.attribution, &mut out, 6, |r| &mut r.attribution);
    split(rows.rejected, &mut out, 7, |r| &mut r.rejected);
    split(rows.identities, &mut out, 8, |r| &mut r.identities);
    out
}

/// Batches written one after another and published together, with one pair of
/// file-system syncs for all of them rather than a pair per batch: sparse data (a cut
/// for every hour of a hundred days) writes little per cut, and the syncs were a fifth
/// of its time. The files and their names are those of writing each batch with
/// [`ParquetSink::write_batch`]; none is visible before [`Publication::publish`].
pub struct Publication<'s> {
    sink: &'s ParquetSink,
    files: store::PutBatch<'s>,
    report: WriteReport,
}

impl Publication<'_> {
    /// Encodes the batch of `rows` from `partition` starting at `first_offset`, as
    /// [`ParquetSink::write_batch`] names it, or with `closing` as
    /// [`ParquetSink::write_closing_batch`] does.
    pub fn add(&mut self, rows: &Rows, partition: i32, first_offset: i64, closing: bool) -> Result<()> {
        let one = self.sink.stage(&mut self.files, rows, partition, first_offset, closing)?;
        for t in 0..TABLES.len() {
            self.report.files[t] += one.files[t];
            self.report.rows[t] += one.rows[t];
        }
        self.report.keys.extend(one.keys);
        Ok(())
    }

    /// Makes every added batch's files durable and visible.
    pub fn publish(self) -> Result<WriteReport> {
        self.files.publish()?;
        Ok(self.report)
    }
}

/// Per-batch state threaded through the tables.
struct Out {
    name: String,
    report: WriteReport,
}

#[cfg(test)]
mod s3_tests;
#[cfg(test)]
mod tests;
