#!/usr/bin/env python3
"""A bucket of an S3-compatible test server (moto on loopback), seen from outside omnimeter.

    python3 tests/tools/s3_bucket.py create   ENDPOINT BUCKET
    python3 tests/tools/s3_bucket.py download ENDPOINT BUCKET PREFIX DEST

`create` makes the bucket with boto3. `download` reads the output under
s3://BUCKET/PREFIX with pyarrow's S3FileSystem, checks it, and copies it to DEST
(a local output root that tests/tools/compare_outputs.py can read):
- no hidden or temp object (`.name`, `*.tmp`) anywhere under the prefix;
- every object under a table folder is `<table>/date=…/hour=…/pNNNNN-o….parquet`
  and a readable Parquet file (footer and all row groups);
- one checkpoint per partition under `_checkpoints/<topic>/`.
Prints one line of counts; exits 1 on any problem. Credentials: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY (moto accepts any).
"""
import os
import re
import sys

from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs

TABLES = ["journeys", "activity", "transitions", "journey_windows", "paths", "friction", "attribution", "rejected"]
NAME = re.compile(r"^p\d{5}-o\d{20}(-end)?\.parquet$")


def s3(endpoint):
    scheme, host = endpoint.split("://", 1)
    return fs.S3FileSystem(
        endpoint_override=host,
        scheme=scheme,
        access_key=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        region=os.environ.get("AWS_REGION", "us-east-1"),
    )


def create(endpoint, bucket):
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)


def download(endpoint, bucket, prefix, dest):
    remote = s3(endpoint)
    root = "%s/%s" % (bucket, prefix.strip("/")) if prefix.strip("/") else bucket
    files = [i for i in remote.get_file_info(fs.FileSelector(root, recursive=True)) if i.type == fs.FileType.File]

    def fetch(info):
        with remote.open_input_stream(info.path) as f:
            return f.read()

    problems = []
    parquet, rows, checkpoints = 0, 0, 0
    # One GET per object, several at a time: pyarrow releases the GIL while it waits.
    with ThreadPoolExecutor(8) as pool:
        for info, data in zip(files, pool.map(fetch, files)):
            rel = info.path[len(root) + 1:]
            parts = rel.split("/")
            if any(p.startswith(".") or p.endswith(".tmp") for p in parts):
                problems.append("hidden or temp object visible: %s" % rel)
                continue
            if parts[0] == "_checkpoints":
                checkpoints += rel.endswith(".ckpt")
            elif parts[0] in TABLES:
                shaped = (len(parts) == 4 and parts[1].startswith("date=") and parts[2].startswith("hour=")
                          and NAME.match(parts[3]))
                if not shaped:
                    problems.append("object under a table is not an omnimeter file: %s" % rel)
                    continue
                try:
                    rows += pq.read_table(pa.BufferReader(data)).num_rows
                    parquet += 1
                except Exception as e:  # any reader failure is the finding
                    problems.append("unreadable parquet %s: %s" % (rel, e))
                    continue
            else:
                problems.append("unexpected object: %s" % rel)
                continue
            target = os.path.join(dest, *parts)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as out:
                out.write(data)
    for p in problems:
        print("FAIL %s" % p)
    print("%d objects: %d parquet files (%d rows), %d checkpoints" % (len(files), parquet, rows, checkpoints))
    sys.exit(1 if problems else 0)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "create":
        create(*args)
    elif cmd == "download":
        download(*args)
    else:
        sys.exit("unknown command %r: expected create or download" % cmd)


if __name__ == "__main__":
    main()
