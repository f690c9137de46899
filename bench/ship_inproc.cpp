// The continuous backup's CPU per shipped transaction, in process (no server, no client), for
// work on the shipping path (backup/ship.h, backup/writer.cpp, log::LogReader).
//
// What the server's shipping thread does at one client: every interval, the transactions
// committed since the last round are read from the replication log, built into batches,
// compressed and put into a file store. Here a log gets --per-round single-page transactions
// (a leaf page that gains a short row each time, as single-row inserts rewrite it), then one
// backup::ship() round takes them to a file store; --rounds times. Only ship() is timed, with
// the calling thread's CPU clock; appending to the log is not.
//
//   ship_inproc --rounds 12 --per-round 8000 --dir /var/tmp/ship
//
// Prints one line: the CPU µs per transaction of the first round (a fresh process: buffers
// grown, pages faulted in) and the median of the later ones, and the objects written.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "backup/ship.h"
#include "bench_common.h"
#include "log/log.h"
#include "log/snapshot.h"
#include "storage/file_object_store.h"

namespace {

namespace fs = std::filesystem;
using namespace quire;

// A one-page database: the base image the log starts from.
class OnePage final : public log::PageSource {
 public:
  std::uint32_t page_count() const override { return 1; }
  Expected<void, log::LogError> read_page(std::uint32_t, std::span<std::byte> out) const override {
    std::memset(out.data(), 0, out.size());
    return {};
  }
};

int usage() {
  std::cerr << "usage: ship_inproc [--rounds N] [--per-round N] [--dir DIR]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 12;
  int per_round = 8000;
  fs::path dir = "/var/tmp/ship_inproc";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    if (a == "--rounds") rounds = std::atoi(argv[++i]);
    else if (a == "--per-round") per_round = std::atoi(argv[++i]);
    else if (a == "--dir") dir = argv[++i];
    else return usage();
  }
  if (rounds < 2 || per_round < 1) return usage();
  fs::remove_all(dir);
  fs::create_directories(dir);

  OnePage base;
  auto log = log::ReplicationLog::create(dir / "log", {}, &base, 1);
  if (!log) {
    std::cerr << "creating the log: " << log.error().message << "\n";
    return 1;
  }
  auto store = storage::FileObjectStore::open(dir / "store");
  if (!store) {
    std::cerr << "opening the store: " << store.error().message << "\n";
    return 1;
  }

  // The leaf page: a header, then rows appended one per transaction until it is full, then a
  // new leaf (page 2, 3, ...), like inserts at the end of a table.
  std::vector<std::byte> page(log::kPageSize);
  std::uint32_t pgno = 2;
  std::size_t fill = 100;
  std::int64_t now = 1'700'000'000'000'000;
  std::uint64_t row = 0;
  std::vector<double> per_txn;
  std::uint64_t objects = 0;
  for (int r = 0; r < rounds; ++r) {
    for (int i = 0; i < per_round; ++i) {
      char text[64];
      const int n = std::snprintf(text, sizeof text, "row %llu of the benchmark ",
                                  static_cast<unsigned long long>(++row));
      if (fill + n > log::kPageSize) {
        ++pgno;
        fill = 100;
        std::fill(page.begin(), page.end(), std::byte{0});
      }
      std::memcpy(page.data() + fill, text, static_cast<std::size_t>(n));
      fill += static_cast<std::size_t>(n);
      std::memcpy(page.data(), &row, sizeof row);  // the page header changes too
      log::Transaction t;
      t.add_page(pgno, page);
      t.db_size = pgno;
      t.commit_time_us = now += 100;
      if (auto a = (*log)->append(t); !a) {
        std::cerr << "appending: " << a.error().message << "\n";
        return 1;
      }
    }
    const double c0 = quire::bench::ThreadCpuUs();
    auto shipped = backup::ship(**log, **store, "db", {});
    const double c1 = quire::bench::ThreadCpuUs();
    if (!shipped) {
      std::cerr << "shipping: " << shipped.error().message << "\n";
      return 1;
    }
    objects += shipped->objects_written;
    // The first round also ships the base image (one transaction more).
    per_txn.push_back((c1 - c0) / static_cast<double>(shipped->txns));
  }
  std::vector<double> later(per_txn.begin() + 1, per_txn.end());
  std::sort(later.begin(), later.end());
  std::printf("ship_inproc rounds=%d per_round=%d first_round_us_per_txn=%.2f "
              "later_median_us_per_txn=%.2f objects=%llu\n",
              rounds, per_round, per_txn.front(), later[later.size() / 2],
              static_cast<unsigned long long>(objects));
  fs::remove_all(dir);
  return 0;
}
