//! Finding a table's Parquet files in the Hive layout and reading named columns
//! from them, tolerant of the integer, timestamp and string encodings other
//! writers (Spark, DuckDB, pyarrow) may produce for the same logical column.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{Array, ArrayRef, BooleanArray, GenericStringArray, PrimitiveArray, RecordBatch, StringViewArray};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::Error;

/// Every `*.parquet` file under `root/<table>`, sorted so reports are reproducible.
/// A missing table folder simply has no files.
pub(crate) fn table_files(root: &Path, table: &str) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    walk(&root.join(table), &mut files)?;
    files.sort();
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let io_err = |source| Error::Io { path: dir.to_path_buf(), source };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Dot files are the sink's unpublished temps; underscore files are Hive
        // markers (`_SUCCESS`) and bookkeeping folders.
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let path = entry.path();
        if entry.file_type().map_err(io_err)?.is_dir() {
            walk(&path, out)?;
        } else if name.ends_with(".parquet") {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads `columns` of one file batch by batch, plus those of `optional` the file has
/// (columns newer versions added: [`Batch::has`] tells). Only those columns are decoded,
/// which keeps wide tables (journeys, rejected payloads) cheap.
pub(crate) fn read_file(
    path: &Path,
    table: &'static str,
    columns: &[&'static str],
    optional: &[&'static str],
    mut each: impl FnMut(&Batch<'_>) -> Result<(), Error>,
) -> Result<(), Error> {
    let file = File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let parquet_err = |source| Error::Parquet { path: path.to_path_buf(), source };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err)?;
    let mut roots = Vec::with_capacity(columns.len());
    for &column in columns {
        let index = builder.schema().index_of(column).map_err(|_| Error::MissingColumn {
            table,
            column,
            path: path.to_path_buf(),
        })?;
        roots.push(index);
    }
    roots.extend(optional.iter().filter_map(|&column| builder.schema().index_of(column).ok()));
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder.with_projection(mask).build().map_err(parquet_err)?;
    for batch in reader {
        let batch = batch.map_err(|source| Error::Arrow { path: path.to_path_buf(), source })?;
        each(&Batch { batch, path, table })?;
    }
    Ok(())
}

/// A decoded record batch that hands out typed column views by name.
pub(crate) struct Batch<'a> {
    batch: RecordBatch,
    path: &'a Path,
    table: &'static str,
}

impl Batch<'_> {
    pub(crate) fn len(&self) -> usize {
        self.batch.num_rows()
    }

    /// Whether the batch holds `column` (an optional column the file has).
    pub(crate) fn has(&self, column: &str) -> bool {
        self.batch.column_by_name(column).is_some()
    }

    fn column(&self, column: &'static str) -> Result<&ArrayRef, Error> {
        self.batch.column_by_name(column).ok_or_else(|| Error::MissingColumn {
            table: self.table,
            column,
            path: self.path.to_path_buf(),
        })
    }

    fn wrong_type(&self, column: &'static str, array: &ArrayRef, expected: &'static str) -> Error {
        Error::ColumnType {
            table: self.table,
            column,
            found: array.data_type().to_string(),
            expected,
            path: self.path.to_path_buf(),
        }
    }

    /// An integer or timestamp column; timestamps come out in milliseconds.
    pub(crate) fn ints(&self, column: &'static str) -> Result<Ints<'_>, Error> {
        let a = self.column(column)?;
        let ints = match a.data_type() {
            DataType::Int64 => a.as_primitive_opt::<Int64Type>().map(Ints::I64),
            DataType::Int32 => a.as_primitive_opt::<Int32Type>().map(Ints::I32),
            DataType::Timestamp(TimeUnit::Second, _) => a.as_primitive_opt::<TimestampSecondType>().map(Ints::Sec),
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                a.as_primitive_opt::<TimestampMillisecondType>().map(Ints::Milli)
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                a.as_primitive_opt::<TimestampMicrosecondType>().map(Ints::Micro)
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                a.as_primitive_opt::<TimestampNanosecondType>().map(Ints::Nano)
            }
            _ => None,
        };
        ints.ok_or_else(|| self.wrong_type(column, a, "an integer or timestamp"))
    }

    pub(crate) fn floats(&self, column: &'static str) -> Result<Floats<'_>, Error> {
        let a = self.column(column)?;
        let floats = match a.data_type() {
            DataType::Float64 => a.as_primitive_opt::<Float64Type>().map(Floats::F64),
            DataType::Float32 => a.as_primitive_opt::<Float32Type>().map(Floats::F32),
            DataType::Int64 => a.as_primitive_opt::<Int64Type>().map(Floats::I64),
            DataType::Int32 => a.as_primitive_opt::<Int32Type>().map(Floats::I32),
            _ => None,
        };
        floats.ok_or_else(|| self.wrong_type(column, a, "a number"))
    }

    pub(crate) fn strs(&self, column: &'static str) -> Result<Strs<'_>, Error> {
        let a = self.column(column)?;
        let strs = match a.data_type() {
            DataType::Utf8 => a.as_string_opt::<i32>().map(Strs::Utf8),
            DataType::LargeUtf8 => a.as_string_opt::<i64>().map(Strs::Large),
            DataType::Utf8View => a.as_string_view_opt().map(Strs::View),
            _ => None,
        };
        strs.ok_or_else(|| self.wrong_type(column, a, "a string"))
    }

    pub(crate) fn bools(&self, column: &'static str) -> Result<&BooleanArray, Error> {
        let a = self.column(column)?;
        a.as_boolean_opt().ok_or_else(|| self.wrong_type(column, a, "a boolean"))
    }
}

pub(crate) enum Ints<'a> {
    I64(&'a PrimitiveArray<Int64Type>),
    I32(&'a PrimitiveArray<Int32Type>),
    Sec(&'a PrimitiveArray<TimestampSecondType>),
    Milli(&'a PrimitiveArray<TimestampMillisecondType>),
    Micro(&'a PrimitiveArray<TimestampMicrosecondType>),
    Nano(&'a PrimitiveArray<TimestampNanosecondType>),
}

impl Ints<'_> {
    pub(crate) fn get(&self, i: usize) -> Option<i64> {
        fn at<T: arrow_array::ArrowPrimitiveType>(a: &PrimitiveArray<T>, i: usize) -> Option<T::Native> {
            (i < a.len() && a.is_valid(i)).then(|| a.value(i))
        }
        match self {
            Ints::I64(a) => at(a, i),
            Ints::I32(a) => at(a, i).map(i64::from),
            Ints::Sec(a) => at(a, i).map(|s| s.saturating_mul(1000)),
            Ints::Milli(a) => at(a, i),
            Ints::Micro(a) => at(a, i).map(|us| us.div_euclid(1000)),
            Ints::Nano(a) => at(a, i).map(|ns| ns.div_euclid(1_000_000)),
        }
    }

    /// A count; nulls count as zero.
    pub(crate) fn count(&self, i: usize) -> i64 {
        self.get(i).unwrap_or(0)
    }
}

pub(crate) enum Floats<'a> {
    F64(&'a PrimitiveArray<Float64Type>),
    F32(&'a PrimitiveArray<Float32Type>),
    I64(&'a PrimitiveArray<Int64Type>),
    I32(&'a PrimitiveArray<Int32Type>),
}

impl Floats<'_> {
    /// The value, nulls and non-finite values as zero so one bad cell cannot poison a sum.
    pub(crate) fn get(&self, i: usize) -> f64 {
        fn at<T: arrow_array::ArrowPrimitiveType>(a: &PrimitiveArray<T>, i: usize) -> Option<T::Native> {
            (i < a.len() && a.is_valid(i)).then(|| a.value(i))
        }
        let v = match self {
            Floats::F64(a) => at(a, i),
            Floats::F32(a) => at(a, i).map(f64::from),
            Floats::I64(a) => at(a, i).map(|v| v as f64),
            Floats::I32(a) => at(a, i).map(f64::from),
        };
        v.filter(|v| v.is_finite()).unwrap_or(0.0)
    }
}

pub(crate) enum Strs<'a> {
    Utf8(&'a GenericStringArray<i32>),
    Large(&'a GenericStringArray<i64>),
    View(&'a StringViewArray),
}

impl Strs<'_> {
    pub(crate) fn get(&self, i: usize) -> Option<&str> {
        match self {
            Strs::Utf8(a) => (i < a.len() && a.is_valid(i)).then(|| a.value(i)),
            Strs::Large(a) => (i < a.len() && a.is_valid(i)).then(|| a.value(i)),
            Strs::View(a) => (i < a.len() && a.is_valid(i)).then(|| a.value(i)),
        }
    }

    /// A non-nullable name; a stray null reads as empty rather than failing the report.
    pub(crate) fn name(&self, i: usize) -> &str {
        self.get(i).unwrap_or("")
    }
}

/// `Some(true/false)` or `None` for null.
pub(crate) fn bool_at(a: &BooleanArray, i: usize) -> Option<bool> {
    (i < a.len() && a.is_valid(i)).then(|| a.value(i))
}
