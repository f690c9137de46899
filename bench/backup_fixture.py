#!/usr/bin/env python3
"""Loads the restore benchmark's database (bench/backup_run), the same on both sides.

  backup_fixture.py quire --url http://127.0.0.1:PORT --mib 1024 [--quire-store P [--s3rver]]
  backup_fixture.py sqlite --db FILE --mib 1024 [--litestream-replica DIR]

Creates t(id INTEGER PRIMARY KEY, v BLOB) and inserts ceil(MiB * 2^20 / 4,000,000) transactions
of 1,000 rows of randomblob(4000) each (about 4 MiB of pages per transaction; quire: one
`/v2/pipeline` request per transaction; sqlite: Python's sqlite3, WAL, synchronous=NORMAL).
Then it waits until the backup holds the last load transaction (quire with --quire-store P: until
P/<log-id>/manifest.json reaches the frame of the last answer's x-quire-frame; sqlite with
--litestream-replica DIR: until a WAL segment in DIR reaches the WAL position read from -shm
after the last commit; without either, the caller backs up offline afterwards), waits to the
next whole second plus one, takes that second as the restore target T, waits --after seconds
more and commits 10 one-row transactions after T (so a restore at T must stop before them).
Prints one JSON line: target (RFC 3339, UTC, whole seconds), rows at T, bytes at T
(sum(length(v))), load seconds.
"""
import argparse
import datetime
import http.client
import json
import os
import sqlite3
import sys
import time
import urllib.parse

ROWS_PER_TXN = 1000
BLOB = 4000
INSERT = ("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1000) "
          "INSERT INTO t (v) SELECT randomblob(4000) FROM c")


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backup_probe  # noqa: E402  (the segment and WAL-index readers)


class Quire:
    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
        self.frame = 0

    def run(self, sql):
        body = json.dumps({"requests": [{"type": "execute", "stmt": {"sql": sql}}, {"type": "close"}]})
        self.conn.request("POST", "/v2/pipeline", body, {"Content-Type": "application/json"})
        res = self.conn.getresponse()
        data = json.loads(res.read())
        r = data["results"][0]
        if res.status != 200 or r["type"] != "ok":
            sys.exit(f"backup_fixture: {sql[:60]}: HTTP {res.status}: {json.dumps(data)[:300]}")
        self.frame = int(res.getheader("x-quire-frame") or 0)
        rows = r["response"]["result"]["rows"]
        return rows[0][0]["value"] if rows and rows[0] else None


class Sqlite:
    def __init__(self, db):
        self.conn = sqlite3.connect(db, isolation_level=None)
        self.conn.execute("PRAGMA busy_timeout=5000")
        if self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
            sys.exit("backup_fixture: cannot set WAL mode")
        self.conn.execute("PRAGMA synchronous=NORMAL")

    def run(self, sql):
        row = self.conn.execute(sql).fetchone()
        return None if row is None else row[0]


def wait_quire(store, frame, s3rver=False, timeout=900):
    """Until the lineage under `store` (its manifest, then the batches after it) reaches `frame`.
    With `s3rver`, `store` is s3rver's directory for the prefix: an object is read from
    `<key>._S3rver_object` once its `<key>._S3rver_metadata.json` (written after it) exists."""
    def path(*parts):
        p = os.path.join(store, *parts)
        if not s3rver:
            return p
        if not os.path.exists(p + backup_probe.S3RVER_META):
            raise OSError(f"{p}: not (completely) stored yet")
        return p + backup_probe.S3RVER_OBJECT

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(path("lineages.json")) as f:
                log_id = json.load(f)["lineages"][-1]["log_id"]
            with open(path(log_id, "manifest.json"), "rb") as f:
                last = backup_probe.manifest_frame(f.read())[1]
            # The manifest is rewritten every 30 batches: the batches stored after it are found
            # by key, each named by its first frame, its header naming its last (offset 40).
            while last < frame:
                key = path(log_id, "batches", "%016x.qbbat" % (last + 1))
                with open(key, "rb") as f:
                    head = f.read(48)
                if len(head) < 48 or head[:8] != b"QBKBTCH1":
                    break
                last = int.from_bytes(head[40:48], "little")
            if last >= frame:
                return
        except (OSError, ValueError, KeyError, IndexError):
            pass
        time.sleep(0.2)
    sys.exit(f"backup_fixture: the backup did not reach frame {frame} in {timeout} s")


def wait_litestream(replica, db, page_size, timeout=900):
    """Until a WAL segment in the replica reaches the WAL position after the last commit."""
    salt, frame = backup_probe.wal_position(db + "-shm")
    lz4 = backup_probe.Lz4()
    seen = {}
    deadline = time.time() + timeout
    while time.time() < deadline:
        for dirpath, _, files in os.walk(replica):
            for name in files:
                if not name.endswith(".wal.lz4"):
                    continue
                path = os.path.join(dirpath, name)
                if path not in seen:
                    try:
                        seen[path] = backup_probe.segment_position(lz4, name, path, page_size)
                    except (OSError, ValueError, RuntimeError):
                        continue
                if seen[path][0] == salt and seen[path][1] >= frame:
                    return
        time.sleep(0.2)
    sys.exit(f"backup_fixture: the replica did not reach WAL frame {frame} in {timeout} s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("peer", choices=["quire", "sqlite"])
    ap.add_argument("--url")
    ap.add_argument("--db")
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--quire-store", help="P: the store directory of the namespace")
    ap.add_argument("--s3rver", action="store_true",
                    help="--quire-store is s3rver's directory for the namespace's prefix")
    ap.add_argument("--litestream-replica", help="the file replica's directory")
    ap.add_argument("--after", type=float, default=1.5)
    a = ap.parse_args()
    side = Quire(a.url) if a.peer == "quire" else Sqlite(a.db)
    side.run("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    txns = (a.mib * 1048576 + ROWS_PER_TXN * BLOB - 1) // (ROWS_PER_TXN * BLOB)
    t0 = time.monotonic()
    for _ in range(txns):
        side.run(INSERT)
    load_s = time.monotonic() - t0
    if a.quire_store:
        wait_quire(a.quire_store, side.frame, s3rver=a.s3rver)
    if a.litestream_replica:
        wait_litestream(a.litestream_replica, a.db, side.run("PRAGMA page_size"))
    target = int(time.time()) + 2
    time.sleep(max(0.0, target - time.time()))
    time.sleep(a.after)
    rows = txns * ROWS_PER_TXN
    for i in range(10):
        side.run(f"INSERT INTO t (v) VALUES (randomblob({i + 1}))")
    print(json.dumps({
        "target": datetime.datetime.fromtimestamp(target, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "rows": rows, "bytes": rows * BLOB, "txns": txns, "load_s": round(load_s, 1),
        "wait_s": round(time.monotonic() - t0 - load_s, 1)}), flush=True)


if __name__ == "__main__":
    main()
