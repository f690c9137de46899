// The in-process SQLite peer for the quire benchmarks: the engine's own limit.
//
// Runs the statements quire is measured with directly through the SQLite C API, one prepared
// statement reused per connection, for a fixed time after a warm-up:
//   read      SELECT v FROM t WHERE id = ? with a random id, each in autocommit
//   read-txn  the same lookups inside one long read transaction
//   insert    INSERT INTO t(v) VALUES (?) with a random short text, each its own commit
// The database must already hold table t(id INTEGER PRIMARY KEY, v TEXT) in WAL mode.
// With --threads N (default 1) N threads each run the workload on a connection of their own
// (a writer waits for the others in SQLite's busy handler, --busy-timeout ms at most, then
// counts an error). Prints the same JSON line as loadgen (conns is the number of threads), with
// acked_all: the statements that succeeded at any time, warm-up included.
//
//   sqlite_inproc --db FILE --workload insert --synchronous full --seconds 10 --tag peer=sqlite
//   sqlite_inproc --db FILE --workload insert --threads 64 --scenario insert-c64
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench_common.h"

namespace quire::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string db;
  std::string workload = "read";
  std::string synchronous = "normal";
  double seconds = 10;
  double warmup = 2;
  int64_t rows = 100000;
  int threads = 1;
  int busy_timeout_ms = 5000;
  std::string scenario;
  std::string disk;  // block device whose flushes to count, e.g. vda
  Tags tags;
};

[[noreturn]] void Usage(const std::string& why) {
  std::cerr << "sqlite_inproc: " << why
            << "\nusage: sqlite_inproc --db FILE [--workload read|read-txn|insert]"
               " [--synchronous normal|full] [--seconds S] [--warmup W] [--rows 100000]"
               " [--threads N] [--busy-timeout MS] [--scenario NAME] [--disk DEV]"
               " [--tag key=value]...\n";
  std::exit(2);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Usage("missing value for " + a);
      return argv[++i];
    };
    if (a == "--db") {
      o.db = next();
    } else if (a == "--workload") {
      o.workload = next();
    } else if (a == "--synchronous") {
      o.synchronous = next();
    } else if (a == "--seconds") {
      o.seconds = std::stod(next());
    } else if (a == "--warmup") {
      o.warmup = std::stod(next());
    } else if (a == "--rows") {
      o.rows = std::stoll(next());
    } else if (a == "--threads") {
      o.threads = std::stoi(next());
    } else if (a == "--busy-timeout") {
      o.busy_timeout_ms = std::stoi(next());
    } else if (a == "--scenario") {
      o.scenario = next();
    } else if (a == "--disk") {
      o.disk = next();
    } else if (a == "--tag") {
      if (!ParseTag(next(), &o.tags)) Usage("--tag wants key=value");
    } else {
      Usage("unknown argument " + a);
    }
  }
  if (o.db.empty()) Usage("--db is required");
  if (o.workload != "read" && o.workload != "read-txn" && o.workload != "insert") {
    Usage("--workload is read, read-txn or insert");
  }
  if (o.synchronous != "normal" && o.synchronous != "full") {
    Usage("--synchronous is normal or full");
  }
  if (o.seconds <= 0 || o.warmup < 0 || o.rows < 1 || o.threads < 1 || o.busy_timeout_ms < 0) {
    Usage("bad numbers");
  }
  if (o.scenario.empty()) {
    o.scenario = (o.workload == "insert" ? "insert-c" : "point-read-c") + std::to_string(o.threads);
  }
  return o;
}

void Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::cerr << "sqlite_inproc: " << sql << ": " << (err ? err : "?") << "\n";
    sqlite3_free(err);
    std::exit(1);
  }
}

// One thread's connection and counts.
struct Worker {
  LatencyHistogram hist;
  uint64_t requests = 0, errors = 0, acked_all = 0;
  size_t bytes_read = 0;  // keeps the row read from being optimised away
};

void RunWorker(const Options& opt, Clock::time_point measure_start, Clock::time_point end,
               std::atomic<int>* errors_shown, Worker* w) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(opt.db.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    std::cerr << "sqlite_inproc: cannot open " << opt.db << ": " << sqlite3_errmsg(db) << "\n";
    std::exit(1);
  }
  sqlite3_busy_timeout(db, opt.busy_timeout_ms);
  Exec(db, "PRAGMA journal_mode=WAL");
  Exec(db, "PRAGMA synchronous=" + opt.synchronous);

  const bool insert = opt.workload == "insert";
  const char* sql = insert ? "INSERT INTO t(v) VALUES (?)" : "SELECT v FROM t WHERE id = ?";
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
    std::cerr << "sqlite_inproc: prepare: " << sqlite3_errmsg(db) << "\n";
    std::exit(1);
  }
  if (opt.workload == "read-txn") Exec(db, "BEGIN");

  std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<int64_t> ids(1, opt.rows);
  char value[24];
  for (auto t0 = Clock::now(); t0 < end;) {
    bool ok;
    if (insert) {
      const int n =
          std::snprintf(value, sizeof value, "v%016llx", static_cast<unsigned long long>(rng()));
      sqlite3_bind_text(stmt, 1, value, n, SQLITE_STATIC);
      ok = sqlite3_step(stmt) == SQLITE_DONE;
    } else {
      sqlite3_bind_int64(stmt, 1, ids(rng));
      ok = sqlite3_step(stmt) == SQLITE_ROW;
      if (ok) w->bytes_read += static_cast<size_t>(sqlite3_column_bytes(stmt, 0));
    }
    sqlite3_reset(stmt);
    const auto t1 = Clock::now();
    if (ok) ++w->acked_all;
    if (t0 >= measure_start) {
      if (ok) {
        ++w->requests;
        w->hist.Record(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
      } else {
        ++w->errors;
        if (errors_shown->fetch_add(1) < 3) {
          std::cerr << "sqlite_inproc: " << sqlite3_errmsg(db) << " (extended code "
                    << sqlite3_extended_errcode(db) << ")\n";
        }
      }
    }
    t0 = t1;
  }
  if (opt.workload == "read-txn") Exec(db, "COMMIT");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

int Main(int argc, char** argv) {
  const Options opt = ParseArgs(argc, argv);
  const auto start = Clock::now();
  const auto measure_start = start + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(opt.warmup));
  const auto end = measure_start + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(opt.seconds));
  std::vector<Worker> workers(static_cast<size_t>(opt.threads));
  std::atomic<int> errors_shown{0};
  std::vector<std::thread> threads;
  for (auto& w : workers) {
    threads.emplace_back(RunWorker, std::cref(opt), measure_start, end, &errors_shown, &w);
  }
  // Device flushes during the measured window.
  std::this_thread::sleep_until(measure_start);
  const int64_t flushes_at_start = DiskFlushes(opt.disk);
  std::this_thread::sleep_until(end);
  const int64_t flushes_at_end = DiskFlushes(opt.disk);
  for (auto& t : threads) t.join();

  LatencyHistogram hist;
  uint64_t requests = 0, errors = 0, acked_all = 0;
  size_t bytes_read = 0;
  for (const auto& w : workers) {
    hist.Merge(w.hist);
    requests += w.requests;
    errors += w.errors;
    acked_all += w.acked_all;
    bytes_read += w.bytes_read;
  }
  if (opt.workload != "insert" && bytes_read == 0) std::cerr << "sqlite_inproc: no row read\n";
  Numbers numbers;
  if (flushes_at_start >= 0 && flushes_at_end >= 0) {
    numbers.emplace_back("dev_flushes", static_cast<double>(flushes_at_end - flushes_at_start));
  }
  numbers.emplace_back("acked_all", static_cast<double>(acked_all));
  std::cout << ResultJson(opt.scenario, opt.threads, requests, errors, opt.seconds, hist, opt.tags,
                          numbers)
            << std::endl;
  return requests > 0 ? 0 : 1;
}

}  // namespace
}  // namespace quire::bench

int main(int argc, char** argv) { return quire::bench::Main(argc, argv); }
