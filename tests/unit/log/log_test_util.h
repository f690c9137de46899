// Helpers shared by the replication-log tests: a scratch directory and synthetic transactions.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "log/log.h"

namespace quire::log::testing {

inline std::filesystem::path scratch_dir(const std::string& tag) {
  auto dir = std::filesystem::temp_directory_path() /
             ("quire-log-" + tag + "-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Page content determined by (tag, pgno), so readers can check what they got.
inline void fill_page(std::byte* out, std::uint64_t tag, std::uint32_t pgno) {
  std::uint64_t x = tag * 0x9E3779B97F4A7C15ull ^ (std::uint64_t{pgno} << 32 | pgno);
  for (std::size_t i = 0; i < kPageSize; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = static_cast<std::byte>(x);
  }
}

inline bool page_matches(std::span<const std::byte> page, std::uint64_t tag, std::uint32_t pgno) {
  std::vector<std::byte> want(kPageSize);
  fill_page(want.data(), tag, pgno);
  return std::equal(page.begin(), page.end(), want.begin());
}

inline Transaction make_txn(const std::vector<std::uint32_t>& pgnos, std::uint32_t db_size,
                            std::uint64_t tag, std::int64_t time_us = 0) {
  Transaction t;
  std::vector<std::byte> page(kPageSize);
  for (std::uint32_t p : pgnos) {
    fill_page(page.data(), tag, p);
    t.add_page(p, page);
  }
  t.db_size = db_size;
  t.commit_time_us = time_us;
  return t;
}

inline std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline std::vector<std::filesystem::path> files_with(const std::filesystem::path& dir,
                                                     const std::string& ext) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ext) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Reads every transaction from `from` to the end.
inline std::vector<LoggedTransaction> read_all(const ReplicationLog& log, Frame from = 1) {
  std::vector<LoggedTransaction> out;
  auto reader = log.read_from(from);
  EXPECT_TRUE(reader) << (reader ? "" : reader.error().message);
  if (!reader) return out;
  while (true) {
    auto t = reader->next();
    EXPECT_TRUE(t) << (t ? "" : t.error().message);
    if (!t || !*t) break;
    out.push_back(std::move(**t));
  }
  return out;
}

}  // namespace quire::log::testing
