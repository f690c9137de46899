#!/usr/bin/env python3
"""Summarises a bench/write_run raw.jsonl as markdown: per-peer medians across rounds for every
scenario, an overview (rows/s or committed transactions/s per scenario x peer), then the ratios
the write path is judged on (ratio of medians, with its goal where one is set).

  write_summarise.py bench/out/<timestamp>-write/raw.jsonl [--meta .../meta.txt]
"""
import argparse
import json
import statistics
import sys

DURABILITY = {"normal": "NORMAL", "full": "FULL"}
PG_SETTING = {"normal": "synchronous_commit=off", "full": "synchronous_commit=on"}

# (label, selector) in table order; a selector matches on result fields.
PEERS = [
    ("quire", {"peer": "quire", "variant": "autocommit"}),
    ("quire --no-replication-log", {"peer": "quire-nolog", "variant": "autocommit"}),
    ("quire, QUIRE_BASE_BIN", {"peer": "quire-base", "variant": "autocommit"}),
    ("quire, BEGIN IMMEDIATE", {"peer": "quire", "variant": "immediate"}),
    ("quire, BEGIN CONCURRENT", {"peer": "quire", "variant": "concurrent"}),
    ("PostgreSQL 15 (pgbench)", {"peer": "postgresql"}),
    ("SQLite in-process", {"peer": "sqlite"}),
]

QUIRE = {"peer": "quire", "variant": "autocommit"}
IMMEDIATE = {"peer": "quire", "variant": "immediate"}
CONCURRENT = {"peer": "quire", "variant": "concurrent"}
PG = {"peer": "postgresql"}
SQLITE = {"peer": "sqlite"}
NOLOG = {"peer": "quire-nolog", "variant": "autocommit"}


def matches(result, selector):
    return all(result.get(k) == v for k, v in selector.items())


def select(results, scenario, durability, selector):
    return [r for r in results if r["scenario"] == scenario and r.get("durability") == durability
            and matches(r, selector)]


def median_rps(runs):
    return statistics.median(r["rps"] for r in runs) if runs else None


def fmt_rate(x):
    if x is None:
        return ""
    return f"{x / 1000:.1f}k" if x >= 1000 else f"{x:.0f}"


def fmt_us(x):
    return f"{x / 1000:.2f} ms" if x >= 1000 else f"{x:.1f} µs"


def latency(runs, key):
    """Median of the runs' percentile `key`, over the runs that completed anything."""
    done = [r[key] for r in runs if r["requests"] > 0]
    return fmt_us(statistics.median(done)) if done else "–"


def peer_label(label, selector, durability):
    if selector.get("peer") == "postgresql":
        return f"{label}, {PG_SETTING[durability]}"
    return f"{label}, {DURABILITY[durability]}"


def detail_rows(results, scenario, durability, txn):
    rows = []
    for label, selector in PEERS:
        runs = select(results, scenario, durability, selector)
        if not runs:
            continue
        rps = [r["rps"] for r in runs]
        row = [
            peer_label(label, selector, durability),
            str(len(runs)),
            fmt_rate(statistics.median(rps)),
            f"{fmt_rate(min(rps))}–{fmt_rate(max(rps))}",
            latency(runs, "p50_us"),
            latency(runs, "p99_us"),
            str(sum(r["errors"] for r in runs)),
        ]
        if txn:
            row.append(str(sum(int(r.get("retries", 0)) for r in runs)))
            row.append(str(sum(int(r.get("failed", 0)) for r in runs)))
            codes = sorted({r["error_codes"] for r in runs if r.get("error_codes")})
            row.append("; ".join(codes)[:120] if codes else "")
        per_commit = [r["dev_flushes"] / r["requests"] for r in runs
                      if r.get("dev_flushes", -1) >= 0 and r["requests"] > 0]
        row.append(f"{statistics.median(per_commit):.2f}" if per_commit else "n/a")
        bad = [r.get("check", "none") for r in runs if r.get("check") != "ok"]
        row.append("ok" if not bad else f"{len(bad)} bad: {bad[0]}")
        rows.append(row)
    return rows


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def scenario_order(results):
    known = ["insert-c1", "insert-c8", "insert-c64", "txn-distinct", "txn-hot"]
    seen = []
    for r in results:
        if r["scenario"] not in seen:
            seen.append(r["scenario"])
    return [s for s in known if s in seen] + [s for s in seen if s not in known]


def ratio_rows(results, scenarios):
    """(scenario, what, numerator, denominator, durability, goal) for every pair present."""
    specs = []
    for scenario in scenarios:
        for durability in ("full", "normal"):
            d = DURABILITY[durability]
            if scenario.startswith("insert"):
                goal = 3 if scenario == "insert-c64" and durability == "full" else None
                specs.append((scenario, f"{d}: quire / PostgreSQL {PG_SETTING[durability]}",
                              QUIRE, PG, durability, goal))
                specs.append((scenario, f"{d}: quire / in-process SQLite", QUIRE, SQLITE,
                              durability, None))
                specs.append((scenario, f"{d}: quire with the replication log / without",
                              QUIRE, NOLOG, durability, 0.9))
            else:
                goal = 2 if scenario == "txn-distinct" else None
                specs.append((scenario, f"{d}: quire CONCURRENT / quire IMMEDIATE", CONCURRENT,
                              IMMEDIATE, durability, goal))
                specs.append((scenario, f"{d}: quire IMMEDIATE / PostgreSQL "
                              f"{PG_SETTING[durability]}", IMMEDIATE, PG, durability, None))
                specs.append((scenario, f"{d}: quire CONCURRENT / PostgreSQL "
                              f"{PG_SETTING[durability]}", CONCURRENT, PG, durability, None))
    rows = []
    for scenario, what, num, den, durability, goal in specs:
        a = median_rps(select(results, scenario, durability, num))
        b = median_rps(select(results, scenario, durability, den))
        if a is None or b is None:
            continue
        if b == 0:
            value, verdict = "n/a (denominator 0)", "" if goal is None else "NOT met"
        else:
            ratio = a / b
            value = f"{ratio:.2f}"
            verdict = "" if goal is None else ("met" if ratio >= goal else "NOT met")
        rows.append([scenario, what, value, "" if goal is None else f"≥ {goal}", verdict])
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("raw")
    parser.add_argument("--meta")
    args = parser.parse_args()
    results = [json.loads(line) for line in open(args.raw) if line.strip()]
    if not results:
        sys.exit("write_summarise.py: no results")
    scenarios = scenario_order(results)

    print("# quire write-path benchmark run\n")
    if args.meta:
        for line in open(args.meta):
            print(f"- {line.rstrip()}")
        print()
    print("Medians across rounds (n = measurements). Throughput is rows inserted per second "
          "(insert) or committed transactions per second (txn); txn latencies run from the first "
          "BEGIN to the COMMIT's answer, retries included. `check` compares the database "
          "afterwards with what the client saw acknowledged.\n")

    # Overview: scenario x peer, NORMAL and FULL side by side.
    overview = []
    for scenario in scenarios:
        for label, selector in PEERS:
            cells = [median_rps(select(results, scenario, d, selector)) for d in DURABILITY]
            if all(c is None for c in cells):
                continue
            overview.append([scenario, label] + [fmt_rate(c) for c in cells])
    print("## Overview (median rows/s or tps)\n")
    print(table(["scenario", "peer", "NORMAL (PG sync_commit=off)", "FULL (PG sync_commit=on)"],
                overview) + "\n")

    for scenario in scenarios:
        txn = scenario.startswith("txn")
        for durability in DURABILITY:
            rows = detail_rows(results, scenario, durability, txn)
            if not rows:
                continue
            print(f"## {scenario}, {DURABILITY[durability]} durability\n")
            header = ["peer", "n", "median " + ("tps" if txn else "rows/s"), "range", "p50",
                      "p99", "errors"]
            if txn:
                header += ["retries", "failed", "error codes"]
            header += ["device flushes/commit", "check"]
            print(table(header, rows) + "\n")

    rows = ratio_rows(results, scenarios)
    if rows:
        print("## Ratios (of median throughput)\n")
        print(table(["scenario", "ratio", "value", "goal", "verdict"], rows))


if __name__ == "__main__":
    main()
