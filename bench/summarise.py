#!/usr/bin/env python3
"""Summarises a bench/run raw.jsonl as markdown: per-peer medians across rounds, then the ratios
each scenario is judged on (ratio of medians, with its goal where BENCHMARKING.md sets one).

  summarise.py bench/out/<timestamp>/raw.jsonl [--meta bench/out/<timestamp>/meta.txt]
"""
import argparse
import json
import statistics
import sys

SCENARIOS = ["point-read-c1", "point-read-c64", "insert-c1"]

# (label, selector) in table order; a selector matches on result fields.
PEERS = [
    ("quire (loadgen)", {"peer": "quire"}),
    ("PostgreSQL 15, simple (pgbench)", {"peer": "postgresql", "variant": "simple"}),
    ("PostgreSQL 15, prepared (pgbench)", {"peer": "postgresql", "variant": "prepared"}),
    ("nginx return 200 (wrk)", {"peer": "nginx", "client": "wrk"}),
    ("nginx return 200 (loadgen)", {"peer": "nginx", "client": "loadgen"}),
    ("SQLite in-process, autocommit", {"peer": "sqlite", "variant": "autocommit"}),
    ("SQLite in-process, one transaction", {"peer": "sqlite", "variant": "one-txn"}),
]

QUIRE = {"peer": "quire"}
PG_SIMPLE = {"peer": "postgresql", "variant": "simple"}
PG_PREPARED = {"peer": "postgresql", "variant": "prepared"}
NGINX_WRK = {"peer": "nginx", "client": "wrk"}
NGINX_LOADGEN = {"peer": "nginx", "client": "loadgen"}
SQLITE = {"peer": "sqlite", "variant": "autocommit"}

# (scenario, placement, durability, what, numerator, denominator, goal or None)
RATIOS = [
    ("point-read-c1", "split", None, "quire / PostgreSQL simple c1", QUIRE, PG_SIMPLE, 1.3),
    ("point-read-c1", "split", None, "quire / nginx c1 (wrk)", QUIRE, NGINX_WRK, 0.8),
    ("point-read-c1", "split", None, "quire / nginx c1 (loadgen)", QUIRE, NGINX_LOADGEN, None),
    ("point-read-c1", "split", None, "quire / PostgreSQL prepared c1", QUIRE, PG_PREPARED, None),
    ("point-read-c1", "split", None, "quire / in-process SQLite", QUIRE, SQLITE, None),
    ("point-read-c1", "same", None, "same CPU: quire / PostgreSQL simple c1", QUIRE, PG_SIMPLE,
     None),
    ("point-read-c1", "same", None, "same CPU: quire / nginx c1 (wrk)", QUIRE, NGINX_WRK, None),
    ("point-read-c1", "same", None, "same CPU: quire / nginx c1 (loadgen)", QUIRE, NGINX_LOADGEN,
     None),
    ("point-read-c64", "split", None, "quire / PostgreSQL prepared c64", QUIRE, PG_PREPARED, 1.2),
    ("point-read-c64", "split", None, "quire / PostgreSQL simple c64", QUIRE, PG_SIMPLE, None),
    ("point-read-c64", "split", None, "quire / nginx c64 (wrk)", QUIRE, NGINX_WRK, 0.5),
    ("point-read-c64", "split", None, "quire / nginx c64 (loadgen)", QUIRE, NGINX_LOADGEN, None),
    ("insert-c1", "split", "full", "FULL: quire / PostgreSQL synchronous_commit=on", QUIRE,
     {"peer": "postgresql"}, 1.2),
    ("insert-c1", "split", "normal", "NORMAL: quire / PostgreSQL synchronous_commit=off", QUIRE,
     {"peer": "postgresql"}, 1.2),
    ("insert-c1", "split", "full", "FULL: quire / in-process SQLite", QUIRE, {"peer": "sqlite"},
     None),
    ("insert-c1", "split", "normal", "NORMAL: quire / in-process SQLite", QUIRE,
     {"peer": "sqlite"}, None),
]


def matches(result, selector):
    return all(result.get(k) == v for k, v in selector.items())


def select(results, scenario, placement, durability, selector):
    return [
        r for r in results
        if r["scenario"] == scenario and r.get("placement", "split") == placement
        and (durability is None or r.get("durability") == durability) and matches(r, selector)
    ]


def fmt_rate(x):
    return f"{x / 1000:.1f}k" if x >= 1000 else f"{x:.0f}"


def fmt_us(x):
    return f"{x / 1000:.2f} ms" if x >= 1000 else f"{x:.1f} µs"


def peer_rows(results, scenario, placement, durability):
    rows = []
    for label, selector in PEERS:
        runs = select(results, scenario, placement, durability, selector)
        if not runs:
            continue
        rps = [r["rps"] for r in runs]
        row = [
            label,
            str(len(runs)),
            fmt_rate(statistics.median(rps)),
            f"{fmt_rate(min(rps))}–{fmt_rate(max(rps))}",
            fmt_us(statistics.median(r["p50_us"] for r in runs)),
            fmt_us(statistics.median(r["p90_us"] for r in runs)),
            fmt_us(statistics.median(r["p99_us"] for r in runs)),
            str(sum(r["errors"] for r in runs)),
        ]
        if scenario.startswith("insert"):
            per_commit = [r["dev_flushes"] / r["requests"] for r in runs
                          if r.get("dev_flushes", -1) >= 0 and r["requests"] > 0]
            row.append(f"{statistics.median(per_commit):.2f}" if per_commit else "n/a")
        rows.append(row)
    return rows


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("raw")
    parser.add_argument("--meta")
    args = parser.parse_args()
    results = [json.loads(line) for line in open(args.raw) if line.strip()]
    if not results:
        sys.exit("summarise.py: no results")

    print("# quire benchmark run\n")
    if args.meta:
        for line in open(args.meta):
            print(f"- {line.rstrip()}")
        print()
    print("Medians across rounds (n = measurements); throughput is requests (or commits) per "
          "second; latencies are medians of each run's percentile.\n")

    header = ["peer", "n", "median rps", "range", "p50", "p90", "p99", "errors"]
    for scenario in SCENARIOS:
        for placement in ("split", "same"):
            durabilities = ["normal", "full"] if scenario.startswith("insert") else [None]
            for durability in durabilities:
                rows = peer_rows(results, scenario, placement, durability)
                if not rows:
                    continue
                title = f"## {scenario}"
                if durability:
                    title += f", {durability.upper()} durability"
                if placement == "same":
                    title += " (server and client on the same CPU)"
                print(title + "\n")
                extra = ["device flushes/commit"] if durability else []
                print(table(header + extra, rows) + "\n")

    rows = []
    for scenario, placement, durability, what, num, den, goal in RATIOS:
        a = select(results, scenario, placement, durability, num)
        b = select(results, scenario, placement, durability, den)
        if not a or not b:
            continue
        ratio = statistics.median(r["rps"] for r in a) / statistics.median(r["rps"] for r in b)
        verdict = "" if goal is None else ("met" if ratio >= goal else "NOT met")
        rows.append([scenario, what, f"{ratio:.2f}", "" if goal is None else f"≥ {goal}",
                     verdict])
    if rows:
        print("## Ratios (of median throughput)\n")
        print(table(["scenario", "ratio", "value", "goal", "verdict"], rows))


if __name__ == "__main__":
    main()
