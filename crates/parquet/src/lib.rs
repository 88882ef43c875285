//! The Parquet sink of SPEC §4: writes a batch of engine [`Rows`] as one file per
//! table and UTC hour under `ROOT/<table>/date=YYYY-MM-DD/hour=HH/`, named after the
//! batch's source position and published atomically, so replays overwrite rather than duplicate.

mod layout;
mod schema;
mod writer;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use arrow_schema::ArrowError;
use omnimeter_engine::{Rows, TABLES};
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;

/// Rows per row group: large enough for good compression and scans, small enough
/// that readers can parallelise over big hourly files.
const MAX_ROW_GROUP_ROWS: usize = 128 * 1024;

/// Past this many remembered folders we forget them all; re-checking a folder
/// costs three fsyncs, an unbounded set would cost memory forever.
const MAX_KNOWN_DIRS: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("parquet sink I/O failed on {}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot write parquet file {}", path.display())]
    Parquet { path: PathBuf, source: ParquetError },
    #[error("cannot build the arrow batch for {}", path.display())]
    Arrow { path: PathBuf, source: ArrowError },
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
    /// Final paths of every published file, in table order then hour order.
    pub paths: Vec<PathBuf>,
}

/// Writes row batches under one output root.
#[derive(Debug)]
pub struct ParquetSink {
    root: PathBuf,
    props: WriterProperties,
    /// Hour folders created (and made durable) by this sink, so that is done once.
    known_dirs: HashSet<PathBuf>,
}

impl ParquetSink {
    /// Creates `root` if needed and checks that files can be created in it, so a
    /// bad output path fails at start-up rather than at the first flush.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|source| Error::Io { path: root.clone(), source })?;
        // Unique per sink: several workers (processes, or threads of one demo) may share one root.
        static SINKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SINKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let probe = root.join(format!(".omnimeter-write-probe-{}-{n}", std::process::id()));
        fs::File::create(&probe)
            .and_then(|_| fs::remove_file(&probe))
            .map_err(|source| Error::Io { path: probe, source })?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
            .build();
        Ok(ParquetSink { root, props, known_dirs: HashSet::new() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes `rows`, which came from `partition` starting at `first_offset`, as one
    /// file per (table, UTC hour). The file name depends only on the position, so
    /// writing the same batch again replaces its files; callers must therefore give
    /// each distinct batch of a partition a distinct `first_offset`.
    ///
    /// On error some files of the batch may already be published: retry the batch,
    /// or drop them with [`ParquetSink::remove_from`].
    pub fn write_batch(&mut self, rows: &Rows, partition: i32, first_offset: i64) -> Result<WriteReport> {
        self.write_named(rows, partition, first_offset, false)
    }

    /// Writes the rows of closing every journey at the end of a finite input
    /// (`--until-end`), which have no offsets of their own: named after the next
    /// offset with an `-end` mark.
    pub fn write_closing_batch(&mut self, rows: &Rows, partition: i32, next_offset: i64) -> Result<WriteReport> {
        self.write_named(rows, partition, next_offset, true)
    }

    fn write_named(&mut self, rows: &Rows, partition: i32, first_offset: i64, closing: bool) -> Result<WriteReport> {
        if partition < 0 || first_offset < 0 {
            return Err(Error::NegativePosition { partition, offset: first_offset });
        }
        let mut out = Out { name: layout::file_name(partition, first_offset, closing), report: WriteReport::default() };
        self.write_table(&mut out, 0, &rows.journeys, |r| r.end_ts, schema::journeys)?;
        self.write_table(&mut out, 1, &rows.activity, |r| r.window_start, schema::activity)?;
        self.write_table(&mut out, 2, &rows.transitions, |r| r.window_start, schema::transitions)?;
        self.write_table(&mut out, 3, &rows.journey_windows, |r| r.window_start, schema::journey_windows)?;
        self.write_table(&mut out, 4, &rows.paths, |r| r.window_start, schema::paths)?;
        self.write_table(&mut out, 5, &rows.friction, |r| r.window_start, schema::friction)?;
        self.write_table(&mut out, 6, &rows.attribution, |r| r.window_start, schema::attribution)?;
        self.write_table(&mut out, 7, &rows.rejected, |r| r.placed_ts, schema::rejected)?;
        Ok(out.report)
    }

    fn write_table<T>(
        &mut self,
        out: &mut Out,
        table: usize,
        rows: &[T],
        ts: fn(&T) -> i64,
        build: schema::Build<T>,
    ) -> Result<()> {
        let mut by_hour: BTreeMap<i64, Vec<&T>> = BTreeMap::new();
        for row in rows {
            by_hour.entry(layout::hour_of(ts(row))).or_default().push(row);
        }
        for (hour, group) in by_hour {
            let dir = layout::hour_dir(&self.root, TABLES[table], hour);
            self.ensure_dir(&dir)?;
            let batch = build(&group).map_err(|source| Error::Arrow { path: dir.join(&out.name), source })?;
            let path = writer::publish(&dir, &out.name, &batch, &self.props)?;
            out.report.files[table] += 1;
            out.report.rows[table] += group.len();
            out.report.paths.push(path);
        }
        Ok(())
    }

    /// Creates an hour folder and fsyncs its parents, so that after a crash a
    /// published file is not lost with a folder entry that never reached disk.
    fn ensure_dir(&mut self, dir: &Path) -> Result<()> {
        if self.known_dirs.contains(dir) {
            return Ok(());
        }
        fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
        // date folder, table folder, root
        for parent in dir.ancestors().skip(1).take(3) {
            writer::sync_dir(parent)?;
        }
        if self.known_dirs.len() >= MAX_KNOWN_DIRS {
            self.known_dirs.clear();
        }
        self.known_dirs.insert(dir.to_path_buf());
        Ok(())
    }

    /// Deletes every published file of `partition` whose first offset is at least
    /// `from_offset`, in all tables, plus that partition's leftover temp files.
    /// Recovery calls it to drop output of batches whose offsets were never
    /// committed, before replaying them. A closing batch at exactly `from_offset`
    /// is kept when `closed_at_from` (the checkpoint says it was committed).
    /// Returns how many files were deleted.
    pub fn remove_from(&self, partition: i32, from_offset: i64, closed_at_from: bool) -> Result<usize> {
        let mut removed = 0;
        for table in TABLES {
            for date in subdirs(&self.root.join(table), "date=")? {
                for hour in subdirs(&date, "hour=")? {
                    removed += remove_in(&hour, partition, from_offset, closed_at_from)?;
                }
            }
        }
        Ok(removed)
    }
}

/// Per-batch state threaded through the tables.
struct Out {
    name: String,
    report: WriteReport,
}

/// Folders in `dir` named `prefix…`; a missing `dir` just has none.
fn subdirs(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let io_err = |source| Error::Io { path: dir.to_path_buf(), source };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err)?;
        let is_dir = entry.file_type().map_err(io_err)?.is_dir();
        if is_dir && entry.file_name().to_str().is_some_and(|n| n.starts_with(prefix)) {
            found.push(entry.path());
        }
    }
    Ok(found)
}

fn remove_in(dir: &Path, partition: i32, from_offset: i64, closed_at_from: bool) -> Result<usize> {
    let io_err = |path: &Path, source| Error::Io { path: path.to_path_buf(), source };
    let mut removed = 0;
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let Some(named) = entry.file_name().to_str().and_then(layout::parse_name) else {
            continue;
        };
        // Any temp of the partition is stale: recovery runs before writing resumes.
        let uncommitted = if named.closing && named.first_offset == from_offset {
            !closed_at_from
        } else {
            named.first_offset >= from_offset
        };
        if named.partition == partition && (named.temp || uncommitted) {
            let path = entry.path();
            fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
            removed += 1;
        }
    }
    if removed > 0 {
        writer::sync_dir(dir)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests;
