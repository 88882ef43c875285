#!/usr/bin/env python3
"""Checks docs/event.schema.json against what omnimeter's decoder decided.

    check_schema.py SCHEMA FILE.ndjson...

For each FILE, `FILE` with `.ndjson` replaced by `.expected/rejected.csv` holds the
decoder's verdicts (columns reason,raw,partition,offset,raw_is_utf8; offset = 0-based
line number). Every non-blank line is validated with the `jsonschema` package:
- accepted lines (absent from rejected.csv, or rejected only as `late`, which is a
  matter of time, not of shape) must validate;
- lines rejected for a reason the schema can express must fail validation;
- reasons it cannot express are skipped: `invalid_json` (not JSON at all), `too_large`
  (a size limit in bytes), `bad_ts` (the schema checks the layout, not whether a date
  exists), and, where the difference matters, `field_length` on non-ASCII text (bytes
  against code points), `wrong_type` of a ts written as 1.0 or 1e3, `bad_value` of 1e999.
Prints a summary; exits 1 on any disagreement.
"""

import csv
import json
import math
import sys
from collections import Counter
from pathlib import Path

import jsonschema

# Reasons the schema states exactly (up to the per-line exceptions in `inexpressible`).
EXPRESSIBLE = {
    "missing_field",
    "wrong_type",
    "field_length",
    "bad_channel",
    "unknown_type",
    "bad_value",
    "not_object",
}
# Reasons skipped outright.
SKIPPED = {"invalid_json": "not JSON at all", "too_large": "a limit in bytes"}
# Reasons the schema states only partly: reported, never a disagreement.
PARTLY = {"bad_ts": "layout and field ranges, not whether the date exists"}


def strings(v):
    """Every string (keys included) inside a parsed JSON value."""
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for k, x in v.items():
            yield k
            yield from strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from strings(x)


def inexpressible(reason, doc):
    """Why a rejected line that validates is still no disagreement, or None."""
    if not isinstance(doc, dict):
        return None
    if reason == "field_length" and any(not s.isascii() for s in strings(doc)):
        return "UTF-8 bytes vs code points"
    if reason == "bad_value" and isinstance(doc.get("value"), float) and not math.isfinite(doc["value"]):
        return "value not finite"
    if reason == "wrong_type" and isinstance(doc.get("ts"), float) and doc["ts"].is_integer():
        return "ts written as a float literal with an integral value"
    return None


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    schema = json.loads(Path(sys.argv[1]).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    stats = Counter()
    for name in sys.argv[2:]:
        path = Path(name)
        expected = path.with_suffix(".expected") / "rejected.csv"
        verdicts = {}
        with expected.open(newline="") as f:
            for row in csv.DictReader(f):
                verdicts[int(row["offset"])] = row["reason"]
        lines = path.read_bytes().split(b"\n")
        seen = set()
        for offset, line in enumerate(lines):
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line.strip():
                continue
            seen.add(offset)
            reason = verdicts.get(offset)
            where = f"{name}:{offset}"
            if reason in SKIPPED:
                stats[f"skipped {reason} ({SKIPPED[reason]})"] += 1
                continue
            try:
                doc = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                problems.append(f"{where}: decoder said {reason or 'accepted'}, Python cannot parse it: {e}")
                continue
            errors = list(validator.iter_errors(doc))
            if reason in PARTLY:
                caught = "invalid" if errors else "valid"
                stats[f"{reason}, {caught} (partly expressible: {PARTLY[reason]})"] += 1
            elif reason is None or reason == "late":
                stats["accepted, valid" if not errors else "accepted, INVALID"] += 1
                if errors:
                    problems.append(f"{where}: accepted by omnimeter, refused by the schema: {errors[0].message}")
            elif reason in EXPRESSIBLE:
                if errors:
                    stats[f"{reason}, invalid"] += 1
                elif why := inexpressible(reason, doc):
                    stats[f"{reason}, valid: skipped ({why})"] += 1
                else:
                    stats[f"{reason}, VALID"] += 1
                    problems.append(f"{where}: rejected as {reason} by omnimeter, accepted by the schema: {line[:200]!r}")
            else:
                problems.append(f"{where}: unknown reason {reason!r} in {expected}")
        for offset in sorted(set(verdicts) - seen):
            problems.append(f"{name}:{offset}: in {expected} but not a non-blank line of the file")
    width = max(map(len, stats), default=0)
    for k in sorted(stats):
        print(f"  {k:<{width}}  {stats[k]}")
    if problems:
        print(f"{len(problems)} disagreement(s):")
        for p in problems[:50]:
            print("  " + p)
        sys.exit(1)
    print(f"schema agrees with the decoder on {sum(stats.values())} lines of {len(sys.argv) - 2} file(s)")


if __name__ == "__main__":
    main()
