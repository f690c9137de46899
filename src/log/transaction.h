// The unit the replication log stores: one committed transaction as full page images.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace quire::log {

inline constexpr std::size_t kPageSize = 4096;

// Where a transaction's commit frame sits in SQLite's -wal: the WAL generation (salts), the
// 1-based frame index and the WAL's running checksum after that frame. Frame 0 names the point
// before frame 1 of the generation; its checksum is then the WAL header's.
struct WalPosition {
  std::uint32_t salt1 = 0;
  std::uint32_t salt2 = 0;
  std::uint32_t frame = 0;
  std::uint32_t checksum1 = 0;
  std::uint32_t checksum2 = 0;
  bool operator==(const WalPosition&) const = default;
};

// A transaction's pages. Each page number appears once; page i's image is
// pages[i*kPageSize, (i+1)*kPageSize).
struct Transaction {
  std::vector<std::uint32_t> pgnos;
  std::vector<std::byte> pages;
  std::uint32_t db_size = 0;        // database size in pages after the commit (>= 1)
  std::int64_t commit_time_us = 0;  // unix microseconds
  std::optional<WalPosition> wal;   // the commit frame it came from, if it came from a WAL

  std::size_t page_count() const { return pgnos.size(); }
  std::span<const std::byte> page(std::size_t i) const {
    assert(i < pgnos.size());
    return {pages.data() + i * kPageSize, kPageSize};
  }
  void add_page(std::uint32_t pgno, std::span<const std::byte> image) {
    assert(image.size() == kPageSize);
    pgnos.push_back(pgno);
    pages.insert(pages.end(), image.begin(), image.end());
  }
};

// A transaction seen in place: page numbers and page images in someone else's memory (a
// LogReader's read buffer, a Transaction), valid until that owner changes. Page i's image starts
// at first_page + i * stride.
struct TransactionView {
  std::span<const std::uint32_t> pgnos;
  const std::byte* first_page = nullptr;
  std::size_t stride = kPageSize;
  std::uint32_t db_size = 0;
  std::int64_t commit_time_us = 0;
  std::optional<WalPosition> wal;

  std::size_t page_count() const { return pgnos.size(); }
  std::span<const std::byte> page(std::size_t i) const {
    assert(i < pgnos.size());
    return {first_page + i * stride, kPageSize};
  }
  // A view of `t`, whose pages must be whole (t.pages.size() == t.page_count() * kPageSize).
  static TransactionView of(const Transaction& t) {
    return {t.pgnos, t.pages.data(), kPageSize, t.db_size, t.commit_time_us, t.wal};
  }
};

}  // namespace quire::log
