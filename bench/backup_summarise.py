#!/usr/bin/env python3
"""bench/backup_run's raw.jsonl -> markdown: medians over rounds, ratios, the goals of issue 7."""
import argparse
import json
import statistics
from collections import defaultdict


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=0, unit="", k=True):
    if v is None:
        return "–"
    if k and isinstance(v, (int, float)) and digits == 0 and abs(v) >= 1000:
        return f"{v / 1000:.1f}k{unit}"
    return f"{v:.{digits}f}{unit}"


def ratio(a, b):
    return None if a is None or not b else a / b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--meta")
    a = ap.parse_args()
    lines = [json.loads(l) for l in open(a.raw) if l.strip()]
    print("# Continuous backup: quire beside Litestream\n")
    if a.meta:
        print("```")
        print(open(a.meta).read().rstrip())
        print("```\n")
    goals = []

    # --- throughput ---------------------------------------------------------------------------
    tput = [l for l in lines if l.get("part") == "throughput"]
    if tput:
        print("## Write throughput, backup off and on (single-row inserts, rows/s, median of rounds)\n")
        print("Writers differ: quire is a server driven over Hrana HTTP by loadgen; Litestream's "
              "database is written in-process by sqlite_inproc. Compare each side's on/off ratio.\n")
        by = defaultdict(list)
        for l in tput:
            by[(l["peer"], l["backup"], int(l["conns"]))].append(l)
        conns = sorted({k[2] for k in by})
        print("| clients | quire off | quire on | quire on/off | quire on (sync) | sync/off "
              "| sqlite off | sqlite + Litestream | Litestream on/off | per-round on/off (quire; Litestream) |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for c in conns:
            def m(peer, mode):
                return med([x["rps"] for x in by.get((peer, mode, c), [])])

            def per_round(peer, mode, off):
                on_r = {x["round"]: x["rps"] for x in by.get((peer, mode, c), [])}
                off_r = {x["round"]: x["rps"] for x in by.get((peer, off, c), [])}
                return ", ".join(f"{on_r[r] / off_r[r]:.2f}" for r in sorted(on_r) if r in off_r and off_r[r])

            qo, qa, qs = m("quire", "off"), m("quire", "async"), m("quire", "sync")
            lo, ln = m("litestream", "off"), m("litestream", "on")
            rq, rs, rl = ratio(qa, qo), ratio(qs, qo), ratio(ln, lo)
            print(f"| {c} | {fmt(qo)} | {fmt(qa)} | {fmt(rq, 3)} | {fmt(qs)} | {fmt(rs, 3)} "
                  f"| {fmt(lo)} | {fmt(ln)} | {fmt(rl, 3)} "
                  f"| {per_round('quire', 'async', 'off') or '–'}; {per_round('litestream', 'on', 'off') or '–'} |")
            if rq is not None:
                goals.append((f"throughput with backup on ≥ 95 % of off, {c} client(s)",
                              f"quire {rq * 100:.1f} % (Litestream {fmt(rl and rl * 100, 1)} %)",
                              "met" if rq >= 0.95 else "**not met**"))
            else:
                goals.append((f"throughput with backup on ≥ 95 % of off, {c} client(s)",
                              f"quire not measured (no --backup-url); Litestream {fmt(rl and rl * 100, 1)} %",
                              "unmeasured"))
        cpu = defaultdict(list)
        for l in tput:
            if l.get("cpu_us_per_write") is not None:
                cpu[(l["peer"], l["backup"], int(l["conns"]))].append(float(l["cpu_us_per_write"]))
        if cpu:
            print("\nCPU per write (µs, median of rounds; quire: the server process; Litestream: "
                  "sqlite_inproc + litestream; warm-up included):\n")
            print("| clients | quire off | quire on | on − off | quire sync | SQLite off | SQLite + Litestream | on − off |")
            print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
            for c in conns:
                qo, qa, qs = (med(cpu.get(("quire", m, c), [])) for m in ("off", "async", "sync"))
                lo, ln = (med(cpu.get(("litestream", m, c), [])) for m in ("off", "on"))
                d1 = None if qo is None or qa is None else qa - qo
                d2 = None if lo is None or ln is None else ln - lo
                print(f"| {c} | {fmt(qo, 1)} | {fmt(qa, 1)} | {fmt(d1, 1)} | {fmt(qs, 1)} "
                      f"| {fmt(lo, 1)} | {fmt(ln, 1)} | {fmt(d2, 1)} |")
        p99 = defaultdict(list)
        for l in tput:
            p99[(l["peer"], l["backup"], int(l["conns"]))].append(l.get("p99_us"))
        print("\np99 latency per write (µs, median of rounds): " + "; ".join(
            f"{p} {b} c{c} {fmt(med(v))}" for (p, b, c), v in sorted(p99.items())))
        bad = [l for l in tput if l.get("errors")]
        if bad:
            print(f"\nMeasurements with errors: {len(bad)}")
        print()

    # --- rpo ----------------------------------------------------------------------------------
    rpo = [l for l in lines if l.get("part") == "rpo"]
    if rpo:
        print("## RPO: acknowledgement to durable in the store, and objects written\n")
        by = defaultdict(list)
        for l in rpo:
            by[(l.get("store", "file"), l["peer"], l["backup"], int(float(l["rate"])))].append(l)
        print("| store | rate (writes/s) | peer | mode | txns/round | RPO p50 | p90 | p99 | max (all rounds) "
              "| unseen | objects / 10k txns | objects (all, per round) | store check |")
        print("| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for key in sorted(by, key=lambda k: (k[0], k[3], k[1] != "quire", k[2])):
            store, peer, mode, rate = key
            xs = by[key]
            checks = sorted({x.get("check", "?") for x in xs})
            print(f"| {store} | {rate} | {peer} | {mode} | {fmt(med([x['txns'] for x in xs]))} "
                  f"| {fmt(med([x['rpo_p50_ms'] for x in xs]), k=False)} ms "
                  f"| {fmt(med([x['rpo_p90_ms'] for x in xs]), k=False)} ms "
                  f"| {fmt(med([x['rpo_p99_ms'] for x in xs]), k=False)} ms "
                  f"| {fmt(max((x['rpo_max_ms'] or 0) for x in xs), k=False)} ms | {sum(x['unseen'] for x in xs)} "
                  f"| {fmt(med([x['objects_per_10k_txns'] for x in xs]), 1)} "
                  f"| {fmt(med([x['objects_all'] for x in xs]))} | {', '.join(checks)} |")
        for store, rate in sorted({(k[0], k[3]) for k in by}):
            q = by.get((store, "quire", "async", rate), [])
            l = by.get((store, "litestream", "default", rate), [])
            lp99 = med([x["rpo_p99_ms"] for x in l])
            lobj = med([x["objects_per_10k_txns"] for x in l])
            where = f"{rate} writes/s, {store} store"
            if q:
                qp99 = med([x["rpo_p99_ms"] for x in q])
                qobj = med([x["objects_per_10k_txns"] for x in q])
                goals.append((f"RPO p99 ≤ 1.5 s at default settings, {where}",
                              f"quire {fmt(qp99, k=False)} ms (Litestream {fmt(lp99, k=False)} ms)",
                              "met" if qp99 is not None and qp99 <= 1500 and not sum(x['unseen'] for x in q)
                              else "**not met**"))
                goals.append((f"objects per 10,000 transactions fewer than Litestream, {where}",
                              f"quire {fmt(qobj, 1)}, Litestream {fmt(lobj, 1)} "
                              f"({fmt(ratio(qobj, lobj), 2)}×)",
                              "met" if qobj is not None and lobj is not None and qobj < lobj else "**not met**"))
            else:
                goals.append((f"RPO p99 ≤ 1.5 s, {where}",
                              f"quire not measured; Litestream {fmt(lp99, k=False)} ms", "unmeasured"))
                goals.append((f"objects per 10,000 transactions, {where}",
                              f"quire not measured; Litestream {fmt(lobj, 1)}", "unmeasured"))
        print("\nRPO = first time the store shows the write − the writer's acknowledgement (0 when the "
              "store had it first). Method per peer: " + "; ".join(
                  sorted({f"{x['peer']}: {x['method']}" for x in rpo})) + ".\n")

    # --- restore ------------------------------------------------------------------------------
    rest = [l for l in lines if l.get("part") == "restore"]
    if rest:
        print("## Restore at a timestamp\n")
        fx = {l["peer"]: l for l in rest if l["scenario"] == "fixture"}
        for peer, l in sorted(fx.items()):
            extra = f", `quire backup` {l['backup_s']:.1f} s" if "backup_s" in l else ""
            print(f"- {peer}: database {l['db_bytes'] / 2**20:.0f} MiB loaded in {l['load_s']} s{extra}; "
                  f"store {l['store_bytes'] / 2**20:.0f} MiB; target {l['target']}")
        print()
        print("| peer | store read (cold: cat; quire-s3: a GET of each object) | MiB/s "
              "| store copied to one file + sync (cold) | restore (incl. fsync) | restore / store read "
              "| restore / copy | restore CPU user + sys | check |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        reads = defaultdict(list)
        copies = defaultdict(list)
        restores = defaultdict(list)
        for l in rest:
            if l["scenario"] == "store-read":
                reads[l["peer"]].append(l)
            elif l["scenario"] == "store-copy":
                copies[l["peer"]].append(l)
            elif l["scenario"] == "restore":
                restores[l["peer"]].append(l)
        res_med = {}
        read_med = {}
        copy_med = {}
        for peer in sorted(set(reads) | set(restores), key=lambda p: (not p.startswith("quire"), p)):
            rd = med([x["seconds"] for x in reads[peer]])
            rb = med([x["bytes"] for x in reads[peer]])
            rs = med([x["seconds"] for x in restores[peer]])
            cp = med([x["seconds"] for x in copies[peer]])
            res_med[peer], read_med[peer], copy_med[peer] = rs, rd, cp
            checks = sorted({x["check"] for x in restores[peer]})
            cu = med([x.get("cpu_user_s") for x in restores[peer]])
            cs = med([x.get("cpu_sys_s") for x in restores[peer]])
            cpu = f"{cu:.2f} + {cs:.2f} s" if cu is not None and cs is not None else "–"
            copied = f"{fmt(cp, 2)} s" if cp is not None else "–"
            per_copy = f"{fmt(ratio(rs, cp), 2)}×" if cp is not None else "–"
            print(f"| {peer} | {fmt(rd, 2)} s ({fmt(rb and rb / 2**20)} MiB) "
                  f"| {fmt(rb and rd and rb / 2**20 / rd)} | {copied} | {fmt(rs, 2)} s "
                  f"| {fmt(ratio(rs, rd), 2)}× | {per_copy} | {cpu} | {', '.join(checks)} |")
        print()
        l = res_med.get("litestream")
        for qp in ("quire", "quire-offline", "quire-s3"):
            if qp not in res_med:
                continue
            q = res_med[qp]
            if qp != "quire-s3":  # Litestream cannot restore from s3rver: no peer there
                goals.append((f"restore faster than Litestream's ({qp} backup)",
                              f"{qp} {fmt(q, 2)} s, Litestream {fmt(l, 2)} s ({fmt(ratio(q, l), 2)}×)",
                              "met" if q is not None and l is not None and q < l else "**not met**"))
            qr = ratio(q, read_med.get(qp))
            floor = ""
            if copy_med.get(qp) is not None:
                floor = (f"; copying the store's files into one file and syncing it took "
                         f"{fmt(copy_med[qp], 2)} s ({fmt(ratio(copy_med[qp], read_med.get(qp)), 2)}× the read)")
            goals.append((f"restore within 2× the time to read the store ({qp} backup)",
                          f"{fmt(qr, 2)}× ({fmt(q, 2)} s against {fmt(read_med.get(qp), 2)} s{floor})",
                          "met" if qr is not None and qr <= 2 else "**not met**"))

    if goals:
        print("## Against the goals\n")
        print("| goal | measured | verdict |")
        print("| --- | --- | --- |")
        for g in goals:
            print(f"| {g[0]} | {g[1]} | {g[2]} |")


if __name__ == "__main__":
    main()
