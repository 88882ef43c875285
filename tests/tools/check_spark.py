#!/usr/bin/env python3
"""Read every table of an omnimeter output with Apache Spark (PyPI pyspark, a local
JVM) and check it against DuckDB's reading of the same files.

    python3 tests/tools/check_spark.py OUT_DIR

Per table: Spark discovers the Hive partitions (date, hour), the row counts agree, the
timestamp columns are Spark TimestampType (UTC instants, not integers or strings) with
the same instants as DuckDB reads, and a few sums agree. Prints one line per table;
exits 1 on any difference.
"""
import os
import sys

import duckdb
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import TimestampType

TIMESTAMPS = {
    "journeys": ["start_ts", "end_ts"],
    "activity": ["window_start"],
    "transitions": ["window_start"],
    "journey_windows": ["window_start"],
    "paths": ["window_start"],
    "friction": ["window_start"],
    "attribution": ["window_start"],
    "rejected": [],
    "identities": ["linked_ts"],
    "gaps": ["detected_at"],
}
SUMS = {
    "journeys": ["events", "hops", "conversion_value", "anonymous_events"],
    "activity": ["events"],
    "transitions": ["hops"],
    "journey_windows": ["journeys", "resolution_ms_sum", "fcr"],
    "paths": ["journeys", "conversions"],
    "friction": ["occurrences"],
    "attribution": ["conversions", "value"],
    "rejected": ["offset"],
    "identities": [],
    "gaps": [],
}


def main():
    out = sys.argv[1]
    spark = (SparkSession.builder.master("local[1]").appName("omnimeter-check")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    bad = 0
    tables = [t for t in TIMESTAMPS if os.path.isdir(os.path.join(out, t))]
    if not tables:
        sys.exit("no tables under %s" % out)
    for t in tables:
        path = os.path.join(out, t)
        problems = []
        # Spark's Parquet reader with partition discovery: date=…/hour=… become columns.
        df = spark.read.parquet(path)
        cols = {f.name: f.dataType for f in df.schema.fields}
        glob = "%s/**/*.parquet" % path
        src = "read_parquet('%s', hive_partitioning=true)" % glob
        n_spark = df.count()
        n_duck = db.execute("SELECT count(*) FROM %s" % src).fetchall()[0][0]
        if n_spark != n_duck or n_spark == 0:
            problems.append("rows: spark %d, duckdb %d" % (n_spark, n_duck))
        for part in ("date", "hour"):
            if part not in cols:
                problems.append("partition column %s not discovered" % part)
        for c in TIMESTAMPS[t]:
            if not isinstance(cols.get(c), TimestampType):
                problems.append("%s is %s, not a timestamp" % (c, cols.get(c)))
                continue
            lo, hi = df.agg(F.min(F.unix_millis(c)), F.max(F.unix_millis(c))).collect()[0]
            dlo, dhi = db.execute("SELECT epoch_ms(min(%s)), epoch_ms(max(%s)) FROM %s" % (c, c, src)).fetchall()[0]
            if (lo, hi) != (dlo, dhi):
                problems.append("%s range: spark %s..%s, duckdb %s..%s" % (c, lo, hi, dlo, dhi))
        for c in SUMS[t]:
            s = df.agg(F.sum(F.col("`%s`" % c))).collect()[0][0] or 0
            d = db.execute('SELECT sum("%s") FROM %s' % (c, src)).fetchall()[0][0] or 0
            if abs(float(s) - float(d)) > 1e-6 * max(1.0, abs(float(d))):
                problems.append("sum(%s): spark %s, duckdb %s" % (c, s, d))
        print("%s: %s (%d rows)%s" % (t, "match" if not problems else "DIFFER", n_spark,
                                      "".join("\n  " + p for p in problems)))
        bad += 1 if problems else 0
    spark.stop()
    print("%s: %d of %d table(s) differ" % ("FAIL" if bad else "OK", bad, len(tables)))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
