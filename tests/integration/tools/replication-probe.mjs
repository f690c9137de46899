// replication-probe.mjs: a development tool, not a test. It records what the real libSQL
// embedded-replica clients (npm `libsql` 0.5.x and `@libsql/client` 0.18) send to a sync
// server, and how they react to each kind of answer. The findings live in
// docs/replication-protocol.md; the golden bytes in tests/unit/protocol/replication_*_test.cpp
// were copied from this tool's log.
//
// How it works: for each scenario, a worker thread runs a plain node:http server on 127.0.0.1
// that logs every request (method, path, headers, body as hex plus a best-effort decode of the
// gRPC-Web frames and protobuf fields) and answers with the scenario's canned responses. The main
// thread then drives the real clients against it. A worker is needed because the `libsql`
// package's calls (`db.sync()`, `db.exec()`) block the main thread's event loop.
//
// Usage (from tests/integration, after `npm ci`):
//   node tools/replication-probe.mjs                 # every scenario
//   node tools/replication-probe.mjs ok-writes hello-unavailable   # some of them
//   node tools/replication-probe.mjs --list
// Output: a log on stdout, and the same in $PROBE_LOG (default /tmp/replication-probe.log).
// Scratch databases go to a fresh directory under the OS temp dir.
//
// The canned server is deliberately dumb: it serves one fixed "primary" database image (a table
// t(id INTEGER PRIMARY KEY, v TEXT) with two rows, made at start-up with `libsql` itself in WAL
// mode with 4096-byte pages) as replication frames 0..n-1, and answers every Execute with one
// "1 row changed" result. It is enough to make the clients walk every code path of interest.

import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "package.json"));

// ------------------------------------------------------------------ protobuf (tiny, our own)

function varint(n) {
  let v = BigInt(n);
  const out = [];
  while (v >= 0x80n) {
    out.push(Number((v & 0x7fn) | 0x80n));
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}
const tag = (field, wt) => varint((field << 3) | wt);
const pbVarint = (field, n) => Buffer.concat([tag(field, 0), varint(n)]);
const pbBytes = (field, b) => {
  const buf = Buffer.isBuffer(b) ? b : Buffer.from(b);
  return Buffer.concat([tag(field, 2), varint(buf.length), buf]);
};

// Best-effort decode for the log: {field: [values]}; nested messages are tried recursively.
function pbDecode(buf, depth = 0) {
  const out = [];
  let i = 0;
  const readVarint = () => {
    let v = 0n;
    let s = 0n;
    for (;;) {
      if (i >= buf.length) throw new Error("truncated varint");
      const b = buf[i++];
      v |= BigInt(b & 0x7f) << s;
      s += 7n;
      if (!(b & 0x80)) return v;
    }
  };
  while (i < buf.length) {
    const key = readVarint();
    const field = Number(key >> 3n);
    const wt = Number(key & 7n);
    if (wt === 0) out.push(`${field}:${readVarint()}`);
    else if (wt === 1) {
      out.push(`${field}:fixed64 ${buf.subarray(i, i + 8).toString("hex")}`);
      i += 8;
    } else if (wt === 5) {
      out.push(`${field}:fixed32 ${buf.subarray(i, i + 4).toString("hex")}`);
      i += 4;
    } else if (wt === 2) {
      const len = Number(readVarint());
      const b = buf.subarray(i, i + len);
      i += len;
      let shown;
      try {
        if (depth < 6 && b.length > 0) shown = `{${pbDecode(b, depth + 1)}}`;
      } catch {}
      const printable = /^[\x20-\x7e]*$/.test(b.toString("latin1"));
      if (printable) shown = JSON.stringify(b.toString("latin1"));
      out.push(`${field}:${shown ?? "0x" + b.toString("hex")}`);
    } else throw new Error(`wire type ${wt}`);
  }
  return out.join(" ");
}

// ------------------------------------------------------------------ gRPC-Web framing

function grpcFrame(flag, payload) {
  const head = Buffer.alloc(5);
  head[0] = flag;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}
const dataFrame = (msg) => grpcFrame(0x00, msg);
const trailerFrame = (status, message) =>
  grpcFrame(
    0x80,
    Buffer.from(
      `grpc-status:${status}\r\n` +
        (message ? `grpc-message:${encodeURIComponent(message)}\r\n` : ""),
    ),
  );

function splitGrpc(body) {
  const frames = [];
  let i = 0;
  while (i + 5 <= body.length) {
    const flag = body[i];
    const len = body.readUInt32BE(i + 1);
    frames.push({ flag, payload: body.subarray(i + 5, i + 5 + len) });
    i += 5 + len;
  }
  if (i !== body.length) frames.push({ flag: -1, payload: body.subarray(i) });
  return frames;
}

// ------------------------------------------------------------------ the canned primary

const LOG_ID = "b7c1d8a2-3f4e-4a5b-9c6d-7e8f90a1b2c3";
const SESSION = "5f0e1d2c-3b4a-4958-8776-655443322110";

function helloResponse({ logId = LOG_ID, session = SESSION, currentIndex } = {}) {
  const parts = [
    pbBytes(1, "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"), // generation_id
    pbVarint(2, 0), // generation_start_index
    pbBytes(3, logId),
    pbBytes(4, session),
  ];
  if (currentIndex !== undefined) parts.push(pbVarint(5, currentIndex));
  return Buffer.concat(parts);
}

// Frame.data: 24-byte little-endian header + 4096-byte page.
function replFrame(frameNo, pageNo, sizeAfter, page) {
  const h = Buffer.alloc(24);
  h.writeBigUInt64LE(BigInt(frameNo), 0);
  h.writeBigUInt64LE(0n, 8); // checksum: the replica never checks it
  h.writeUInt32LE(pageNo, 16);
  h.writeUInt32LE(sizeAfter, 20);
  return Buffer.concat([h, page]);
}

function framesFor(pages, from) {
  const n = pages.length;
  const out = [];
  for (let f = from; f < n; ++f) {
    out.push(pbBytes(1, pbBytes(1, replFrame(f, f + 1, f === n - 1 ? n : 0, pages[f]))));
  }
  return Buffer.concat(out); // wal_log.Frames { repeated Frame frames = 1 }
}

const bincodeInt = (n) => {
  const b = Buffer.alloc(12);
  b.writeUInt32LE(1, 0);
  b.writeBigInt64LE(BigInt(n), 4);
  return b;
};

// proxy.ExecuteResults for one statement: 1 row changed, last rowid 3, state from the request.
function executeResults(state, { withRow = false } = {}) {
  const rows = [pbVarint(3, 1), pbVarint(4, 3)];
  if (withRow) {
    rows.unshift(pbBytes(1, pbBytes(1, "x")));
    rows.push(pbBytes(2, pbBytes(1, pbBytes(1, bincodeInt(42)))));
  }
  const result = pbBytes(1, pbBytes(2, Buffer.concat(rows)));
  return Buffer.concat([result, pbVarint(2, state), pbVarint(3, 1)]);
}

// Scenarios: name -> {about, routes: {path: (ctx) => response}, run: "libsql"|"client"|...}.
// A response is {status, headers, body} or a helper's result.
function grpcOk(...msgs) {
  return {
    status: 200,
    headers: { "content-type": "application/grpc-web+proto" },
    body: Buffer.concat([...msgs.map(dataFrame), trailerFrame(0)]),
  };
}
function grpcErr(code, message) {
  return {
    status: 200,
    headers: { "content-type": "application/grpc-web+proto" },
    body: trailerFrame(code, message),
  };
}
function grpcTrailersOnly(code, message) {
  return {
    status: 200,
    headers: {
      "content-type": "application/grpc-web+proto",
      "grpc-status": String(code),
      "grpc-message": encodeURIComponent(message),
    },
    body: Buffer.alloc(0),
  };
}

function executeHandler(ctx) {
  // Track BEGIN/COMMIT crudely so the client sees TXN while a transaction is open.
  const sql = ctx.decoded;
  if (/BEGIN/i.test(sql)) ctx.state.txn = true;
  if (/COMMIT|ROLLBACK|END/i.test(sql)) ctx.state.txn = false;
  return grpcOk(executeResults(ctx.state.txn ? 2 : 0, { withRow: /RETURNING/i.test(sql) }));
}

// DescribeResult { description = 2: Description { param_names = 2, param_count = 3 } }, the
// parameters found by a crude scan of the SQL. sqld lists the names of named parameters only.
// The client (libsql-js convert_params_object) asks for parameter_name(i + 1) and libsql's
// RemoteStatement answers param_names[i + 1], so a list in sqld's shape is read off by one and
// the client panics (unwrap on None). By default the probe prepends a placeholder (PROBE_DESCRIBE_SHIFT=0 reproduces the panic) so that
// param_names[i] is the name of parameter i (1-based), which is what the client can use.
function describeHandler(ctx) {
  const sql = /2:"(.*)"$/.exec(ctx.decoded)?.[1] ?? "";
  const params = sql.match(/\?\d*|[:@$][A-Za-z_]\w*/g) ?? [];
  const names =
    process.env.PROBE_DESCRIBE_SHIFT !== "0"
      ? ["", ...params.map((p) => (p.startsWith("?") ? "" : p))]
      : params.filter((p) => !p.startsWith("?"));
  const desc = Buffer.concat([...names.map((n) => pbBytes(2, n)), pbVarint(3, params.length)]);
  return grpcOk(pbBytes(2, desc));
}

const okRoutes = (pages, extra = {}) => ({
  "GET /info": () => ({ status: 404, headers: {}, body: Buffer.from("not found") }),
  "POST /wal_log.ReplicationLog/Hello": () =>
    grpcOk(helloResponse({ currentIndex: pages.length - 1 })),
  "POST /wal_log.ReplicationLog/BatchLogEntries": (ctx) => {
    const offset = Number(ctx.firstMessageField1 ?? 0);
    return grpcOk(framesFor(pages, offset));
  },
  "POST /proxy.Proxy/Execute": executeHandler,
  "POST /proxy.Proxy/Describe": describeHandler,
  "POST /proxy.Proxy/Disconnect": () => grpcOk(Buffer.alloc(0)),
  ...extra,
});

function scenarios(pages) {
  return {
    "ok-writes": {
      about: "libsql: open, sync, exec INSERT, prepared INSERT, transaction, close",
      routes: okRoutes(pages),
      run: "libsqlWrites",
    },
    "client-ok": {
      about: "@libsql/client: createClient, sync, execute (read + write + args), batch('write')",
      routes: okRoutes(pages),
      run: "clientWrites",
    },
    "auth-token": {
      about: "libsql with authToken: where does the token go?",
      routes: okRoutes(pages),
      run: "libsqlSyncWithToken",
    },
    "localhost-namespace": {
      about: "libsql against http://localhost:PORT: x-namespace-bin value",
      routes: okRoutes(pages),
      run: "libsqlSyncLocalhost",
    },
    "info-401": {
      about: "GET /info answers 401",
      routes: okRoutes(pages, { "GET /info": () => ({ status: 401, headers: {}, body: "" }) }),
      run: "libsqlSync",
    },
    "info-200": {
      about: "GET /info answers 200 JSON (v2 protocol switch)",
      routes: okRoutes(pages, {
        "GET /info": () => ({
          status: 200,
          headers: { "content-type": "application/json" },
          body: Buffer.from('{"current_generation":1}'),
        }),
      }),
      run: "libsqlSync",
    },
    "hello-unavailable": {
      about: "Hello answers grpc-status 14 UNAVAILABLE (trailer frame)",
      routes: okRoutes(pages, {
        "POST /wal_log.ReplicationLog/Hello": () => grpcErr(14, "try later"),
      }),
      run: "libsqlSync",
    },
    "hello-trailers-only": {
      about: "Hello answers a trailers-only error (status in HTTP headers, empty body)",
      routes: okRoutes(pages, {
        "POST /wal_log.ReplicationLog/Hello": () => grpcTrailersOnly(7, "denied here"),
      }),
      run: "libsqlSync",
    },
    "hello-http-500": {
      about: "Hello answers HTTP 500 with no gRPC status",
      routes: okRoutes(pages, {
        "POST /wal_log.ReplicationLog/Hello": () => ({ status: 500, headers: {}, body: "boom" }),
      }),
      run: "libsqlSync",
    },
    "hello-no-content-type": {
      about: "Hello answers a good body but without a content-type header",
      routes: okRoutes(pages, {
        "POST /wal_log.ReplicationLog/Hello": () => ({
          ...grpcOk(helloResponse({ currentIndex: pages.length - 1 })),
          headers: {},
        }),
      }),
      run: "libsqlSync",
    },
    "hello-grpc-content-type": {
      about: "Hello answers with content-type application/grpc (not grpc-web)",
      routes: okRoutes(pages, {
        "POST /wal_log.ReplicationLog/Hello": () => ({
          ...grpcOk(helloResponse({ currentIndex: pages.length - 1 })),
          headers: { "content-type": "application/grpc" },
        }),
      }),
      run: "libsqlSync",
    },
    "hello-bad-logid": {
      about: "Hello with a log_id that is not a UUID",
      routes: okRoutes(pages, {
        "POST /wal_log.ReplicationLog/Hello": () => grpcOk(helloResponse({ logId: "not-a-uuid" })),
      }),
      run: "libsqlSync",
    },
    "hello-bad-session": {
      about: "Hello with a session_token that is not a UUID string",
      routes: okRoutes(pages, {
        "POST /wal_log.ReplicationLog/Hello": () => grpcOk(helloResponse({ session: "abc" })),
      }),
      run: "libsqlSync",
    },
    "hello-no-index": {
      about: "Hello without current_replication_index, empty Frames (empty primary)",
      routes: okRoutes(pages, {
        "POST /wal_log.ReplicationLog/Hello": () => grpcOk(helloResponse({})),
        "POST /wal_log.ReplicationLog/BatchLogEntries": () => grpcOk(Buffer.alloc(0)),
      }),
      run: "libsqlSync",
    },
    "need-snapshot": {
      about: "BatchLogEntries answers 9 NEED_SNAPSHOT; Snapshot streams the pages newest-first",
      routes: okRoutes(pages, {
        "POST /wal_log.ReplicationLog/BatchLogEntries": (ctx) => {
          const offset = Number(ctx.firstMessageField1 ?? 0);
          if (offset < pages.length) return grpcErr(9, "NEED_SNAPSHOT");
          return grpcOk(Buffer.alloc(0));
        },
        "POST /wal_log.ReplicationLog/Snapshot": () => {
          // One data frame per Frame message (stream Frame); the first carries the top frame_no.
          const n = pages.length;
          const msgs = [];
          for (let p = n; p >= 1; --p) {
            msgs.push(pbBytes(1, replFrame(n - 1, p, p === 1 ? n : 0, pages[p - 1])));
          }
          return grpcOk(...msgs);
        },
      }),
      run: "libsqlSync",
    },
    "no-hello": {
      about: "BatchLogEntries answers 9 NO_HELLO once: does the client re-handshake?",
      routes: okRoutes(pages, {
        "POST /wal_log.ReplicationLog/BatchLogEntries": (ctx) => {
          if (!ctx.state.refused) {
            ctx.state.refused = true;
            return grpcErr(9, "NO_HELLO");
          }
          return grpcOk(framesFor(pages, Number(ctx.firstMessageField1 ?? 0)));
        },
      }),
      run: "libsqlSync",
    },
    "execute-error": {
      about: "Execute answers grpc-status 3 INVALID_ARGUMENT; then an ExecuteResults with a SQL Error",
      routes: okRoutes(pages, {
        "POST /proxy.Proxy/Execute": (ctx) => {
          ctx.state.n = (ctx.state.n ?? 0) + 1;
          if (ctx.state.n === 1) return grpcErr(3, "bad program: ünïcode");
          // QueryResult { error = 1: Error { code=0 SQL_ERROR, message, extended_code=1 } }
          const err = Buffer.concat([pbVarint(1, 0), pbBytes(2, "no such table: nope"), pbVarint(3, 1)]);
          return grpcOk(Buffer.concat([pbBytes(1, pbBytes(1, err)), pbVarint(2, 0)]));
        },
      }),
      run: "libsqlExecErrors",
    },
    "frames-bad-size": {
      about: "BatchLogEntries returns a Frame whose data is not 4120 bytes",
      routes: okRoutes(pages, {
        "POST /wal_log.ReplicationLog/BatchLogEntries": () =>
          grpcOk(pbBytes(1, pbBytes(1, Buffer.alloc(100)))),
      }),
      run: "libsqlSync",
    },
  };
}

// ------------------------------------------------------------------ worker: the HTTP server

function logLine(file, s) {
  // Both threads append synchronously, so the file keeps the real order of events even while
  // the main thread is blocked inside the native client; stdout gets the file at the end.
  fs.appendFileSync(file, s + "\n");
}

function runServer() {
  const { scenario, logFile, pagesFile } = workerData;
  const pages = [];
  const image = fs.readFileSync(pagesFile);
  for (let i = 0; i < image.length; i += 4096) pages.push(image.subarray(i, i + 4096));
  const sc = scenarios(pages)[scenario];
  const state = {};
  let seq = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const n = ++seq;
      const hdrs = Object.entries(req.headers)
        .map(([k, v]) => `${k}: ${v}`)
        .join(" | ");
      logLine(logFile, `  [${n}] ${req.method} ${req.url} HTTP/${req.httpVersion}`);
      logLine(logFile, `      headers: ${hdrs}`);
      const ctx = { state, decoded: "", firstMessageField1: undefined };
      if (body.length) {
        logLine(logFile, `      body (${body.length} B): ${body.toString("hex").slice(0, 400)}`);
        for (const f of splitGrpc(body)) {
          let dec;
          try {
            dec = pbDecode(f.payload);
          } catch (e) {
            dec = `undecodable: ${e.message}`;
          }
          logLine(logFile, `      grpc frame flag=0x${f.flag.toString(16)} len=${f.payload.length}: ${dec}`);
          ctx.decoded += dec;
          const m = /^1:(\d+)/.exec(dec);
          if (m && ctx.firstMessageField1 === undefined) ctx.firstMessageField1 = m[1];
        }
      }
      const key = `${req.method} ${req.url.split("?")[0]}`;
      const handler = sc.routes[key];
      const answer = handler
        ? handler(ctx)
        : { status: 404, headers: {}, body: Buffer.from("no route") };
      const out = Buffer.isBuffer(answer.body) ? answer.body : Buffer.from(answer.body ?? "");
      logLine(
        logFile,
        `      -> ${answer.status} ${JSON.stringify(answer.headers)} body ${out.length} B` +
          (out.length && out.length < 200 ? ` ${out.toString("hex")}` : ""),
      );
      res.writeHead(answer.status, { ...answer.headers, "content-length": out.length });
      res.end(out);
    });
  });
  server.listen(0, "127.0.0.1", () => parentPort.postMessage({ port: server.address().port }));
}

// ------------------------------------------------------------------ main: drive the clients

function makePrimaryImage(dir) {
  const Database = require("libsql");
  const file = path.join(dir, "primary.db");
  const db = new Database(file);
  db.exec("PRAGMA page_size=4096; PRAGMA journal_mode=WAL;");
  db.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) VALUES ('a'),('b');");
  db.close();
  const out = path.join(dir, "primary.pages");
  fs.copyFileSync(file, out);
  return out;
}

function attempt(log, what, fn) {
  const t0 = Date.now();
  try {
    const r = fn();
    log(`  ${what} -> ok ${JSON.stringify(r, (_, v) => (typeof v === "bigint" ? `${v}n` : v))} (${Date.now() - t0} ms)`);
    return r;
  } catch (e) {
    log(`  ${what} -> THROWS ${e.code ?? ""} ${e.message} (${Date.now() - t0} ms)`);
    return undefined;
  }
}
async function attemptAsync(log, what, fn) {
  const t0 = Date.now();
  try {
    const r = await fn();
    log(`  ${what} -> ok ${JSON.stringify(r, (_, v) => (typeof v === "bigint" ? `${v}n` : v))} (${Date.now() - t0} ms)`);
    return r;
  } catch (e) {
    log(`  ${what} -> THROWS ${e.code ?? ""} ${e.message} (${Date.now() - t0} ms)`);
    return undefined;
  }
}

const runners = {
  libsqlSync(url, file, log) {
    const Database = require("libsql");
    const db = attempt(log, "new Database(file, {syncUrl})", () => new Database(file, { syncUrl: url }));
    if (!db) return;
    attempt(log, "db.sync()", () => db.sync());
    attempt(log, "SELECT count(*) FROM t", () => db.prepare("SELECT count(*) AS n FROM t").get());
    db.close();
  },
  libsqlSyncWithToken(url, file, log) {
    const Database = require("libsql");
    const db = new Database(file, { syncUrl: url, authToken: "TESTTOKEN" });
    attempt(log, "db.sync()", () => db.sync());
    db.close();
  },
  libsqlSyncLocalhost(url, file, log) {
    const Database = require("libsql");
    const db = new Database(file, { syncUrl: url.replace("127.0.0.1", "localhost") });
    attempt(log, "db.sync()", () => db.sync());
    db.close();
  },
  libsqlWrites(url, file, log) {
    const Database = require("libsql");
    const db = new Database(file, { syncUrl: url });
    attempt(log, "db.sync()", () => db.sync());
    attempt(log, "db.exec(INSERT)", () => db.exec("INSERT INTO t(v) VALUES ('c')"));
    attempt(log, "prepare(INSERT ?).run('d')", () =>
      db.prepare("INSERT INTO t(v) VALUES (?)").run("d"),
    );
    attempt(log, "prepare(INSERT :v).run({v})", () =>
      db.prepare("INSERT INTO t(v) VALUES (:v)").run({ v: "e" }),
    );
    attempt(log, "transaction", () => {
      db.exec("BEGIN IMMEDIATE");
      db.exec("INSERT INTO t(v) VALUES ('f')");
      db.exec("COMMIT");
      return "done";
    });
    attempt(log, "local read", () => db.prepare("SELECT count(*) AS n FROM t").get());
    db.close();
  },
  libsqlExecErrors(url, file, log) {
    const Database = require("libsql");
    const db = new Database(file, { syncUrl: url });
    attempt(log, "db.exec(INSERT) #1 (grpc error)", () => db.exec("INSERT INTO t(v) VALUES ('c')"));
    attempt(log, "db.exec(INSERT) #2 (Error in results)", () =>
      db.exec("INSERT INTO t(v) VALUES ('c')"),
    );
    db.close();
  },
  async clientWrites(url, file, log) {
    const { createClient } = await import("@libsql/client");
    const client = createClient({ url: `file:${file}`, syncUrl: url });
    await attemptAsync(log, "client.sync()", () => client.sync());
    await attemptAsync(log, "client.execute(SELECT)", async () =>
      (await client.execute("SELECT count(*) AS n FROM t")).rows,
    );
    await attemptAsync(log, "client.execute({sql,args})", async () => {
      const r = await client.execute({ sql: "INSERT INTO t(v) VALUES (?)", args: ["g"] });
      return { rowsAffected: r.rowsAffected, lastInsertRowid: r.lastInsertRowid };
    });
    await attemptAsync(log, "client.execute(INSERT RETURNING)", async () =>
      (await client.execute("INSERT INTO t(v) VALUES ('h') RETURNING id AS x")).rows,
    );
    await attemptAsync(log, "client.batch(write)", async () =>
      (await client.batch(["INSERT INTO t(v) VALUES ('i')", "INSERT INTO t(v) VALUES ('j')"], "write")).length,
    );
    client.close();
  },
};

async function main() {
  const sc0 = scenarios([]);
  const args = process.argv.slice(2);
  if (args.includes("--list")) {
    for (const [k, v] of Object.entries(sc0)) console.log(`${k.padEnd(22)} ${v.about}`);
    return;
  }
  const names = args.length ? args : Object.keys(sc0);
  const logFile = process.env.PROBE_LOG ?? path.join(os.tmpdir(), "replication-probe.log");
  fs.writeFileSync(logFile, "");
  const log = (s) => logLine(logFile, s);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "repl-probe-"));
  const pagesFile = makePrimaryImage(dir);
  log(`primary image: ${fs.statSync(pagesFile).size} bytes; scratch dir ${dir}`);
  for (const name of names) {
    const sc = sc0[name];
    if (!sc) throw new Error(`unknown scenario ${name}`);
    log(`\n=== ${name}: ${sc.about}`);
    const worker = new Worker(fileURLToPath(import.meta.url), {
      workerData: { scenario: name, logFile, pagesFile },
      stdout: false,
    });
    const { port } = await new Promise((resolve) => worker.once("message", resolve));
    const url = `http://127.0.0.1:${port}`;
    const file = path.join(dir, `${name}.db`);
    await runners[sc.run](url, file, log);
    await new Promise((r) => setTimeout(r, 200)); // let the worker flush its last lines
    await worker.terminate();
  }
  process.stdout.write(fs.readFileSync(logFile));
}

if (isMainThread) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  runServer();
}
