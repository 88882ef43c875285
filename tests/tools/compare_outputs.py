#!/usr/bin/env python3
"""Compare two omnimeter outputs table by table, with DuckDB as the reader.

    python3 tests/tools/compare_outputs.py OUT_A[,OUT_A2...] OUT_B[,OUT_B2...]

Each side may be several output roots (comma-separated), read together: for
example the Kafka run on one side and one file-mode run per partition on the
other. journeys compare as multisets of rows (partition ignored); window tables
after summing rows with the same key; rejected as multisets of (reason, raw);
identities (SPEC §6) as multisets of rows (partition ignored).
Prints one line per table; exits 1 on any difference.
"""
import os
import sys

import duckdb

JOURNEY_COLS = ["customer_id", "journey_id", "epoch_ms(start_ts)", "epoch_ms(end_ts)", "duration_ms", "events", "path",
                "hops", "channels", "first_channel", "last_channel", "outcome", "round(conversion_value, 6)",
                "resolution_ms", "first_contact_resolution", "repeat_contacts", "unanswered_contacts", "errors",
                "coalesce(anonymous_events, 0)"]
AGG = {
    "activity": (["channel", "type"], ["events"]),
    "transitions": (["from_channel", "to_channel"], ["hops"]),
    "journey_windows": (["first_channel", "outcome"], ["journeys", "hops", "conversion_value", "resolved", "resolution_ms_sum", "fcr"]),
    "paths": (["path"], ["journeys", "conversions", "conversion_value"]),
    "friction": (["kind", "channel", "coalesce(step, '')"], ["occurrences"]),
    "attribution": (["model", "channel"], ["conversions", "value"]),
}


def source(roots, table):
    files = []
    for r in roots.split(","):
        if os.path.isdir(os.path.join(r, table)):
            files.append("'%s/%s/**/*.parquet'" % (r, table))
    if not files:
        return None
    return "read_parquet([%s], hive_partitioning=true, union_by_name=true)" % ", ".join(files)


def diff(db, a, b):
    missing = db.execute("(%s) EXCEPT ALL (%s)" % (a, b)).fetchall()
    extra = db.execute("(%s) EXCEPT ALL (%s)" % (b, a)).fetchall()
    n = db.execute("SELECT count(*) FROM (%s)" % a).fetchone()[0]
    return n, missing, extra


def main():
    a_roots, b_roots = sys.argv[1], sys.argv[2]
    db = duckdb.connect()
    bad = 0
    tables = ["journeys"] + list(AGG) + ["rejected", "identities"]
    for t in tables:
        sa, sb = source(a_roots, t), source(b_roots, t)
        if sa is None and sb is None:
            print("%s: both empty" % t)
            continue
        if sa is None or sb is None:
            print("%s: DIFFER (present on one side only)" % t)
            bad += 1
            continue
        if t == "journeys":
            q = "SELECT %s FROM %%s" % ", ".join(JOURNEY_COLS)
        elif t == "rejected":
            q = "SELECT reason, coalesce(raw_text, '<binary>') FROM %s"
        elif t == "identities":
            q = "SELECT identity_type, identity_value, customer_id, epoch_ms(linked_ts), conflict FROM %s"
        else:
            keys, metrics = AGG[t]
            k = ", ".join(["epoch_ms(window_start)"] + keys)
            m = ", ".join("round(sum(%s), 6)" % c for c in metrics)
            nz = " OR ".join("sum(%s) <> 0" % c for c in metrics)
            q = "SELECT %s, %s FROM %%s GROUP BY ALL HAVING %s" % (k, m, nz)
        n, missing, extra = diff(db, q % sa, q % sb)
        ok = not missing and not extra
        bad += 0 if ok else 1
        print("%s: %s (%d rows/keys; %d only in A, %d only in B)" % (t, "match" if ok else "DIFFER", n, len(missing), len(extra)))
        for r in missing[:3]:
            print("  only in A: %r" % (r,))
        for r in extra[:3]:
            print("  only in B: %r" % (r,))
    print("%s: %d table(s) differ" % ("FAIL" if bad else "OK", bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
