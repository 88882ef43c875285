#!/usr/bin/env python3
"""Check omnimeter's Parquet output against expected tables as CSV, with DuckDB as the reader.

    python3 tests/tools/check_tables.py EXPECTED_DIR OUT_DIR

journeys and rejected compare as multisets of rows; the window tables compare
after summing rows with the same key (rows of one key may come from several
partitions or flushes, SPEC §3), all-zero keys ignored, floats within 1e-6.
journey_windows percentiles compare too when the output has one row per key.
With identity data (an identities.csv, SPEC §6), journeys' anonymous_events and the
identities table compare too (a multiset of rows).
Prints one line per table and exits 1 on any difference.
"""
import os
import sys

import duckdb

TS, INT, FLOAT, STR, BOOL = "ts", "int", "float", "str", "bool"
JOURNEYS = [("customer_id", STR), ("journey_id", STR), ("start_ts", TS), ("end_ts", TS), ("duration_ms", INT),
            ("events", INT), ("path", STR), ("hops", INT), ("channels", INT), ("first_channel", STR),
            ("last_channel", STR), ("outcome", STR), ("conversion_value", FLOAT), ("resolution_ms", INT),
            ("first_contact_resolution", BOOL), ("repeat_contacts", INT), ("unanswered_contacts", INT), ("errors", INT)]
W = ("window_start", TS)
AGG = {
    "activity": ([W, ("channel", STR), ("type", STR)], [("events", INT)]),
    "transitions": ([W, ("from_channel", STR), ("to_channel", STR)], [("hops", INT)]),
    "journey_windows": ([W, ("first_channel", STR), ("outcome", STR)],
                        [("journeys", INT), ("hops", INT), ("conversion_value", FLOAT), ("resolved", INT),
                         ("resolution_ms_sum", INT), ("fcr", INT)]),
    "paths": ([W, ("path", STR)], [("journeys", INT), ("conversions", INT), ("conversion_value", FLOAT)]),
    "friction": ([W, ("kind", STR), ("channel", STR), ("step", STR)], [("occurrences", INT)]),
    "attribution": ([W, ("model", STR), ("channel", STR)], [("conversions", FLOAT), ("value", FLOAT)]),
}
PCT = ["resolution_ms_p50", "resolution_ms_p90", "resolution_ms_p99"]
IDENTITIES = [("identity_type", STR), ("identity_value", STR), ("customer_id", STR), ("linked_ts", TS),
              ("conflict", BOOL)]


def expr(col, typ, from_csv):
    c = '"%s"' % col
    if from_csv:
        c = "NULLIF(%s, '')" % c
        return {TS: "epoch_ms(CAST(%s AS TIMESTAMPTZ))" % c, INT: "CAST(%s AS BIGINT)" % c,
                FLOAT: "round(CAST(%s AS DOUBLE), 6)" % c, BOOL: "CAST(%s AS BOOLEAN)" % c,
                STR: "coalesce(%s, '')" % c}[typ] + ' AS "%s"' % col
    return {TS: "epoch_ms(%s)" % c, INT: "CAST(%s AS BIGINT)" % c, FLOAT: "round(CAST(%s AS DOUBLE), 6)" % c,
            BOOL: c, STR: "coalesce(CAST(%s AS VARCHAR), '')" % c}[typ] + ' AS "%s"' % col


def sources(db, expected, out, table):
    csv = "read_csv('%s/%s.csv', all_varchar=true, header=true)" % (expected, table)
    pq = "read_parquet('%s/%s/**/*.parquet', hive_partitioning=true)" % (out, table)
    return csv, pq


def check_multiset(db, exp_sql, got_sql):
    missing = db.execute("(%s) EXCEPT ALL (%s)" % (exp_sql, got_sql)).fetchall()
    extra = db.execute("(%s) EXCEPT ALL (%s)" % (got_sql, exp_sql)).fetchall()
    n = db.execute("SELECT count(*) FROM (%s)" % exp_sql).fetchone()[0]
    return missing, extra, n


def main():
    expected, out = sys.argv[1], sys.argv[2]
    db = duckdb.connect()
    failures = 0

    identity = os.path.exists(os.path.join(expected, "identities.csv"))
    columns = JOURNEYS + [("anonymous_events", INT)] if identity else JOURNEYS
    csv, pq = sources(db, expected, out, "journeys")
    exp_sql = "SELECT %s FROM %s" % (", ".join(expr(c, t, True) for c, t in columns), csv)
    got_sql = "SELECT %s FROM %s" % (", ".join(expr(c, t, False) for c, t in columns), pq)
    missing, extra, n = check_multiset(db, exp_sql, got_sql)
    failures += report("journeys", n, missing, extra)

    if identity:
        csv, pq = sources(db, expected, out, "identities")
        exp_sql = "SELECT %s FROM %s" % (", ".join(expr(c, t, True) for c, t in IDENTITIES), csv)
        got_sql = "SELECT %s FROM %s" % (", ".join(expr(c, t, False) for c, t in IDENTITIES), pq)
        missing, extra, n = check_multiset(db, exp_sql, got_sql)
        failures += report("identities", n, missing, extra)

    for table, (keys, metrics) in AGG.items():
        csv, pq = sources(db, expected, out, table)
        kcols = ", ".join('"%s"' % c for c, _ in keys)
        sums = ", ".join('round(sum("%s"), 6) AS "%s"' % (c, c) for c, _ in metrics)
        nonzero = " OR ".join('sum("%s") <> 0' % c for c, _ in metrics)

        def agg(src, from_csv):
            inner = "SELECT %s FROM %s" % (", ".join(expr(c, t, from_csv) for c, t in keys + metrics), src)
            return "SELECT %s, %s FROM (%s) GROUP BY ALL HAVING %s" % (kcols, sums, inner, nonzero)

        missing, extra, n = check_multiset(db, agg(csv, True), agg(pq, False))
        failures += report(table, n, missing, extra)
        if table == "journey_windows":
            got_rows = db.execute("SELECT count(*) FROM %s" % pq).fetchone()[0]
            got_keys = db.execute("SELECT count(*) FROM (%s)" % agg(pq, False)).fetchone()[0]
            if got_rows == got_keys:
                cols = [(c, t) for c, t in keys] + [(p, INT) for p in PCT]
                e = "SELECT %s FROM %s" % (", ".join(expr(c, t, True) for c, t in cols), csv)
                g = "SELECT %s FROM %s" % (", ".join(expr(c, t, False) for c, t in cols), pq)
                missing, extra, n = check_multiset(db, e, g)
                failures += report("journey_windows percentiles", n, missing, extra)

    csv, pq = sources(db, expected, out, "rejected")
    # SPEC §1 puts "a numeric string is not an epoch-ms ts" under wrong_type; the identity
    # sample's CSV says bad_ts for "ts":"1793347200000" (docs/semantics.md): the SPEC's words win.
    reason = """CASE WHEN reason = 'bad_ts' AND regexp_matches(raw, '"ts":"[0-9]+"') THEN 'wrong_type'
                ELSE reason END AS reason"""
    exp_sql = "SELECT %s, CASE WHEN raw_is_utf8 = 'true' THEN raw ELSE '<binary>' END AS raw FROM %s" % (reason, csv)
    got_sql = "SELECT reason, coalesce(raw_text, '<binary>') AS raw FROM %s" % pq
    missing, extra, n = check_multiset(db, exp_sql, got_sql)
    failures += report("rejected", n, missing, extra)

    print("%s: %d table(s) differ" % ("FAIL" if failures else "OK", failures))
    sys.exit(1 if failures else 0)


def report(table, n, missing, extra):
    ok = not missing and not extra
    print("%s: %s (%d expected rows/keys, %d missing, %d unexpected)" % (table, "match" if ok else "DIFFER", n, len(missing), len(extra)))
    for r in missing[:5]:
        print("  missing    %r" % (r,))
    for r in extra[:5]:
        print("  unexpected %r" % (r,))
    return 0 if ok else 1


if __name__ == "__main__":
    main()
