// The replication log's CPU cost per commit, in process (no HTTP, no client), for work on the
// capture path (engine/log_capture.h, log/wal_reader.h, log/log.h).
//
// Two modes, each committing --commits single-row inserts (INSERT INTO t(v) VALUES (?), a short
// text, like loadgen's insert workload) at synchronous=NORMAL in WAL mode:
//
//   engine   through engine::Database and the executor, as the server commits one write:
//            --log on|off. Reports the process's CPU (user + system, every thread: the
//            checkpointer and the log's background snapshots included) per commit.
//            --mirror off opens the database through the plain unix VFS, so the log reads each
//            commit back from the -wal file instead of from the VFS's copy (sqlite/mirror_vfs.h).
//   hook     a bare SQLite connection whose WAL hook calls LogCapture::capture(nFrame), as the
//            server's hook does, with a TRUNCATE-free passive checkpoint (after
//            capture_and_sync) every 1000 frames. Reports the committing thread's CPU spent in
//            capture() alone, per commit, and the process's CPU per commit.
//
//   capture_inproc --mode engine --log on --commits 50000 --dir /tmp/cap
//   capture_inproc --mode hook --commits 50000 --dir /tmp/cap
//
// Prints one line: mode, log, commits, wall µs/commit, process CPU µs/commit, and for hook the
// capture CPU µs/commit and the log's frames per commit.
#include <sqlite3.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include "bench_common.h"
#include "engine/database.h"
#include "engine/executor.h"
#include "engine/log_capture.h"

namespace {

namespace fs = std::filesystem;
using namespace quire;

double process_cpu_us() {
  rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  auto us = [](const timeval& t) { return t.tv_sec * 1e6 + t.tv_usec; };
  return us(ru.ru_utime) + us(ru.ru_stime);
}

double wall_us() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void die(const std::string& why) {
  std::cerr << "capture_inproc: " << why << "\n";
  std::exit(1);
}

void exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) die(err ? err : sql);
}

// Creates `path` in WAL mode with table t.
void make_database(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) die("open " + path);
  exec(db,
       "PRAGMA page_size=4096; PRAGMA journal_mode=WAL;"
       "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
       "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 10000)"
       "INSERT INTO t(id, v) SELECT i, printf('value-%06d', i) FROM c;"
       "PRAGMA wal_checkpoint(TRUNCATE);");
  sqlite3_close(db);
}

struct Hook {
  engine::LogCapture* capture = nullptr;
  double capture_cpu_us = 0;
  int frames = 0;
};

int on_commit(void* arg, sqlite3*, const char*, int frames) {
  auto* h = static_cast<Hook*>(arg);
  const double t0 = quire::bench::ThreadCpuUs();
  if (auto r = h->capture->capture(static_cast<std::uint32_t>(frames)); !r) die(r.error().message);
  h->capture_cpu_us += quire::bench::ThreadCpuUs() - t0;
  h->frames = frames;
  return SQLITE_OK;
}

void run_hook(const fs::path& dir, long commits) {
  const std::string path = (dir / "data").string();
  make_database(path);
  auto capture = engine::LogCapture::open(path, dir / "log", {});
  if (!capture) die(capture.error());
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) die("open");
  exec(db, "PRAGMA synchronous=NORMAL");
  Hook hook;
  hook.capture = capture->get();
  sqlite3_wal_hook(db, on_commit, &hook);
  sqlite3_stmt* ins = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES (?)", -1, &ins, nullptr);
  const auto first_frame = (*capture)->log().last_frame();
  const double c0 = process_cpu_us(), w0 = wall_us();
  for (long i = 0; i < commits; ++i) {
    char v[32];
    const int n = std::snprintf(v, sizeof v, "value-%09ld", i);
    sqlite3_bind_text(ins, 1, v, n, SQLITE_STATIC);
    if (sqlite3_step(ins) != SQLITE_DONE) die(sqlite3_errmsg(db));
    sqlite3_reset(ins);
    if (hook.frames >= 1000) {
      if (auto r = (*capture)->capture_and_sync(); !r) die(r.error().message);
      sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
      hook.frames = 0;
    }
  }
  const double cpu = process_cpu_us() - c0, wall = wall_us() - w0;
  const auto frames = (*capture)->log().last_frame() - first_frame;
  sqlite3_finalize(ins);
  sqlite3_close(db);
  std::printf(
      "mode=hook commits=%ld wall_us=%.2f cpu_us=%.2f capture_cpu_us=%.2f frames_per_commit=%.2f\n",
      commits, wall / commits, cpu / commits, hook.capture_cpu_us / commits,
      static_cast<double>(frames) / commits);
}

void run_engine(const fs::path& dir, long commits, bool log, bool mirror) {
  const std::string path = (dir / "data").string();
  make_database(path);
  engine::DatabaseOptions options;
  if (log) options.log_dir = dir / "log";
  if (!mirror) options.open.vfs = "unix";
  auto db = engine::Database::open(path, options);
  if (!db) die(db.error().message);
  {
    auto lease = (*db)->acquire();
    if (!lease) die(lease.error().message);
    engine::Query q{"INSERT INTO t(v) VALUES (?)", {Value{std::string()}}, {}, false};
    long slow = 0;  // commits that took over 1 ms (a stall: the checkpoint's syncs, a snapshot)
    double worst = 0;
    const double c0 = process_cpu_us(), w0 = wall_us();
    for (long i = 0; i < commits; ++i) {
      char v[32];
      std::snprintf(v, sizeof v, "value-%09ld", i);
      q.args[0] = std::string(v);
      engine::ResponseBudget budget{1 << 20};
      const double t0 = wall_us();
      if (auto r = engine::execute(**lease, q, budget); !r) die(r.error().message);
      const double took = wall_us() - t0;
      if (took > 1000) ++slow;
      if (took > worst) worst = took;
    }
    const double cpu = process_cpu_us() - c0, wall = wall_us() - w0;
    // WAL restarts, and those whose guard found the log synced already (no fdatasync).
    const engine::LogCapture* capture = (*db)->log_capture();
    std::printf(
        "mode=engine log=%s mirror=%s commits=%ld wall_us=%.2f cpu_us=%.2f over_1ms=%ld "
        "max_ms=%.1f wal_restarts=%llu restart_syncs_skipped=%llu\n",
        log ? "on" : "off", mirror ? "on" : "off", commits, wall / commits, cpu / commits, slow,
        worst / 1000,
        static_cast<unsigned long long>(capture ? capture->wal_restarts_guarded() : 0),
        static_cast<unsigned long long>(capture ? capture->wal_restart_syncs_skipped() : 0));
  }
  (*db)->close();
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = "hook", dir = "/tmp/capture_inproc";
  bool log = true, mirror = true;
  long commits = 50000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--mode") {
      mode = v;
    } else if (k == "--log") {
      log = v == "on";
    } else if (k == "--mirror") {
      mirror = v == "on";
    } else if (k == "--commits") {
      commits = std::atol(v.c_str());
    } else if (k == "--dir") {
      dir = v;
    } else {
      die("usage: capture_inproc [--mode hook|engine] [--log on|off] [--mirror on|off] [--commits N] [--dir D]");
    }
  }
  fs::remove_all(dir);
  fs::create_directories(dir);
  if (mode == "hook") {
    run_hook(dir, commits);
  } else if (mode == "engine") {
    run_engine(dir, commits, log, mirror);
  } else {
    die("--mode is hook or engine");
  }
  fs::remove_all(dir);
  return 0;
}
