#!/usr/bin/env python3
"""RPO and store writes of a continuous backup: quire's built-in one or Litestream's (issue 7).

One paced writer (single-row inserts, `INSERT INTO t(v) VALUES (?)` with a 17-character random
text, the row shape of bench/loadgen and bench/sqlite_inproc) and one watcher of the store, in
one process, for --warmup + --seconds; then it waits up to --drain seconds for the last writes
to reach the store and prints one JSON line.

  quire       the writer is a Hrana HTTP client (one keep-alive connection, `POST /v2/pipeline`
              with `execute` + `close`); each answer's `x-quire-frame: N` is the commit frame of
              the write. A write is durable once a batch object (or `P/<log-id>/manifest.json`) in the store holds a
              batch (or snapshot) reaching frame N.
  litestream  the writer is in-process SQLite (Python's sqlite3, autocommit, WAL,
              synchronous=NORMAL) on the database Litestream replicates; right after each commit
              it reads the WAL index header from the -shm file: the WAL salts and mxFrame, the
              commit's position. A write is durable once the replica holds a WAL segment
              (`generations/<g>/wal/<index>_<offset>.wal.lz4`, decompressed here) whose frames
              carry the same salts and reach frame mxFrame.

Store watching: Linux inotify on the store's directory tree, so every object put into place is
seen when it happens, to well under a millisecond; that is also how objects are counted. File
store (--store-dir DIR): an object is a file renamed into place (or closed after writing under
its final name; temporary names are ignored). s3rver (--store-dir DIR/bucket/prefix --s3rver):
s3rver keeps each object as `<key>._S3rver_object` and writes `<key>._S3rver_metadata.json`
after the content, before it answers the PUT; that write is the object's arrival.

RPO of a write = (first time the store shows it) - (the writer's acknowledgement). Negative
values (the store had it before the answer reached the client, as with quire --backup-sync) are
reported as 0. Writes still missing after the drain count as `unseen`.

Objects: the objects put into place from the first measured write until the last measured write
was seen durable (`objects`), and since the probe started (`objects_all`, warm-up included),
with `objects_per_10k_txns` = objects / measured writes * 10,000.
"""
import argparse
import ctypes
import ctypes.util
import http.client
import json
import os
import random
import select
import socket
import sqlite3
import struct
import threading
import time
import urllib.parse

now = time.monotonic

# --- inotify ---------------------------------------------------------------------------------
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_ISDIR = 0x40000000
IN_Q_OVERFLOW = 0x00004000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def is_temp(name):
    return (name.startswith(".") or name.endswith(".tmp") or ".tmp" in name
            or name.startswith(".quire-tmp"))


S3RVER_META = "._S3rver_metadata.json"
S3RVER_OBJECT = "._S3rver_object"


class TreeWatch:
    """inotify over a directory tree. layout "file": objects are files put into place;
    "s3rver": s3rver's directory, where an object is stored once its metadata file is written
    (after the content, in `<key>._S3rver_object`)."""

    def __init__(self, root, layout="file"):
        self.layout = layout
        self.root = os.path.abspath(root)
        self.fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.wd = {}
        os.makedirs(self.root, exist_ok=True)
        self.add_tree(self.root)
        self.overflow = False

    def add(self, path):
        wd = _libc.inotify_add_watch(self.fd, path.encode(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE)
        if wd >= 0:
            self.wd[wd] = path

    def add_tree(self, path):
        self.add(path)
        for dirpath, dirnames, _ in os.walk(path):
            for d in dirnames:
                self.add(os.path.join(dirpath, d))

    def put(self, t, path):
        """-> (t, logical name, content path) or None."""
        name = os.path.basename(path)
        if self.layout == "s3rver":
            if not name.endswith(S3RVER_META):
                return None
            base = path[:-len(S3RVER_META)]
            return (t, os.path.basename(base), base + S3RVER_OBJECT)
        if is_temp(name):
            return None
        return (t, name, path)

    def events(self, timeout):
        """Returns [(time, name, content path)] for the objects put into place."""
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return []
        t = now()
        try:
            buf = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return []
        out = []
        i = 0
        while i + 16 <= len(buf):
            wd, mask, _cookie, ln = struct.unpack_from("iIII", buf, i)
            name = buf[i + 16:i + 16 + ln].split(b"\0", 1)[0].decode()
            i += 16 + ln
            if mask & IN_Q_OVERFLOW:
                self.overflow = True
                continue
            base = self.wd.get(wd)
            if base is None:
                continue
            path = os.path.join(base, name)
            if mask & IN_ISDIR:
                if mask & (IN_CREATE | IN_MOVED_TO):
                    self.add_tree(path)
                    # Files put there before the watch existed.
                    for dirpath, _, files in os.walk(path):
                        for f in files:
                            e = self.put(t, os.path.join(dirpath, f))
                            if e:
                                out.append(e)
                continue
            if mask & (IN_MOVED_TO | IN_CLOSE_WRITE):
                e = self.put(t, path)
                if e:
                    out.append(e)
        return out


# --- LZ4 frames (Litestream's segments), through the system's liblz4 ----------------------------
class Lz4:
    def __init__(self):
        name = ctypes.util.find_library("lz4") or "liblz4.so.1"
        self.lib = ctypes.CDLL(name)
        self.lib.LZ4F_createDecompressionContext.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_uint]
        self.lib.LZ4F_freeDecompressionContext.argtypes = [ctypes.c_void_p]
        self.lib.LZ4F_decompress.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                             ctypes.POINTER(ctypes.c_size_t), ctypes.c_void_p,
                                             ctypes.POINTER(ctypes.c_size_t), ctypes.c_void_p]
        self.lib.LZ4F_decompress.restype = ctypes.c_size_t
        self.lib.LZ4F_isError.argtypes = [ctypes.c_size_t]
        self.lib.LZ4F_isError.restype = ctypes.c_uint

    def scan(self, path, keep=64):
        """Decompresses the file in pieces: -> (its first `keep` bytes, its decompressed length)."""
        with open(path, "rb") as f:
            data = f.read()
        head = b""
        total = 0
        for piece in self.pieces(data):
            if len(head) < keep:
                head += piece[:keep - len(head)]
            total += len(piece)
        return head, total

    def decompress(self, data):
        return b"".join(self.pieces(data))

    def pieces(self, data):
        ctx = ctypes.c_void_p()
        if self.lib.LZ4F_createDecompressionContext(ctypes.byref(ctx), 100) != 0:
            raise RuntimeError("LZ4F_createDecompressionContext")
        try:
            src = ctypes.create_string_buffer(data, len(data))
            pos = 0
            chunk = ctypes.create_string_buffer(1 << 20)
            while True:
                dst_size = ctypes.c_size_t(len(chunk))
                src_size = ctypes.c_size_t(len(data) - pos)
                ret = self.lib.LZ4F_decompress(ctx, chunk, ctypes.byref(dst_size),
                                               ctypes.byref(src, pos), ctypes.byref(src_size), None)
                if self.lib.LZ4F_isError(ret):
                    raise RuntimeError("LZ4F_decompress failed")
                if dst_size.value:
                    yield chunk.raw[:dst_size.value]
                pos += src_size.value
                if ret == 0 or (pos >= len(data) and dst_size.value == 0):
                    break
        finally:
            self.lib.LZ4F_freeDecompressionContext(ctx)


# --- the stores ---------------------------------------------------------------------------------
class Durable:
    """Positions seen in the store over time: a list of (time, key, frame) and the max so far."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seen = []          # (t, key, frame) in time order
        self.best = {}          # key -> highest frame seen
        self.objects = []       # times objects were put into place
        self.errors = []

    def note(self, t, key, frame):
        with self.lock:
            if frame > self.best.get(key, -1):
                self.best[key] = frame
                self.seen.append((t, key, frame))

    def first_time(self, key, frame):
        # Linear scan is fine: a few thousand entries at most.
        for t, k, f in self.seen:
            if k == key and f >= frame:
                return t
        return None


def manifest_frame(text):
    m = json.loads(text)
    best = 0
    for b in m.get("batches", []):
        best = max(best, int(b["last_frame"]))
    for s in m.get("snapshots", []):
        best = max(best, int(s["frame"]))
    return m.get("log_id", ""), best


def watch_quire_files(watch, durable, stop):
    while not stop.is_set():
        for t, name, path in watch.events(0.05):
            durable.objects.append(t)
            if name.endswith(".qbbat"):
                # A batch is durable once its object is in place (the manifest is rewritten
                # only every few batches; restore follows the batches after it by key). Its
                # header names its last frame (docs/formats/backup.md: offset 40, u64 LE).
                for attempt in range(20):
                    try:
                        with open(path, "rb") as f:
                            head = f.read(48)
                        if len(head) == 48 and head[:8] == b"QBKBTCH1":
                            durable.note(t, "", int.from_bytes(head[40:48], "little"))
                            break
                    except OSError as e:
                        if attempt == 19:
                            durable.errors.append(f"batch {path}: {e}")
                    time.sleep(0.001)
            elif name == "manifest.json":
                # s3rver rewrites an object in place: a read racing the next PUT of the manifest
                # can see it truncated; read again (the next version only names more frames).
                for attempt in range(20):
                    try:
                        with open(path, "rb") as f:
                            frame = manifest_frame(f.read())[1]
                        durable.note(t, "", frame)
                        break
                    except (OSError, ValueError) as e:
                        if attempt == 19:
                            durable.errors.append(f"manifest {path}: {e}")
                        time.sleep(0.001)


def segment_position(lz4, name, path, page_size):
    """A Litestream v0.3 WAL segment `<index>_<offset>.wal.lz4` -> (salts as hex, last frame).
    The segment holds the WAL's bytes from `offset` on: the 32-byte WAL header when offset is 0,
    then frames of 24 + page_size bytes, each header repeating the WAL's salts at 8..16."""
    frame_size = 24 + page_size
    offset = int(name[:-len(".wal.lz4")].split("_")[1], 16)
    head, length = lz4.scan(path, 32 + 24)
    start, skip = offset, 0
    if offset == 0:
        start, skip = 32, 32
    body = length - skip
    if body < frame_size or (start - 32) % frame_size:
        raise ValueError(f"unexpected offset/size {offset}/{length}")
    salt = head[skip + 8:skip + 16]
    return salt.hex(), (start - 32 + body - body % frame_size) // frame_size


def wal_position(shm_path):
    """-> (salts as hex, mxFrame) from the WAL index header at the start of the -shm file:
    mxFrame at 16, aSalt at 32 (the WAL header's salt bytes as they are)."""
    fd = os.open(shm_path, os.O_RDONLY)
    try:
        hdr = os.pread(fd, 48, 0)
    finally:
        os.close(fd)
    return hdr[32:40].hex(), struct.unpack_from("=I", hdr, 16)[0]


def watch_litestream_files(watch, durable, stop, page_size):
    lz4 = Lz4()
    while not stop.is_set():
        for t, name, path in watch.events(0.05):
            durable.objects.append(t)
            if not name.endswith(".wal.lz4"):
                continue
            try:
                salt, end_frame = segment_position(lz4, name, path, page_size)
            except (OSError, ValueError, RuntimeError) as e:
                durable.errors.append(f"segment {path}: {e}")
                continue
            durable.note(t, salt, end_frame)


# --- the writers --------------------------------------------------------------------------------
def random_value(rng):
    return "v%016x" % rng.getrandbits(64)


class QuireWriter:
    def __init__(self, url, namespace):
        u = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.headers = {"Content-Type": "application/json"}
        if namespace:
            self.headers["x-namespace"] = namespace
        self.rng = random.Random()

    def write(self):
        body = json.dumps({"baton": None, "requests": [
            {"type": "execute", "stmt": {"sql": "INSERT INTO t(v) VALUES (?)",
                                         "args": [{"type": "text", "value": random_value(self.rng)}]}},
            {"type": "close"}]})
        self.conn.request("POST", "/v2/pipeline", body, self.headers)
        r = self.conn.getresponse()
        data = r.read()
        t = now()
        if r.status != 200 or b'"type":"ok"' not in data.replace(b" ", b""):
            raise RuntimeError(f"write failed: HTTP {r.status}: {data[:200]!r}")
        frame = r.getheader("x-quire-frame")
        if frame is None:
            raise RuntimeError("the answer has no x-quire-frame header")
        return t, "", int(frame)


class SqliteWriter:
    def __init__(self, db):
        self.conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout=5000")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"journal_mode is {mode}")
        self.page_size = self.conn.execute("PRAGMA page_size").fetchone()[0]
        self.conn.execute("SELECT count(*) FROM t").fetchone()  # opens the WAL index
        self.shm = os.open(db + "-shm", os.O_RDONLY)
        self.rng = random.Random()

    def write(self):
        self.conn.execute("INSERT INTO t(v) VALUES (?)", (random_value(self.rng),))
        t = now()
        # The WAL index header: mxFrame at 16, aSalt at 32 (the WAL header's salt bytes as they
        # are, which every frame header repeats).
        hdr = os.pread(self.shm, 48, 0)
        mx_frame = struct.unpack_from("=I", hdr, 16)[0]
        return t, hdr[32:40].hex(), mx_frame


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("peer", choices=["quire", "litestream"])
    ap.add_argument("--url", help="quire: http://127.0.0.1:PORT")
    ap.add_argument("--namespace", default="")
    ap.add_argument("--db", help="litestream: the database file")
    ap.add_argument("--store-dir", help="the file store's directory for this database (watched with inotify)")
    ap.add_argument("--s3rver", action="store_true",
                    help="--store-dir is s3rver's directory for the bucket and prefix (watched with inotify)")
    ap.add_argument("--rate", type=float, default=100, help="writes per second (open loop)")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--drain", type=float, default=15)
    ap.add_argument("--scenario", default="rpo")
    ap.add_argument("--tag", action="append", default=[])
    a = ap.parse_args()

    durable = Durable()
    stop = threading.Event()
    if a.peer == "quire":
        writer = QuireWriter(a.url, a.namespace)
        watch = TreeWatch(a.store_dir, "s3rver" if a.s3rver else "file")
        th = threading.Thread(target=watch_quire_files, args=(watch, durable, stop), daemon=True)
        method = ("inotify on s3rver's directory" if a.s3rver else "inotify on the file store") + \
            ", each batch header (and manifest) read as it lands"
    else:
        writer = SqliteWriter(a.db)
        watch = TreeWatch(a.store_dir, "s3rver" if a.s3rver else "file")
        th = threading.Thread(target=watch_litestream_files, args=(watch, durable, stop, writer.page_size),
                              daemon=True)
        method = ("inotify on s3rver's directory" if a.s3rver else "inotify on the file replica") + \
            ", each WAL segment decompressed and matched by salt and frame"
    th.start()

    started = now()
    measure_start = started + a.warmup
    end = measure_start + a.seconds
    interval = 1.0 / a.rate
    acks = []          # (t_ack, key, frame) of measured writes
    acks_all = 0
    lateness = []
    i = 0
    while True:
        due = started + i * interval
        if due >= end or now() >= end:  # a writer that cannot keep the rate stops on time
            break
        wait = due - now()
        if wait > 0:
            time.sleep(wait)
        else:
            lateness.append(-wait)
        sent = now()
        t, key, frame = writer.write()
        acks_all += 1
        if sent >= measure_start:  # measured: sent in the window (a lagging writer sends late)
            acks.append((t, key, frame))
        i += 1

    # Drain: wait until the last measured write is in the store (or give up).
    deadline = now() + a.drain
    last = acks[-1] if acks else None
    while last and now() < deadline and durable.first_time(last[1], last[2]) is None:
        time.sleep(0.01)
    drained_at = now()
    time.sleep(0.05)
    stop.set()
    th.join(timeout=2)

    rpos = []
    unseen = 0
    for t, key, frame in acks:
        seen = durable.first_time(key, frame)
        if seen is None:
            unseen += 1
        else:
            rpos.append(max(0.0, seen - t))
    rpos.sort()
    first_measured = acks[0][0] if acks else measure_start
    last_seen = max((durable.first_time(k, f) or 0) for _, k, f in acks[-1:]) if acks else drained_at
    objects = sum(1 for t in durable.objects if first_measured - interval <= t <= max(last_seen, first_measured))
    n = len(acks)
    ms = lambda v: None if v is None else round(v * 1000, 2)
    line = {
        "scenario": a.scenario,
        "peer": a.peer,
        "rate": a.rate,
        "seconds": a.seconds,
        "txns": n,
        "acked_all": acks_all,
        "achieved_rate": round(n / a.seconds, 1),  # measured writes / the window
        "writer_late_p99_ms": ms(percentile(sorted(lateness), 99)) if lateness else 0.0,
        "rpo_p50_ms": ms(percentile(rpos, 50)),
        "rpo_p90_ms": ms(percentile(rpos, 90)),
        "rpo_p99_ms": ms(percentile(rpos, 99)),
        "rpo_max_ms": ms(rpos[-1] if rpos else None),
        "rpo_mean_ms": ms(sum(rpos) / len(rpos)) if rpos else None,
        "unseen": unseen,
        "objects": objects,
        "objects_all": len(durable.objects),
        "objects_per_10k_txns": round(objects / n * 10000, 1) if n else None,
        "durable_positions_seen": len(durable.seen),
        "method": method,
        "errors": durable.errors[:5],
        "inotify_overflow": bool(getattr(locals().get("watch"), "overflow", False)),
    }
    for tag in a.tag:
        k, _, v = tag.partition("=")
        line[k] = v
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
