#!/usr/bin/env python3
"""Checks that docs/reference.md documents everything the code has.

    check_reference.py REFERENCE.md ITEMS.json OUTPUT_DIR

ITEMS.json (written by tests/reference.rs from the code) holds:
  "rejection reasons": [name...]      each as `name` in the input-event section
  "tables": [name...]                 each with a heading `### \\`name\\`` whose column
                                      table lists every column, with its Parquet type
  "declared columns": {table: [[column, parquet type]...]}  tables no file-mode run
                                      writes (gaps); the others are read from the
                                      Parquet files under OUTPUT_DIR/<table>/
  "metrics": {name: {"type": t, "labels": [..]}}  a table row naming `name` with its
                                      type and every label in backticks
  "config keys": [section.key...]     a table row naming `section.key`
  "cli": {subcommand: [--flag...]}    a heading naming `omnimeter <subcommand>` whose
                                      section names every `--flag`
Rows documenting something the code does not have (a column, metric, key or flag
that is not there) are errors too. Prints a summary; exits 1 on any problem.
"""

import json
import re
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

problems = []


def sections(text):
    """(level, title, body) of every Markdown heading; a body runs to the next heading of
    the same or a higher level."""
    heads = [(m.start(), len(m.group(1)), m.group(2)) for m in re.finditer(r"^(#{1,6}) (.*)$", text, re.M)]
    out = []
    for i, (start, level, title) in enumerate(heads):
        end = len(text)
        for s, lv, _ in heads[i + 1 :]:
            if lv <= level:
                end = s
                break
        out.append((level, title, text[start:end]))
    return out


def section(secs, pattern, what):
    found = [body for _, title, body in secs if re.search(pattern, title)]
    if not found:
        problems.append(f"no heading for {what} (a heading matching {pattern!r})")
        return ""
    return found[0]


def ticked(name):
    return re.compile(r"`" + re.escape(name) + r"`")


def rows(body):
    """First cell (backticks stripped) → the whole line, for each Markdown table row."""
    out = {}
    for line in body.splitlines():
        m = re.match(r"^\|\s*`([^`]+)`", line)
        if m:
            out.setdefault(m.group(1), line)
    return out


def arrow_to_parquet(t):
    if pa.types.is_timestamp(t):
        assert t.unit == "ms" and t.tz in ("UTC", "+00:00"), t
        return "TIMESTAMP(MILLIS, UTC)"
    return {
        pa.int32(): "INT32",
        pa.int64(): "INT64",
        pa.float64(): "DOUBLE",
        pa.string(): "STRING",
        pa.large_string(): "STRING",
        pa.binary(): "BINARY",
        pa.large_binary(): "BINARY",
        pa.bool_(): "BOOLEAN",
    }[t]


def written_columns(out_dir, table):
    files = sorted(p for p in (out_dir / table).rglob("*.parquet") if not p.name.startswith("."))
    if not files:
        problems.append(f"table {table}: no Parquet file under {out_dir / table} to read its columns from")
        return []
    schemas = {tuple((f.name, str(f.type)) for f in pq.read_schema(p)) for p in files}
    if len(schemas) != 1:
        problems.append(f"table {table}: files with different schemas: {schemas}")
    schema = pq.read_schema(files[0])
    return [(f.name, arrow_to_parquet(f.type)) for f in schema]


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    text = Path(sys.argv[1]).read_text()
    items = json.loads(Path(sys.argv[2]).read_text())
    out_dir = Path(sys.argv[3])
    secs = sections(text)
    counts = {}

    # Rejection reasons, in the input-event section.
    event = section(secs, r"(?i)^the input event", "the input event")
    for r in items["rejection reasons"]:
        if not ticked(r).search(event):
            problems.append(f"rejection reason `{r}` not in the input-event section")
    counts["rejection reasons"] = len(items["rejection reasons"])

    # Tables and their columns.
    ncols = 0
    for table in items["tables"]:
        body = section(secs, r"^`" + re.escape(table) + r"`$", f"table `{table}`")
        if table in items["declared columns"]:
            cols = [tuple(c) for c in items["declared columns"][table]]
        else:
            cols = written_columns(out_dir, table)
        documented = rows(body)
        for name, ptype in cols:
            ncols += 1
            line = documented.get(name)
            if line is None:
                problems.append(f"table `{table}`: column `{name}` not in its column table")
            elif ptype not in line:
                problems.append(f"table `{table}`: column `{name}` should say its Parquet type {ptype}: {line}")
        for extra in set(documented) - {c for c, _ in cols}:
            problems.append(f"table `{table}`: documents a column `{extra}` the table does not have")
    counts["tables"] = len(items["tables"])
    counts["columns"] = ncols

    # Metrics: name, type and labels on one table row.
    msec = section(secs, r"(?i)^prometheus metrics", "the Prometheus metrics")
    documented = rows(msec)
    for name, m in items["metrics"].items():
        line = documented.get(name)
        if line is None:
            problems.append(f"metric `{name}` has no row in the metrics section")
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[1] != m["type"]:
            problems.append(f"metric `{name}`: type should be {m['type']}: {line}")
            continue
        for label in m["labels"]:
            if not ticked(label).search(cells[2]):
                problems.append(f"metric `{name}`: label `{label}` missing from its labels cell: {line}")
        for label in re.findall(r"`([^`]+)`", cells[2]):
            if label not in m["labels"]:
                problems.append(f"metric `{name}`: documents a label `{label}` it does not have")
    for extra in set(documented) - set(items["metrics"]):
        problems.append(f"metrics section documents `{extra}`, which the registry does not have")
    counts["metrics"] = len(items["metrics"])

    # Config keys.
    csec = section(secs, r"(?i)^configuration", "the configuration keys")
    documented = rows(csec)
    for key in items["config keys"]:
        if key not in documented:
            problems.append(f"config key `{key}` has no row in the configuration section")
    for extra in set(documented) - set(items["config keys"]):
        if not extra.startswith("kafka.properties"):
            problems.append(f"configuration section documents `{extra}`, which is not a config key")
    counts["config keys"] = len(items["config keys"])

    # Command line: a section per subcommand naming each flag.
    nflags = 0
    for cmd, flags in items["cli"].items():
        body = section(secs, r"`omnimeter " + re.escape(cmd) + r"[` ]", f"`omnimeter {cmd}`")
        for flag in flags:
            nflags += 1
            if not re.search(r"`" + re.escape(flag) + r"[` ]", body):
                problems.append(f"`omnimeter {cmd}`: flag `{flag}` not in its section")
        for extra in {r.split()[0] for r in rows(body)} - set(flags):
            if extra.startswith("--"):
                problems.append(f"`omnimeter {cmd}` documents a flag `{extra}` it does not have")
    counts["subcommands"] = len(items["cli"])
    counts["flags"] = nflags

    # Links stay inside the repository.
    for target in re.findall(r"\]\(([^)]+)\)", text):
        if re.match(r"[a-z]+://", target):
            problems.append(f"link to outside the repository: {target}")
            continue
        path = target.split("#")[0]
        if path and not (Path(sys.argv[1]).parent / path).resolve().exists():
            problems.append(f"link to a missing file: {target}")

    print("checked: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if problems:
        print(f"{len(problems)} problem(s) in {sys.argv[1]}:")
        for p in problems:
            print("  " + p)
        sys.exit(1)
    print(f"{sys.argv[1]} documents all of them")


if __name__ == "__main__":
    main()
