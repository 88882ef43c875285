//! Atomic publication of one Parquet file: write a dot-named temp file beside the
//! final name, fsync it, rename it over the final name, fsync the directory.
//! A reader globbing `*.parquet` sees either no file or a complete one.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use crate::{Error, Result, layout};

pub(crate) fn publish(dir: &Path, name: &str, batch: &RecordBatch, props: &WriterProperties) -> Result<PathBuf> {
    let final_path = dir.join(name);
    let tmp = dir.join(layout::temp_name(name));
    let written = write_synced(&tmp, &final_path, batch, props)
        .and_then(|()| fs::rename(&tmp, &final_path).map_err(|source| Error::Io { path: final_path.clone(), source }));
    if written.is_err() {
        // Best effort: a leftover temp is invisible to readers and `remove_from` sweeps it.
        let _ = fs::remove_file(&tmp);
    }
    written?;
    // The rename is only durable once the directory entry is.
    sync_dir(dir)?;
    Ok(final_path)
}

/// Writes `batch` to `tmp` and fsyncs it; errors name `final_path`, the file the
/// caller asked for.
fn write_synced(tmp: &Path, final_path: &Path, batch: &RecordBatch, props: &WriterProperties) -> Result<()> {
    let io = |source| Error::Io { path: tmp.to_path_buf(), source };
    let pq = |source| Error::Parquet { path: final_path.to_path_buf(), source };
    // `create` truncates, so a temp left by an earlier crash is simply reused.
    let file = File::create(tmp).map_err(io)?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props.clone())).map_err(pq)?;
    writer.write(batch).map_err(pq)?;
    let file = writer.into_inner().map_err(pq)?;
    file.sync_all().map_err(io)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|source| Error::Io { path: dir.to_path_buf(), source })
}
