#!/usr/bin/env python3
"""The Python baseline for backfill throughput: gzip + json, the grant events
of CloudTrail log files printed as JSON Lines (no classification, so it is a
lower bound on what a Python backfill would cost).

    backfill_baseline.py DIR [--procs N]
"""
import argparse
import gzip
import json
import os
import sys
from multiprocessing import Pool

GRANT_EVENTS = {"CreateGrant", "RetireGrant", "RevokeGrant"}


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    out = []
    for record in json.loads(data).get("Records", []):
        if record.get("eventSource") == "kms.amazonaws.com" and record.get("eventName") in GRANT_EVENTS:
            out.append(json.dumps(record))
    return out


def files(root):
    for folder, _, names in sorted(os.walk(root)):
        for name in sorted(names):
            if name.endswith((".json", ".json.gz")):
                yield os.path.join(folder, name)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--procs", type=int, default=1)
    args = parser.parse_args()
    paths = list(files(args.root))
    out = sys.stdout
    if args.procs == 1:
        results = map(read, paths)
    else:
        pool = Pool(args.procs)
        results = pool.imap(read, paths, chunksize=4)
    for lines in results:
        for line in lines:
            out.write(line + "\n")


if __name__ == "__main__":
    main()
