//! "Spark reads it", checked: every table of a file-mode run over the identity sample
//! (all tables but `gaps`) read by Apache Spark (PyPI `pyspark` on a local JVM) with its
//! Hive partitions discovered, against DuckDB's reading of the same files: row counts,
//! timestamp columns as UTC timestamps with the same instants, and sums.

#![allow(clippy::unwrap_used)]

mod util;

use util::{omnimeter, python_check};

#[test]
fn spark_reads_every_table_as_duckdb_does() {
    let out = tempfile::tempdir().unwrap();
    let run =
        omnimeter(&["run", "--input", "tests/data/public-identity.ndjson", "--output", out.path().to_str().unwrap()]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    python_check(&["tests/tools/check_spark.py", out.path().to_str().unwrap()]);
}
