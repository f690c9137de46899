// The in-process SQLite peer for the quire benchmarks: the engine's own limit.
//
// Runs the statements quire is measured with directly through the SQLite C API on one
// connection, one prepared statement reused, for a fixed time after a warm-up:
//   read      SELECT v FROM t WHERE id = ? with a random id, each in autocommit
//   read-txn  the same lookups inside one long read transaction
//   insert    INSERT INTO t(v) VALUES (?) with a random short text, each its own commit
// The database must already hold table t(id INTEGER PRIMARY KEY, v TEXT) in WAL mode.
// Prints the same JSON line as loadgen (conns is always 1).
//
//   sqlite_inproc --db FILE --workload insert --synchronous full --seconds 10 --tag peer=sqlite
#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
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
  std::string scenario;
  std::string disk;  // block device whose flushes to count, e.g. vda
  Tags tags;
};

[[noreturn]] void Usage(const std::string& why) {
  std::cerr << "sqlite_inproc: " << why
            << "\nusage: sqlite_inproc --db FILE [--workload read|read-txn|insert]"
               " [--synchronous normal|full] [--seconds S] [--warmup W] [--rows 100000]"
               " [--scenario NAME] [--disk DEV] [--tag key=value]...\n";
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
  if (o.seconds <= 0 || o.warmup < 0 || o.rows < 1) Usage("bad numbers");
  if (o.scenario.empty()) o.scenario = o.workload == "insert" ? "insert-c1" : "point-read-c1";
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

int Main(int argc, char** argv) {
  const Options opt = ParseArgs(argc, argv);
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(opt.db.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    std::cerr << "sqlite_inproc: cannot open " << opt.db << ": " << sqlite3_errmsg(db) << "\n";
    return 1;
  }
  Exec(db, "PRAGMA journal_mode=WAL");
  Exec(db, "PRAGMA synchronous=" + opt.synchronous);

  const bool insert = opt.workload == "insert";
  const char* sql = insert ? "INSERT INTO t(v) VALUES (?)" : "SELECT v FROM t WHERE id = ?";
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
    std::cerr << "sqlite_inproc: prepare: " << sqlite3_errmsg(db) << "\n";
    return 1;
  }
  if (opt.workload == "read-txn") Exec(db, "BEGIN");

  std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<int64_t> ids(1, opt.rows);
  LatencyHistogram hist;
  uint64_t requests = 0, errors = 0;
  size_t bytes_read = 0;  // keeps the row read from being optimised away
  char value[24];

  const auto start = Clock::now();
  const auto measure_start = start + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(opt.warmup));
  const auto end = measure_start + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(opt.seconds));
  int64_t flushes_at_start = -1;
  bool measuring = false;
  for (auto t0 = start; t0 < end;) {
    if (!measuring && t0 >= measure_start) {
      measuring = true;
      flushes_at_start = DiskFlushes(opt.disk);
    }
    bool ok;
    if (insert) {
      const int n =
          std::snprintf(value, sizeof value, "v%016llx", static_cast<unsigned long long>(rng()));
      sqlite3_bind_text(stmt, 1, value, n, SQLITE_STATIC);
      ok = sqlite3_step(stmt) == SQLITE_DONE;
    } else {
      sqlite3_bind_int64(stmt, 1, ids(rng));
      ok = sqlite3_step(stmt) == SQLITE_ROW;
      if (ok) bytes_read += static_cast<size_t>(sqlite3_column_bytes(stmt, 0));
    }
    sqlite3_reset(stmt);
    const auto t1 = Clock::now();
    if (measuring) {
      if (ok) {
        ++requests;
        hist.Record(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
      } else {
        ++errors;
        if (errors <= 3) std::cerr << "sqlite_inproc: " << sqlite3_errmsg(db) << "\n";
      }
    }
    t0 = t1;
  }
  const int64_t flushes_at_end = DiskFlushes(opt.disk);
  if (opt.workload == "read-txn") Exec(db, "COMMIT");
  sqlite3_finalize(stmt);
  sqlite3_close(db);

  if (!insert && bytes_read == 0) std::cerr << "sqlite_inproc: no row read\n";
  Numbers numbers;
  if (flushes_at_start >= 0 && flushes_at_end >= 0) {
    numbers.emplace_back("dev_flushes", static_cast<double>(flushes_at_end - flushes_at_start));
  }
  std::cout << ResultJson(opt.scenario, 1, requests, errors, opt.seconds, hist, opt.tags, numbers)
            << std::endl;
  return requests > 0 ? 0 : 1;
}

}  // namespace
}  // namespace quire::bench

int main(int argc, char** argv) { return quire::bench::Main(argc, argv); }
