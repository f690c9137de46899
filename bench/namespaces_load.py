#!/usr/bin/env python3
"""Load driver of bench/namespaces_run: many namespaces on one quire server.

  namespaces_load.py run --port P --admin-port A --pid SERVER_PID [options]
      Runs the phases named by --phases, in order, and prints one JSON line per phase:
        create-dump    POST /v1/namespaces/t<i>/create with a tiny dump (a table kv, one row),
                       i = 1..--namespaces, over --create-conns keep-alive connections; stops
                       early when --create-budget seconds have passed (the line says so)
        create-empty   the same with body {} for e<i>, i = 1..--empty-namespaces
        closed         POST /v2/pipeline (x-namespace: t<i>) SELECT v FROM kv WHERE k = 1 + close,
                       on namespaces not touched in the last 4 * --max-open requests: the server
                       has closed them (nearly always: its LRU holds --max-open databases)
        open           the same on a hot set of --max-open / 2 namespaces, opened beforehand:
                       always open
        closed-c1, open-c1   the same with one connection (latency without queueing)
      Every read phase runs --warmup seconds (not counted), then --seconds. Each request is also
      classified by a client-side LRU model of the server's open set (--max-open entries, in
      access order): `model_open` is the share of the measured requests the model calls open.
      While a phase runs, the server's VmRSS, VmHWM, open descriptors, threads and CPU time are
      read from /proc every second; those samples go to --samples (JSON lines), their peaks into
      the phase's line. After each read phase GET /v1/namespaces counts the open databases.
  namespaces_load.py summarise RAW.jsonl [--meta META.txt]
      The markdown summary of a run (targets checked), on standard output.

Python standard library only: http.client over keep-alive connections, one thread per
connection. Latency runs from sending the request to having read the whole answer.
"""
import argparse
import collections
import http.client
import itertools
import json
import os
import random
import subprocess
import sys
import threading
import time

DUMP = "CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT); INSERT INTO kv VALUES (1, 'x');"
READ_BODY = json.dumps({"requests": [
    {"type": "execute", "stmt": {"sql": "SELECT v FROM kv WHERE k = 1"}},
    {"type": "close"}]}).encode()


def log(message):
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] namespaces_load: {message}\n")
    sys.stderr.flush()


def percentile(sorted_values, q):
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[k]


def latency_fields(lat_ns):
    lat = sorted(lat_ns)
    return {
        "p50_us": round(percentile(lat, 0.50) / 1000, 1),
        "p90_us": round(percentile(lat, 0.90) / 1000, 1),
        "p99_us": round(percentile(lat, 0.99) / 1000, 1),
        "p999_us": round(percentile(lat, 0.999) / 1000, 1),
        "max_us": round((lat[-1] if lat else 0) / 1000, 1),
        "mean_us": round(sum(lat) / len(lat) / 1000, 1) if lat else 0.0,
    }


# --- the server's resources, from /proc ---------------------------------------------------------

class Sampler:
    """Reads the server's memory, descriptors, threads and CPU time every second."""

    def __init__(self, pid, samples_file):
        self.pid = pid
        self.out = open(samples_file, "a") if samples_file else None
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.t0 = time.monotonic()

    def read(self):
        s = {"t": round(time.monotonic() - self.t0, 2)}
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                        s[key.lower() + "_kib"] = int(value.split()[0])
                    elif key == "Threads":
                        s["threads"] = int(value)
            s["fds"] = len(os.listdir(f"/proc/{self.pid}/fd"))
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            s["cpu_s"] = (int(fields[11]) + int(fields[12])) / self.ticks  # utime + stime
        except (OSError, ValueError, IndexError):
            s["gone"] = True
        return s

    def start(self, phase):
        """Samples until the returned stop() is called; stop() gives the phase's figures."""
        samples = []
        done = threading.Event()

        def take():
            s = self.read()
            s["phase"] = phase
            samples.append(s)
            if self.out:
                self.out.write(json.dumps(s, separators=(",", ":")) + "\n")
                self.out.flush()

        def loop():
            while not done.wait(1.0):
                take()

        take()
        thread = threading.Thread(target=loop, daemon=True)
        thread.start()

        def stop():
            done.set()
            thread.join()
            take()
            ok = [s for s in samples if not s.get("gone")]
            if not ok:
                return {"server_gone": True}
            first, last = ok[0], ok[-1]
            wall = max(1e-9, last["t"] - first["t"])
            return {
                "rss_start_kib": first.get("vmrss_kib", 0),
                "rss_end_kib": last.get("vmrss_kib", 0),
                "peak_rss_kib": max(s.get("vmrss_kib", 0) for s in ok),
                "hwm_kib": last.get("vmhwm_kib", 0),
                "anon_end_kib": last.get("rssanon_kib", 0),
                "peak_fds": max(s.get("fds", 0) for s in ok),
                "fds_end": last.get("fds", 0),
                "peak_threads": max(s.get("threads", 0) for s in ok),
                "threads_end": last.get("threads", 0),
                "server_cpu_pct": round(100 * (last["cpu_s"] - first["cpu_s"]) / wall, 1),
                "server_gone": any(s.get("gone") for s in samples),
            }

        return stop


# --- which namespace next -----------------------------------------------------------------------

class Picker:
    """Chooses namespaces and keeps the client's view of what the server has open.

    `last[i]` is the request number that last touched namespace i; the LRU model is an ordered
    dict of at most max_open namespaces in access order (what the server's LRU holds when no
    database is pinned by a request in flight)."""

    def __init__(self, names, max_open, seed):
        self.names = names
        self.max_open = max_open
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.seq = 0
        self.last = [-(1 << 60)] * len(names)
        self.model = collections.OrderedDict()
        # "Not touched in the last 4 * max_open requests", narrower when there are few namespaces.
        self.window = min(4 * max_open, max(1, len(names) // 2))

    def _touch(self, i):
        """Records an access; True when the model says the database was open."""
        self.last[i] = self.seq
        self.seq += 1
        if i in self.model:
            self.model.move_to_end(i)
            return True
        self.model[i] = None
        if len(self.model) > self.max_open:
            self.model.popitem(last=False)
        return False

    def closed(self):
        with self.lock:
            n = len(self.names)
            for _ in range(1000):
                i = self.rng.randrange(n)
                if self.seq - self.last[i] > self.window:
                    break
            return self.names[i], self._touch(i)

    def from_set(self, indices):
        with self.lock:
            i = indices[self.rng.randrange(len(indices))]
            return self.names[i], self._touch(i)


# --- HTTP ---------------------------------------------------------------------------------------

class Client:
    """One keep-alive connection; reconnects after a failure."""

    def __init__(self, port, timeout=30):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def post(self, path, body, headers):
        """(status, body bytes, latency ns); raises on a connection failure."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.conn.connect()
        t0 = time.perf_counter_ns()
        try:
            self.conn.request("POST", path, body=body, headers=headers)
            resp = self.conn.getresponse()
            data = resp.read()
        except Exception:
            self.conn.close()
            self.conn = None
            raise
        t1 = time.perf_counter_ns()
        if resp.will_close:
            self.conn.close()
            self.conn = None
        return resp.status, data, t1 - t0

    def get(self, path):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        self.conn.request("GET", path)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Errors:
    def __init__(self):
        self.lock = threading.Lock()
        self.count = 0
        self.samples = collections.Counter()

    def add(self, what):
        with self.lock:
            self.count += 1
            if len(self.samples) < 20 or what in self.samples:
                self.samples[what[:200]] += 1

    def fields(self):
        return {"errors": self.count, "error_samples": dict(self.samples.most_common(5))}


# --- phases -------------------------------------------------------------------------------------

def create_phase(args, sampler, prefix, count, body, scenario):
    """Creates prefix1..prefix<count>; returns (JSON line, names created)."""
    numbers = itertools.count(1)
    stop_at = time.monotonic() + args.create_budget if args.create_budget > 0 else None
    lat_ns = []
    created = []
    errors = Errors()
    headers = {"Content-Type": "application/json"}
    lock = threading.Lock()
    budget_hit = threading.Event()
    progress = {"done": 0}

    def worker():
        client = Client(args.admin_port)
        local_lat, local_ok = [], []
        while True:
            i = next(numbers)
            if i > count:
                break
            if stop_at is not None and time.monotonic() >= stop_at:
                budget_hit.set()
                break
            name = f"{prefix}{i}"
            try:
                status, data, ns = client.post(f"/v1/namespaces/{name}/create", body, headers)
            except Exception as e:  # noqa: BLE001 - any failure is a counted error
                errors.add(f"{type(e).__name__}: {e}")
                continue
            local_lat.append(ns)
            if status == 200:
                local_ok.append(name)
            else:
                errors.add(f"HTTP {status}: {data[:150].decode(errors='replace')}")
            if len(local_lat) % 256 == 0:
                with lock:
                    progress["done"] += 256
        client.close()
        with lock:
            lat_ns.extend(local_lat)
            created.extend(local_ok)

    stop = sampler.start(scenario)
    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(args.create_conns)]
    for t in threads:
        t.start()
    next_report = t0 + 10
    while any(t.is_alive() for t in threads):
        threads[0].join(0.5)
        now = time.monotonic()
        if now >= next_report:
            done = progress["done"]
            log(f"{scenario}: about {done} of {count} in {now - t0:.0f} s ({done / (now - t0):.0f}/s)")
            next_report = now + 10
    for t in threads:
        t.join()
    seconds = time.monotonic() - t0
    res = stop()
    line = {
        "scenario": scenario,
        "conns": args.create_conns,
        "requested": count,
        "requests": len(lat_ns),
        "created": len(created),
        "seconds": round(seconds, 3),
        "rps": round(len(created) / seconds, 1) if seconds > 0 else 0.0,
        "budget_hit": budget_hit.is_set(),
        "create_budget_s": args.create_budget,
    }
    line.update(errors.fields())
    line.update(latency_fields(lat_ns))
    line.update(res)
    created.sort(key=lambda n: int(n[len(prefix):]))
    return line, created


def check_read(status, data):
    if status != 200:
        return f"HTTP {status}: {data[:150].decode(errors='replace')}"
    try:
        doc = json.loads(data)
        first = doc["results"][0]
        if first.get("type") != "ok":
            return "result: " + json.dumps(first.get("error"))[:150]
        rows = first["response"]["result"]["rows"]
        if not rows or rows[0][0].get("value") != "x":
            return "unexpected rows: " + json.dumps(rows)[:100]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        return f"bad answer ({type(e).__name__}): {data[:100].decode(errors='replace')}"
    return None


def read_phase(args, sampler, picker, scenario, conns, choose, warmup, seconds):
    """Closed-loop reads on `conns` connections; choose() -> (name, model_says_open)."""
    lat_ns = []
    model_open = [0]
    errors = Errors()
    lock = threading.Lock()
    t_start = time.monotonic()
    t_measure = t_start + warmup
    t_end = t_measure + seconds

    def worker():
        client = Client(args.port)
        local_lat = []
        local_open = 0
        while True:
            now = time.monotonic()
            if now >= t_end:
                break
            name, was_open = choose()
            headers = {"Content-Type": "application/json", "x-namespace": name}
            try:
                status, data, ns = client.post("/v2/pipeline", READ_BODY, headers)
            except Exception as e:  # noqa: BLE001
                if now >= t_measure:
                    errors.add(f"{type(e).__name__}: {e}")
                continue
            problem = check_read(status, data)
            if now < t_measure:
                continue
            if problem:
                errors.add(problem)
                continue
            local_lat.append(ns)
            local_open += was_open
        client.close()
        with lock:
            lat_ns.extend(local_lat)
            model_open[0] += local_open

    stop = sampler.start(scenario)
    threads = [threading.Thread(target=worker) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res = stop()
    line = {
        "scenario": scenario,
        "conns": conns,
        "requests": len(lat_ns),
        "seconds": seconds,
        "rps": round(len(lat_ns) / seconds, 1),
        "model_open": round(model_open[0] / len(lat_ns), 4) if lat_ns else 0.0,
        "namespaces": len(picker.names),
        "max_open": args.max_open,
    }
    line.update(errors.fields())
    line.update(latency_fields(lat_ns))
    line.update(res)
    return line


def open_count(args):
    """Databases the server says are open, and how long listing every namespace took."""
    client = Client(args.admin_port, timeout=120)
    t0 = time.monotonic()
    try:
        status, data = client.get("/v1/namespaces")
        if status != 200:
            return {"open_now": -1, "list_error": f"HTTP {status}"}
        doc = json.loads(data)
        listed = doc["namespaces"]
        return {"open_now": sum(1 for n in listed if n.get("open")), "listed": len(listed),
                "list_ms": round(1000 * (time.monotonic() - t0), 1)}
    except Exception as e:  # noqa: BLE001
        return {"open_now": -1, "list_error": f"{type(e).__name__}: {e}"}
    finally:
        client.close()


def run(args):
    tags = dict(t.split("=", 1) for t in args.tag)
    sampler = Sampler(args.pid, args.samples)
    phases = [p for p in args.phases.split(",") if p]
    names = [f"t{i}" for i in range(1, args.namespaces + 1)]

    def emit(line):
        line.update(tags)
        line["loadavg"] = float(open("/proc/loadavg").read().split()[0])
        print(json.dumps(line, separators=(",", ":")), flush=True)

    picker = None
    hot = None
    first = sampler.read()
    lines = []
    for phase in phases:
        log(f"phase {phase}")
        if phase == "create-dump":
            body = json.dumps({"dump": DUMP}).encode()
            line, created = create_phase(args, sampler, "t", args.namespaces, body, phase)
            names = created
            line["variant"] = "dump"
            emit(line)
            if line["budget_hit"]:
                log(f"creation budget of {args.create_budget} s spent: {len(created)} namespaces"
                    " (the read phases use those)")
        elif phase == "create-empty":
            line, _ = create_phase(args, sampler, "e", args.empty_namespaces, b"{}", phase)
            line["variant"] = "empty"
            emit(line)
        elif phase in ("closed", "open", "closed-c1", "open-c1"):
            if not names:
                raise SystemExit("namespaces_load: no namespaces to read")
            if picker is None:
                picker = Picker(names, args.max_open, args.seed)
            conns = 1 if phase.endswith("-c1") else args.conns
            if phase.startswith("closed"):
                choose = picker.closed
                warmup = args.warmup
            else:
                if hot is None:
                    # Distinct namespaces, none touched lately (so the warm-up opens them).
                    size = max(1, min(args.max_open // 2, len(names)))
                    hot = random.Random(args.seed + 1).sample(range(len(names)), size)
                # Open the hot set (one request each), then the warm-up seconds.
                client = Client(args.port)
                for i in hot:
                    with picker.lock:
                        picker._touch(i)
                    client.post("/v2/pipeline", READ_BODY,
                                {"Content-Type": "application/json", "x-namespace": names[i]})
                client.close()
                choose = lambda: picker.from_set(hot)  # noqa: E731
                warmup = args.warmup
            scenario = f"read-{phase.split('-')[0]}-c{conns}"
            line = read_phase(args, sampler, picker, scenario, conns, choose, warmup, args.seconds)
            if phase.startswith("open"):
                line["hot_set"] = len(hot)
            # Databases open now, from the thread count: two threads per open database (its
            # checkpointer and write lane; checked against GET /v1/namespaces at the end).
            if "threads_end" in line and "threads" in first:
                line["open_est"] = 1 + (line["threads_end"] - first["threads"]) // 2
            emit(line)
        else:
            raise SystemExit(f"namespaces_load: unknown phase {phase}")
        lines.append(line)

    # The server over the whole run.
    last = sampler.read()
    reads = [x for x in lines if x["scenario"].startswith("read-")]
    line = {
        "scenario": "server",
        "namespaces": len(names),
        "max_open": args.max_open,
        "start_s": args.start_seconds,
        "rss_start_kib": first.get("vmrss_kib", 0),
        "fds_start": first.get("fds", 0),
        "threads_start": first.get("threads", 0),
        "peak_rss_kib": max([x.get("peak_rss_kib", 0) for x in lines] + [0]),
        "read_peak_rss_kib": max([x.get("peak_rss_kib", 0) for x in reads] + [0]),
        "hwm_kib": last.get("vmhwm_kib", 0),
        "rss_end_kib": last.get("vmrss_kib", 0),
        "anon_end_kib": last.get("rssanon_kib", 0),
        "peak_fds": max([x.get("peak_fds", 0) for x in lines] + [0]),
        "peak_threads": max([x.get("peak_threads", 0) for x in lines] + [0]),
        "server_gone": bool(last.get("gone")),
    }
    # What the server says is open, once, at the very end: listing every namespace costs memory
    # that glibc keeps in the malloc arena of whichever pool thread served it (about 0.5 KiB per
    # namespace per arena), which would inflate the RSS of the phases after it.
    line.update(open_count(args))
    after = sampler.read()
    line["rss_after_list_kib"] = after.get("vmrss_kib", 0)
    # Descriptors, threads and memory per open database: from the start (only `default` open)
    # to the end, before the listing.
    opened = line.get("open_now", -1) - 1
    if opened > 0 and "fds" in last and "fds" in first:
        line["fds_per_db"] = round((last["fds"] - first["fds"]) / opened, 2)
        line["threads_per_db"] = round((last["threads"] - first["threads"]) / opened, 2)
        line["rss_kib_per_db"] = round((last["vmrss_kib"] - first["vmrss_kib"]) / opened, 1)
    if args.data_dir:
        du = subprocess.run(["du", "-sh", args.data_dir], capture_output=True, text=True)
        line["du"] = du.stdout.split()[0] if du.returncode == 0 and du.stdout else "?"
        dk = subprocess.run(["du", "-sk", args.data_dir], capture_output=True, text=True)
        if dk.returncode == 0 and dk.stdout:
            line["du_kib"] = int(dk.stdout.split()[0])
    emit(line)


# --- summary ------------------------------------------------------------------------------------

def summarise(args):
    results = [json.loads(line) for line in open(args.raw) if line.strip()]
    out = ["# Namespaces at scale", ""]
    if args.meta and os.path.exists(args.meta):
        out += ["```", open(args.meta).read().rstrip(), "```", ""]

    def mib(kib):
        return f"{kib / 1024:.1f}"

    def ms(us):
        return f"{us / 1000:.2f}"

    def verdict(ok):
        return "met" if ok else "**not met**"

    creates = [r for r in results if r["scenario"].startswith("create-")]
    reads = [r for r in results if r["scenario"].startswith("read-")]
    servers = [r for r in results if r["scenario"] == "server"]

    if creates:
        out += ["## Creating namespaces (admin API)", "",
                "| variant | conns | created / asked | errors | seconds | namespaces/s | p50 ms | "
                "p99 ms | max ms | RSS before → after MiB | peak fds | peak threads | "
                "server CPU % |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
                "---: | ---: |"]
        for r in creates:
            note = " (time budget spent)" if r.get("budget_hit") else ""
            out.append(
                f"| {r.get('variant')} | {r['conns']} | {r['created']} / {r['requested']}{note} | "
                f"{r['errors']} | {r['seconds']:.1f} | {r['rps']:.0f} | {ms(r['p50_us'])} | "
                f"{ms(r['p99_us'])} | {ms(r['max_us'])} | {mib(r.get('rss_start_kib', 0))} → "
                f"{mib(r.get('rss_end_kib', 0))} | {r.get('peak_fds', 0)} | "
                f"{r.get('peak_threads', 0)} | {r.get('server_cpu_pct', 0)} |")
        out.append("")

    if reads:
        out += ["## Reads across the namespaces (main port, `x-namespace`)", "",
                "`closed`: namespaces not touched in the last 4 × max-open requests (the first "
                "query on a closed namespace); `open`: a hot set of max-open / 2 namespaces. "
                "`model open`: share of the requests a client-side LRU model of the server's "
                "open set calls open. `open after`: databases open when the phase ended "
                "(from the thread count, 2 per open database).", "",
                "| server | phase | conns | namespaces | req/s | model open | p50 ms | p99 ms | "
                "p99.9 ms | max ms | errors | peak RSS MiB | RSS at end MiB | peak fds | "
                "peak threads | open after | server CPU % |",
                "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
                "---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in reads:
            out.append(
                f"| {r.get('config', '?')} (max-open {r['max_open']}) | {r['scenario']} | "
                f"{r['conns']} | {r['namespaces']} | {r['rps']:.0f} | "
                f"{100 * r['model_open']:.1f} % | {ms(r['p50_us'])} | {ms(r['p99_us'])} | "
                f"{ms(r['p999_us'])} | {ms(r['max_us'])} | {r['errors']} | "
                f"{mib(r.get('peak_rss_kib', 0))} | {mib(r.get('rss_end_kib', 0))} | "
                f"{r.get('peak_fds', 0)} | {r.get('peak_threads', 0)} | "
                f"{r.get('open_est', '?')} | {r.get('server_cpu_pct', 0)} |")
        out.append("")
        samples = {}
        for r in reads:
            if r.get("error_samples"):
                samples.update(r["error_samples"])
        if samples:
            out += ["Errors seen (first of each kind):", ""]
            out += [f"- `{k}` × {v}" for k, v in samples.items()]
            out.append("")

    if servers:
        out += ["## Servers", "",
                "| server | namespaces | start s | RSS at start MiB | peak RSS MiB | peak RSS in "
                "reads MiB | VmHWM MiB | RSS at end MiB | peak fds | fds / open db | "
                "threads / open db | RSS KiB / open db | peak threads | open at end | "
                "RSS after GET /v1/namespaces MiB | list ms | data directory |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
                "---: | ---: | ---: | ---: | ---: | --- |"]
        for r in servers:
            out.append(
                f"| {r.get('config', '?')} (max-open {r['max_open']}) | {r['namespaces']} | "
                f"{r.get('start_s', 0):.2f} | {mib(r['rss_start_kib'])} | "
                f"{mib(r['peak_rss_kib'])} | {mib(r['read_peak_rss_kib'])} | "
                f"{mib(r['hwm_kib'])} | {mib(r['rss_end_kib'])} | {r['peak_fds']} | "
                f"{r.get('fds_per_db', '?')} | {r.get('threads_per_db', '?')} | "
                f"{r.get('rss_kib_per_db', '?')} | {r['peak_threads']} | "
                f"{r.get('open_now', '?')} | {mib(r.get('rss_after_list_kib', 0))} | "
                f"{r.get('list_ms', '?')} | {r.get('du', '?')} |")
        out.append("")

    out += ["## Targets", "", "| target | figure | met |", "| --- | --- | --- |"]
    dump = [r for r in creates if r.get("variant") == "dump"]
    for r in dump[:1]:
        extra = "; stopped by the time budget" if r.get("budget_hit") else ""
        out.append(f"| creation ≥ 1,000 namespaces/s (dump, {r['conns']} connections) | "
                   f"{r['rps']:.0f}/s ({r['created']} in {r['seconds']:.0f} s{extra}) | "
                   f"{verdict(r['rps'] >= 1000 and r['errors'] == 0)} |")
    first_config = reads[0].get("config") if reads else None
    for r in reads:
        if r.get("config") == first_config and r["scenario"].startswith("read-closed"):
            out.append(f"| first query on a closed namespace: p99 ≤ 5 ms ({r['scenario']}, "
                       f"{r['namespaces']} namespaces) | p99 {ms(r['p99_us'])} ms, p50 "
                       f"{ms(r['p50_us'])} ms | "
                       f"{verdict(r['p99_us'] <= 5000 and r['errors'] == 0)} |")
    fresh = sorted((r for r in servers if str(r.get("config", "")).startswith("fresh-")),
                   key=lambda r: r["max_open"])
    if len(fresh) >= 2 and fresh[0]["max_open"] < fresh[-1]["max_open"]:
        lo, hi = fresh[0], fresh[-1]
        # Bounded by the limit: fewer open databases, less memory; and the working set (open
        # databases) explains the growth, not the tenants touched.
        ok = lo["read_peak_rss_kib"] < hi["read_peak_rss_kib"]
        out.append(f"| RSS bounded by the open-database limit, not the tenant count | peak RSS "
                   f"in the read phases {mib(hi['read_peak_rss_kib'])} MiB at max-open "
                   f"{hi['max_open']}, {mib(lo['read_peak_rss_kib'])} MiB at max-open "
                   f"{lo['max_open']} ({hi['namespaces']} namespaces, fresh servers) | "
                   f"{verdict(ok)} |")
    elif servers:
        r = servers[0]
        out.append(f"| RSS bounded by the open-database limit, not the tenant count | peak RSS "
                   f"{mib(r['peak_rss_kib'])} MiB ({r['namespaces']} namespaces, max-open "
                   f"{r['max_open']}); no second limit run | not checked |")
    out.append("")
    print("\n".join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--admin-port", type=int, required=True)
    r.add_argument("--pid", type=int, required=True)
    r.add_argument("--namespaces", type=int, default=100000)
    r.add_argument("--empty-namespaces", type=int, default=0)
    r.add_argument("--create-conns", type=int, default=8)
    r.add_argument("--create-budget", type=float, default=0, help="seconds; 0: no limit")
    r.add_argument("--conns", type=int, default=8)
    r.add_argument("--seconds", type=float, default=20)
    r.add_argument("--warmup", type=float, default=2)
    r.add_argument("--max-open", type=int, default=256)
    r.add_argument("--phases", default="create-dump,closed,open,closed-c1,open-c1")
    r.add_argument("--samples", default="")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--tag", action="append", default=[])
    r.add_argument("--data-dir", default="", help="du of it goes into the last line")
    r.add_argument("--start-seconds", type=float, default=0,
                   help="how long the server took to start (recorded)")
    s = sub.add_parser("summarise")
    s.add_argument("raw")
    s.add_argument("--meta", default="")
    s.add_argument("--conns", type=int, default=8)
    args = ap.parse_args()
    if args.command == "run":
        run(args)
    else:
        summarise(args)


if __name__ == "__main__":
    main()
