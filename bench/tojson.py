#!/usr/bin/env python3
"""Turns a pgbench or wrk run into one JSON result line in bench/loadgen's format.

  tojson.py pgbench --stdout FILE --log-prefix PREFIX --scenario S --conns N [--flushes N]
                    [--tag key=value]...
      reads pgbench's summary (transactions, failures, tps) from FILE and the per-transaction
      latencies from PREFIX.* (pgbench -l --log-prefix PREFIX) for the percentiles.
  tojson.py wrap --scenario S --conns N [--tag key=value]...
      reads a JSON line (from bench/wrk_json.lua) on standard input and adds fields.
"""
import argparse
import glob
import json
import re
import sys


def percentile(sorted_values, q):
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), int(q * len(sorted_values))))
    return float(sorted_values[rank - 1])


def parse_tags(pairs):
    tags = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            sys.exit(f"tojson.py: --tag wants key=value, got {pair!r}")
        tags[key] = value
    return tags


def from_pgbench(args):
    text = open(args.stdout, encoding="utf-8", errors="replace").read()

    def grab(pattern, cast=float, default=None):
        m = re.search(pattern, text, re.M)
        if m:
            return cast(m.group(1))
        if default is None:
            sys.exit(f"tojson.py: no {pattern!r} in {args.stdout}:\n{text}")
        return default

    processed = grab(r"number of transactions actually processed: (\d+)", int)
    failed = grab(r"number of failed transactions: (\d+)", int, 0)
    tps = grab(r"^tps = ([0-9.]+)")
    duration = grab(r"^duration: (\d+) s", float)
    latencies = []
    for path in glob.glob(args.log_prefix + ".*"):
        with open(path) as f:
            for line in f:
                fields = line.split()
                # client_id transaction_no time script_no time_epoch time_us ...
                if len(fields) >= 6 and fields[2].isdigit():
                    latencies.append(int(fields[2]))
    latencies.sort()
    out = {
        "scenario": args.scenario,
        "conns": args.conns,
        "requests": processed,
        "errors": failed,
        "seconds": duration,
        "rps": round(tps, 1),
        "p50_us": percentile(latencies, 0.50),
        "p90_us": percentile(latencies, 0.90),
        "p99_us": percentile(latencies, 0.99),
    }
    if args.flushes is not None and args.flushes >= 0:
        out["dev_flushes"] = args.flushes
    out.update(parse_tags(args.tag))
    return out


def from_wrap(args):
    line = ""
    for candidate in sys.stdin:
        if candidate.startswith("{"):
            line = candidate
    if not line:
        sys.exit("tojson.py: no JSON line on standard input")
    result = json.loads(line)
    out = {"scenario": args.scenario, "conns": args.conns}
    out.update(result)
    out.update(parse_tags(args.tag))
    return out


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    pg = sub.add_parser("pgbench")
    pg.add_argument("--stdout", required=True)
    pg.add_argument("--log-prefix", required=True)
    pg.add_argument("--flushes", type=int)
    wrap = sub.add_parser("wrap")
    for p in (pg, wrap):
        p.add_argument("--scenario", required=True)
        p.add_argument("--conns", type=int, required=True)
        p.add_argument("--tag", action="append")
    args = parser.parse_args()
    out = from_pgbench(args) if args.cmd == "pgbench" else from_wrap(args)
    print(json.dumps(out, separators=(",", ":")))


if __name__ == "__main__":
    main()
