#include "log/log.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "log/crc32c.h"
#include "log/materialize.h"
#include "log_test_util.h"

namespace quire::log {
namespace {

using namespace quire::log::testing;

class ReplicationLogTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = scratch_dir("log"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<ReplicationLog> create(const LogOptions& options = {}) {
    auto log = ReplicationLog::create(dir_ / "log", options);
    EXPECT_TRUE(log) << (log ? "" : log.error().message);
    return log ? std::move(log.value()) : nullptr;
  }
  std::unique_ptr<ReplicationLog> reopen(const LogOptions& options = {}) {
    auto log = ReplicationLog::open(dir_ / "log", options);
    EXPECT_TRUE(log) << (log ? "" : log.error().message);
    return log ? std::move(log.value()) : nullptr;
  }
  Frame append(ReplicationLog& log, const std::vector<std::uint32_t>& pgnos, std::uint32_t db_size,
               std::int64_t time = 0) {
    auto f = log.append(make_txn(pgnos, db_size, log.last_frame() + 1, time));
    EXPECT_TRUE(f) << (f ? "" : f.error().message);
    return f ? *f : 0;
  }
  // Segments of four records; frames 1..16 snapshotted and compacted, frame 17 in the active
  // segment, and the segment of frames 13..16 kept as recycled-segment.tmp.
  static LogOptions four_record_segments() {
    LogOptions options;
    options.segment_bytes = kSegmentHeaderSize + 4 * kRecordSize;
    return options;
  }
  std::unique_ptr<ReplicationLog> log_with_a_recycled_segment() {
    auto log = create(four_record_segments());
    if (!log) return log;
    for (std::uint32_t i = 0; i < 8; ++i) append(*log, {1, 2}, 2);  // frames 1..16
    EXPECT_TRUE(log->snapshot());
    append(*log, {1}, 2);  // frame 17
    EXPECT_TRUE(log->compact());
    return log;
  }
  std::filesystem::path dir_;
};

TEST(Crc32cTest, MatchesKnownVectorInBothImplementations) {
  const char* s = "123456789";
  EXPECT_EQ(crc32c(0, s, 9), 0xE3069283u);
  EXPECT_EQ(crc32c_portable(0, s, 9), 0xE3069283u);
  std::vector<std::uint8_t> data(10000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 31 + 7);
  for (std::size_t n : {0, 1, 7, 8, 9, 63, 4096, 10000}) {
    EXPECT_EQ(crc32c(0, data.data(), n), crc32c_portable(0, data.data(), n)) << n;
  }
  EXPECT_EQ(crc32c(crc32c(0, data.data(), 100), data.data() + 100, 900),
            crc32c(0, data.data(), 1000));
}

// The hardware path merges three interleaved streams on inputs of 4080 bytes and more: it must
// agree with the portable loop at every length around those blocks, any alignment and seed.
TEST(Crc32cTest, InterleavedHardwarePathAgreesWithThePortableLoop) {
  std::mt19937 rng(42);
  std::vector<std::uint8_t> data(12300 + 8);  // the longest length at the largest offset
  for (auto& b : data) b = static_cast<std::uint8_t>(rng());
  for (std::size_t n : {4072, 4079, 4080, 4081, 4088, 4096, 4160, 8159, 8160, 8161, 12240, 12300}) {
    for (std::size_t align = 0; align < 8; ++align) {
      const std::uint32_t seed = static_cast<std::uint32_t>(rng());
      ASSERT_EQ(crc32c(seed, data.data() + align, n), crc32c_portable(seed, data.data() + align, n))
          << "length " << n << " offset " << align;
    }
  }
  // Chaining across a block boundary equals one pass.
  EXPECT_EQ(crc32c(crc32c(7, data.data(), 5000), data.data() + 5000, 7000),
            crc32c(7, data.data(), 12000));
}

TEST_F(ReplicationLogTest, NewLogIsEmptyWithARandomUuid) {
  auto log = create();
  ASSERT_TRUE(log);
  EXPECT_EQ(log->last_frame(), 0u);
  EXPECT_EQ(log->first_available_frame(), 1u);
  EXPECT_FALSE(log->last_wal_position());
  EXPECT_EQ(log->log_id()[6] >> 4, 4);
  EXPECT_EQ(format_log_id(log->log_id()).size(), 36u);
  auto reader = log->read_from(1);
  ASSERT_TRUE(reader);
  auto t = reader->next();
  ASSERT_TRUE(t);
  EXPECT_FALSE(*t);
}

TEST_F(ReplicationLogTest, CreateRefusesADirectoryThatHoldsALog) {
  ASSERT_TRUE(create());
  auto again = ReplicationLog::create(dir_ / "log");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, LogErrc::kExists);
  auto missing = ReplicationLog::open(dir_ / "nothing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, LogErrc::kNotFound);
}

TEST_F(ReplicationLogTest, FrameNumbersStartAtOneAndNeverResetAcrossReopen) {
  auto log = create();
  EXPECT_EQ(append(*log, {1, 2, 3}, 3), 3u);
  EXPECT_EQ(append(*log, {2}, 3), 4u);
  const LogId id = log->log_id();
  log.reset();
  log = reopen();
  EXPECT_EQ(log->last_frame(), 4u);
  EXPECT_EQ(log->log_id(), id);
  EXPECT_EQ(append(*log, {4, 1}, 4), 6u);
  log.reset();
  log = reopen();
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].first_frame, 1u);
  EXPECT_EQ(all[1].first_frame, 4u);
  EXPECT_EQ(all[2].first_frame, 5u);
  EXPECT_EQ(all[2].txn.db_size, 4u);
  EXPECT_TRUE(page_matches(all[2].txn.page(0), 5, 4));
}

TEST_F(ReplicationLogTest, StoresCommitTimeAndWalPositionAndKeepsTimesMonotonic) {
  auto log = create();
  Transaction t = make_txn({1}, 1, 1, 1000);
  t.wal = WalPosition{7, 8, 3, 0xdead, 0xbeef};
  ASSERT_TRUE(log->append(t));
  ASSERT_TRUE(log->append(make_txn({1}, 1, 2, 500)));  // clock stepped back
  EXPECT_EQ(log->last_commit_time_us(), 1000);
  EXPECT_FALSE(log->last_wal_position());
  t.commit_time_us = 2000;
  ASSERT_TRUE(log->append(t));
  log.reset();
  log = reopen();
  ASSERT_TRUE(log->last_wal_position());
  EXPECT_EQ(*log->last_wal_position(), (WalPosition{7, 8, 3, 0xdead, 0xbeef}));
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[1].txn.commit_time_us, 1000);
  EXPECT_EQ(all[2].txn.commit_time_us, 2000);
}

TEST_F(ReplicationLogTest, AppendRejectsMalformedTransactions) {
  auto log = create();
  EXPECT_EQ(log->append(Transaction{}).error().code, LogErrc::kInvalidArgument);
  EXPECT_EQ(log->append(make_txn({1}, 0, 1)).error().code, LogErrc::kInvalidArgument);
  EXPECT_EQ(log->append(make_txn({0}, 1, 1)).error().code, LogErrc::kInvalidArgument);
  EXPECT_EQ(log->append(make_txn({2, 2}, 2, 1)).error().code, LogErrc::kInvalidArgument);
  EXPECT_EQ(log->last_frame(), 0u);
}

TEST_F(ReplicationLogTest, ReadingFromInsideATransactionOrBeyondTheEndIsRejected) {
  auto log = create();
  append(*log, {1, 2, 3}, 3);
  EXPECT_EQ(log->read_from(2).error().code, LogErrc::kInvalidArgument);
  EXPECT_EQ(log->read_from(5).error().code, LogErrc::kInvalidArgument);
  EXPECT_TRUE(log->read_from(4));
}

TEST_F(ReplicationLogTest, BaseImageBecomesTheFirstTransaction) {
  std::vector<std::byte> page(kPageSize);
  {
    std::ofstream db(dir_ / "db", std::ios::binary);
    for (std::uint32_t p = 1; p <= 3; ++p) {
      fill_page(page.data(), 99, p);
      db.write(reinterpret_cast<const char*>(page.data()), kPageSize);
    }
  }
  auto base = FilePageSource::open(dir_ / "db");
  ASSERT_TRUE(base);
  auto log = ReplicationLog::create(dir_ / "log", {}, &*base, 42);
  ASSERT_TRUE(log);
  EXPECT_EQ((*log)->last_frame(), 3u);
  EXPECT_EQ((*log)->db_size(), 3u);
  EXPECT_EQ((*log)->last_commit_time_us(), 42);
  auto out = materialize(**log, dir_ / "copy");
  ASSERT_TRUE(out);
  EXPECT_EQ(read_bytes(dir_ / "copy"), read_bytes(dir_ / "db"));
}

// kill -9 in the middle of the single pwrite of the last transaction leaves any prefix of it.
// Cut at every byte of both records' headers and of the bytes around the page images' sector
// boundaries, and at a stride through the rest of the images (a cut there differs from its
// neighbours only in how many payload bytes survive): 8,320 reopens took over a minute under
// ASan for no extra coverage.
TEST_F(ReplicationLogTest, TornTailAtAnyOffsetRecoversToThePreviousTransaction) {
  auto log = create();
  append(*log, {1, 2}, 2);
  append(*log, {3}, 3);
  const auto seg = files_with(dir_ / "log", ".qlog").at(0);
  const auto good = std::filesystem::file_size(seg);
  append(*log, {1, 4}, 4);  // the transaction that gets torn
  log.reset();
  const std::string full = read_bytes(seg);
  ASSERT_EQ(full.size(), good + 2 * kRecordSize);
  auto worth_cutting = [&](std::size_t cut) {
    const std::size_t in_record = (cut - good) % kRecordSize;
    if (in_record < kRecordHeaderSize + 8 || cut + 8 >= full.size()) return true;
    const std::size_t in_page = in_record - kRecordHeaderSize;
    const std::size_t in_sector = in_page % 512;
    return in_sector < 2 || in_sector > 509 || in_page % 61 == 0;
  };
  int cuts = 0;
  for (std::size_t cut = good; cut < full.size(); ++cut) {
    if (!worth_cutting(cut)) continue;
    ++cuts;
    {
      std::ofstream out(seg, std::ios::binary | std::ios::trunc);
      out.write(full.data(), static_cast<std::streamsize>(cut));
    }
    auto reopened = ReplicationLog::open(dir_ / "log");
    ASSERT_TRUE(reopened) << cut << ": " << reopened.error().message;
    ASSERT_EQ((*reopened)->last_frame(), 3u) << cut;
    ASSERT_EQ(std::filesystem::file_size(seg), good) << cut;
  }
  EXPECT_GT(cuts, 300);
  // And the log goes on from there.
  log = reopen();
  EXPECT_EQ(append(*log, {5}, 5), 4u);
  EXPECT_EQ(read_all(*log).size(), 3u);
}

TEST_F(ReplicationLogTest, DamagedBytesInTheLastTransactionAreATornTail) {
  auto log = create();
  append(*log, {1}, 1);
  const auto seg = files_with(dir_ / "log", ".qlog").at(0);
  const auto good = std::filesystem::file_size(seg);
  append(*log, {1, 2, 3}, 3);
  log.reset();
  const std::string full = read_bytes(seg);
  // Lost sectors anywhere in the last transaction (power loss), including its commit record.
  for (std::size_t at = good; at < full.size(); at += 509) {
    std::string bad = full;
    bad[at] = static_cast<char>(bad[at] ^ 0x40);
    {
      std::ofstream out(seg, std::ios::binary | std::ios::trunc);
      out.write(bad.data(), static_cast<std::streamsize>(bad.size()));
    }
    auto reopened = ReplicationLog::open(dir_ / "log");
    ASSERT_TRUE(reopened) << at << ": " << reopened.error().message;
    ASSERT_EQ((*reopened)->last_frame(), 1u) << at;
  }
}

TEST_F(ReplicationLogTest, CorruptRecordInTheMiddleIsReportedNotSkipped) {
  auto log = create();
  append(*log, {1}, 1);
  append(*log, {1, 2}, 2);  // frames 2-3: damaged below
  append(*log, {3}, 3);
  append(*log, {1, 4}, 4);
  log.reset();
  const auto seg = files_with(dir_ / "log", ".qlog").at(0);
  for (Frame frame : {2, 3}) {  // a non-commit record, then a commit record
    std::string bytes = read_bytes(seg);
    const std::string saved = bytes;
    bytes[segment_record_offset(1, frame) + 100] ^= 1;
    {
      std::ofstream out(seg, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    auto reopened = ReplicationLog::open(dir_ / "log");
    ASSERT_FALSE(reopened) << frame;
    EXPECT_EQ(reopened.error().code, LogErrc::kCorrupt);
    EXPECT_EQ(read_bytes(seg), bytes) << "open must not truncate a corrupt log";
    std::ofstream out(seg, std::ios::binary | std::ios::trunc);
    out.write(saved.data(), static_cast<std::streamsize>(saved.size()));
  }
  EXPECT_TRUE(reopen());
}

TEST_F(ReplicationLogTest, SegmentsRollOverAtTheConfiguredSize) {
  LogOptions options;
  options.segment_bytes = kSegmentHeaderSize + 5 * kRecordSize;
  auto log = create(options);
  for (int i = 0; i < 10; ++i) append(*log, {1, 2}, 2);  // 2 transactions per segment
  append(*log, {1, 2, 3, 4, 5, 6, 7}, 7);                // larger than a segment: one of its own
  append(*log, {1}, 7);
  EXPECT_EQ(files_with(dir_ / "log", ".qlog").size(), 7u);
  EXPECT_EQ(log->last_frame(), 28u);
  log.reset();
  log = reopen(options);
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 12u);
  Frame next = 1;
  for (const auto& t : all) {
    EXPECT_EQ(t.first_frame, next);
    next = t.last_frame() + 1;
  }
  // Reading can start at any transaction, including a segment's first.
  EXPECT_EQ(read_all(*log, 5).size(), 10u);
  EXPECT_EQ(read_all(*log, 21).size(), 2u);
  LogOptions verify = options;
  verify.verify_sealed_segments = true;
  log.reset();
  EXPECT_TRUE(reopen(verify));
}

TEST_F(ReplicationLogTest, CorruptSealedSegmentIsReportedWhenReadAndByAVerifyingOpen) {
  LogOptions options;
  options.segment_bytes = kSegmentHeaderSize + 4 * kRecordSize;
  auto log = create(options);
  for (int i = 0; i < 6; ++i) append(*log, {1, 2}, 2);
  log.reset();
  const auto seg = files_with(dir_ / "log", ".qlog").at(0);
  std::string bytes = read_bytes(seg);
  bytes[segment_record_offset(1, 1) + 2000] ^= 1;
  {
    std::ofstream out(seg, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  log = reopen(options);
  ASSERT_TRUE(log);
  auto reader = log->read_from(1);
  ASSERT_TRUE(reader);
  auto t = reader->next();
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, LogErrc::kCorrupt);
  LogOptions verify = options;
  verify.verify_sealed_segments = true;
  log.reset();
  auto strict = ReplicationLog::open(dir_ / "log", verify);
  ASSERT_FALSE(strict);
  EXPECT_EQ(strict.error().code, LogErrc::kCorrupt);
}

TEST_F(ReplicationLogTest, MissingMiddleSegmentIsCorruption) {
  LogOptions options;
  options.segment_bytes = kSegmentHeaderSize + 2 * kRecordSize;
  auto log = create(options);
  for (int i = 0; i < 6; ++i) append(*log, {1, 2}, 2);
  log.reset();
  std::filesystem::remove(files_with(dir_ / "log", ".qlog").at(2));
  auto reopened = ReplicationLog::open(dir_ / "log", options);
  ASSERT_FALSE(reopened);
  EXPECT_EQ(reopened.error().code, LogErrc::kCorrupt);
}

TEST_F(ReplicationLogTest, ReaderRunsConcurrentlyWithAppendsAndSeesWholeTransactions) {
  LogOptions options;
  options.segment_bytes = 256 * 1024;  // also crosses rollovers while reading
  auto log = create(options);
  constexpr int kTransactions = 1500;
  std::atomic<bool> failed{false};
  std::thread reader_thread([&] {
    auto reader = log->read_from(1);
    if (!reader) {
      failed = true;
      return;
    }
    Frame expect = 1;
    int seen = 0;
    while (seen < kTransactions && !failed) {
      auto t = reader->next();
      if (!t) {
        ADD_FAILURE() << t.error().message;
        failed = true;
        break;
      }
      if (!*t) {
        log->wait_for(expect, std::chrono::steady_clock::now() + std::chrono::milliseconds(50));
        continue;
      }
      const LoggedTransaction& lt = **t;
      if (lt.first_frame != expect || lt.txn.db_size == 0) failed = true;
      for (std::size_t i = 0; i < lt.txn.page_count(); ++i) {
        if (!page_matches(lt.txn.page(i), lt.first_frame, lt.txn.pgnos[i])) failed = true;
      }
      expect = lt.last_frame() + 1;
      ++seen;
    }
  });
  std::mt19937 rng(7);
  for (int i = 0; i < kTransactions && !failed; ++i) {
    const std::uint32_t n = 1 + rng() % 6;
    std::vector<std::uint32_t> pgnos;
    for (std::uint32_t p = 1; p <= n; ++p) pgnos.push_back(p);
    append(*log, pgnos, n);
  }
  reader_thread.join();
  EXPECT_FALSE(failed);
}

TEST_F(ReplicationLogTest, ViewsInPlaceAgreeWithCopiesAcrossReadWindowsRolloversAndLargeTransactions) {
  LogOptions options;
  options.segment_bytes = 4u << 20;  // a rollover in the middle, and a segment of its own
  auto log = create(options);
  // Sizes chosen to cross the reader's 64-record window at every offset, to need a window of
  // several times 64, and (4100 records) to be too large to view in place.
  const std::vector<std::uint32_t> sizes = {1, 63, 2, 64, 65, 1, 200, 3, 4100, 7, 130, 1};
  for (std::uint32_t n : sizes) {
    std::vector<std::uint32_t> pgnos;
    for (std::uint32_t p = 1; p <= n; ++p) pgnos.push_back(p);
    append(*log, pgnos, n);
  }
  auto copies = log->read_from(1);
  auto views = log->read_from(1);
  ASSERT_TRUE(copies && views);
  Transaction copy;
  TransactionView view;
  std::size_t seen = 0;
  while (true) {
    const Frame first = views->next_frame();
    auto c = copies->next_into(copy);
    auto v = views->next_view(view);
    ASSERT_TRUE(c && v) << (c ? v.error().message : c.error().message);
    ASSERT_EQ(*c, *v);
    if (!*v) break;
    ASSERT_LT(seen, sizes.size());
    EXPECT_EQ(view.page_count(), sizes[seen]) << "transaction " << seen;
    ASSERT_EQ(view.page_count(), copy.page_count());
    EXPECT_EQ(view.db_size, copy.db_size);
    EXPECT_EQ(view.commit_time_us, copy.commit_time_us);
    EXPECT_EQ(views->next_frame(), first + view.page_count());
    for (std::size_t i = 0; i < view.page_count(); ++i) {
      ASSERT_EQ(view.pgnos[i], copy.pgnos[i]);
      ASSERT_TRUE(std::equal(view.page(i).begin(), view.page(i).end(), copy.page(i).begin()))
          << "transaction " << seen << ", page " << i;
      ASSERT_TRUE(page_matches(view.page(i), first, view.pgnos[i]));
    }
    ++seen;
  }
  EXPECT_EQ(seen, sizes.size());
}

TEST_F(ReplicationLogTest, AViewOfADamagedRecordIsCorruptionNotData) {
  auto log = create();
  append(*log, {1}, 1);
  append(*log, {1, 2}, 2);  // frames 2-3: frame 3's page is damaged below, under the open log
  append(*log, {3}, 3);
  const auto seg = files_with(dir_ / "log", ".qlog").at(0);
  {
    std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(segment_record_offset(1, 3) + kRecordHeaderSize + 100));
    f.put('\x7f');
  }
  auto reader = log->read_from(1);
  ASSERT_TRUE(reader);
  TransactionView view;
  auto first = reader->next_view(view);
  ASSERT_TRUE(first && *first);
  auto second = reader->next_view(view);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, LogErrc::kCorrupt);
  EXPECT_NE(second.error().message.find("frame 3"), std::string::npos) << second.error().message;
}

TEST_F(ReplicationLogTest, SnapshotCompactionAndNeedSnapshot) {
  LogOptions options;
  options.segment_bytes = kSegmentHeaderSize + 4 * kRecordSize;
  auto log = create(options);
  std::int64_t t = 100;
  for (std::uint32_t i = 1; i <= 8; ++i) append(*log, {1, i + 1}, i + 1, t++);  // frames 1..16
  auto snap = log->snapshot();
  ASSERT_TRUE(snap) << snap.error().message;
  EXPECT_EQ(snap->frame, 16u);
  EXPECT_EQ(snap->db_size, 9u);
  append(*log, {3}, 9, t++);  // frame 17
  const auto before = files_with(dir_ / "log", ".qlog").size();
  auto c = log->compact();
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->segments_deleted, before - 1);
  EXPECT_EQ(log->first_available_frame(), 17u);
  auto old = log->read_from(1);
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().code, LogErrc::kNeedSnapshot);
  EXPECT_EQ(read_all(*log, 17).size(), 1u);

  // The snapshot plus the log rebuild the same database as the full history did.
  auto full = materialize(*log, dir_ / "after-compaction");
  ASSERT_TRUE(full) << full.error().message;
  EXPECT_EQ(full->frame, 17u);
  auto snapshot_file = SnapshotFile::open(snap->path, &log->log_id());
  ASSERT_TRUE(snapshot_file);
  EXPECT_TRUE(snapshot_file->verify());
  std::vector<std::byte> page(kPageSize);
  ASSERT_TRUE(snapshot_file->read_page(9, page));
  EXPECT_TRUE(page_matches(page, 15, 9));  // written by the transaction at frames 15-16

  // A target before the snapshot can no longer be built.
  MaterializeTarget early;
  early.frame = 4;
  auto gone = materialize(*log, dir_ / "early", early);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, LogErrc::kNeedSnapshot);

  // All of it survives reopen, and frame numbers continue.
  const auto wal = log->last_wal_position();
  log.reset();
  log = reopen(options);
  EXPECT_EQ(log->first_available_frame(), 17u);
  EXPECT_EQ(log->last_frame(), 17u);
  EXPECT_EQ(log->last_wal_position(), wal);
  ASSERT_TRUE(log->latest_snapshot());
  EXPECT_EQ(log->latest_snapshot()->frame, 16u);
  EXPECT_EQ(append(*log, {1}, 9, t++), 18u);
  auto again = materialize(*log, dir_ / "reopened");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->frame, 18u);
}

TEST_F(ReplicationLogTest, CompactionAfterRolloverWithEmptyActiveSegmentKeepsLastTransaction) {
  LogOptions options;
  options.segment_bytes = kSegmentHeaderSize + 2 * kRecordSize;
  auto log = create(options);
  Transaction t = make_txn({1, 2}, 2, 1, 10);
  t.wal = WalPosition{1, 2, 9, 3, 4};
  ASSERT_TRUE(log->append(t));
  ASSERT_TRUE(log->snapshot());
  ASSERT_TRUE(log->compact());
  EXPECT_EQ(log->first_available_frame(), 1u);  // the active segment is never deleted
  log.reset();
  // Simulate a crash right after a rollover: an empty active segment after the last one.
  log = reopen(options);
  ASSERT_TRUE(log->append(make_txn({1, 2}, 2, 3, 11)));  // rolls over, then fills segment 2
  ASSERT_TRUE(log->snapshot());
  ASSERT_TRUE(log->compact());
  EXPECT_EQ(log->first_available_frame(), 3u);
  EXPECT_EQ(log->last_frame(), 4u);
}

// Every transaction from `from` on carries the pages its commit frame's tag wrote (append()
// tags a transaction with its first frame).
void expect_intact(const ReplicationLog& log, Frame from, std::size_t want_txns) {
  auto all = read_all(log, from);
  ASSERT_EQ(all.size(), want_txns);
  for (const auto& t : all) {
    for (std::size_t i = 0; i < t.txn.page_count(); ++i) {
      EXPECT_TRUE(page_matches(t.txn.page(i), t.first_frame, t.txn.pgnos[i]))
          << "frame " << t.first_frame + i;
    }
  }
}

TEST_F(ReplicationLogTest, SyncedFrameFollowsSyncsAcrossRollovers) {
  LogOptions options;
  options.segment_bytes = kSegmentHeaderSize + 4 * kRecordSize;
  auto log = create(options);
  EXPECT_EQ(log->synced_frame(), 0u);
  append(*log, {1, 2}, 2);
  EXPECT_EQ(log->synced_frame(), 0u);
  ASSERT_TRUE(log->sync());
  EXPECT_EQ(log->synced_frame(), 2u);
  for (std::uint32_t i = 0; i < 3; ++i) append(*log, {1, 2}, 2);  // 3..8, a rollover
  EXPECT_EQ(log->synced_frame(), 2u);
  ASSERT_TRUE(log->sync());
  EXPECT_EQ(log->synced_frame(), 8u);
  log.reset();
  log = reopen(options);
  EXPECT_EQ(log->synced_frame(), 0u) << "a new object knows of no sync";
}

TEST_F(ReplicationLogTest, ACompactedSegmentBecomesTheNextOneAndItsOldRecordsAreNeverRead) {
  LogOptions options;
  options.segment_bytes = kSegmentHeaderSize + 4 * kRecordSize;
  auto log = create(options);
  for (std::uint32_t i = 0; i < 8; ++i) append(*log, {1, 2}, 2);  // frames 1..16, 4 segments
  ASSERT_TRUE(log->snapshot());
  append(*log, {1}, 2);  // frame 17, a new segment
  auto c = log->compact();
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->segments_deleted, 4u);
  // The newest compacted segment (frames 13..16) is kept, under a name open() deletes.
  const auto recycled = dir_ / "log" / "recycled-segment.tmp";
  ASSERT_TRUE(std::filesystem::exists(recycled));
  EXPECT_EQ(std::filesystem::file_size(recycled), kSegmentHeaderSize + 4 * kRecordSize);
  EXPECT_EQ(files_with(dir_ / "log", ".qlog").size(), 1u);

  append(*log, {1, 2}, 2);  // frames 18..19, in segment 17
  append(*log, {3, 4}, 4);  // frames 20..21: the rollover takes the recycled file
  EXPECT_FALSE(std::filesystem::exists(recycled));
  const auto segment20 = dir_ / "log" / "segment-00000000000000000020.qlog";
  ASSERT_TRUE(std::filesystem::exists(segment20));
  // Two records of its own, and two of frames 15..16 behind them, never overwritten.
  EXPECT_EQ(std::filesystem::file_size(segment20), kSegmentHeaderSize + 4 * kRecordSize);
  expect_intact(*log, 17, 3);

  // As kill -9 leaves it (the files as they are), and after a clean close: open() takes the
  // old records for a torn tail, cuts them off, and the log goes on from frame 21.
  std::filesystem::copy(dir_ / "log", dir_ / "copy");
  log.reset();
  for (const auto& dir : {dir_ / "copy", dir_ / "log"}) {
    auto reopened = ReplicationLog::open(dir, options);
    ASSERT_TRUE(reopened) << reopened.error().message;
    EXPECT_EQ((*reopened)->last_frame(), 21u);
    EXPECT_EQ(std::filesystem::file_size(dir / segment20.filename()),
              kSegmentHeaderSize + 2 * kRecordSize);
    expect_intact(**reopened, 17, 3);
    auto f = (*reopened)->append(make_txn({5}, 5, 22));
    ASSERT_TRUE(f) << f.error().message;
    EXPECT_EQ(*f, 22u);
    expect_intact(**reopened, 17, 4);
  }
}

TEST_F(ReplicationLogTest, ARecycledSegmentIsSealedWithItsOwnRecordsOnly) {
  const LogOptions options = four_record_segments();
  auto log = log_with_a_recycled_segment();
  ASSERT_TRUE(log);
  append(*log, {1, 2}, 2);  // 18..19
  append(*log, {3, 4}, 4);  // 20..21, the recycled file
  append(*log, {5}, 5);     // 22
  append(*log, {1, 2}, 5);  // 23..24: seals segment 20 with three records
  const auto segment20 = dir_ / "log" / "segment-00000000000000000020.qlog";
  EXPECT_EQ(std::filesystem::file_size(segment20), kSegmentHeaderSize + 3 * kRecordSize);
  expect_intact(*log, 17, 5);
  log.reset();
  for (bool verify : {false, true}) {
    LogOptions o = options;
    o.verify_sealed_segments = verify;
    log = reopen(o);
    ASSERT_TRUE(log);
    EXPECT_EQ(log->last_frame(), 24u);
    expect_intact(*log, 17, 5);
    log.reset();
  }
}

TEST_F(ReplicationLogTest, AReadOnlyOpenBesideTheWriterChangesNothing) {
  const LogOptions options = four_record_segments();
  auto log = log_with_a_recycled_segment();
  ASSERT_TRUE(log);
  append(*log, {1, 2}, 2);  // 18..19
  append(*log, {3, 4}, 4);  // 20..21, in the recycled file, old records behind them
  append(*log, {1, 2}, 2);  // 22..23
  ASSERT_TRUE(log->snapshot());
  append(*log, {5}, 5);  // 24, a new segment
  ASSERT_TRUE(log->compact());
  const auto recycled = dir_ / "log" / "recycled-segment.tmp";
  ASSERT_TRUE(std::filesystem::exists(recycled));
  append(*log, {1}, 5);  // 25
  const auto active = files_with(dir_ / "log", ".qlog").back();
  const auto size = std::filesystem::file_size(active);

  // A tool opens the log while the writer is live: it sees the log's end and changes nothing.
  LogOptions read_only = options;
  read_only.recover = false;
  auto tool = ReplicationLog::open(dir_ / "log", read_only);
  ASSERT_TRUE(tool) << tool.error().message;
  EXPECT_EQ((*tool)->last_frame(), 25u);
  expect_intact(**tool, 24, 2);
  EXPECT_TRUE(std::filesystem::exists(recycled));
  EXPECT_EQ(std::filesystem::file_size(active), size);
  auto refused = (*tool)->append(make_txn({1}, 5, 26));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, LogErrc::kInvalidArgument);

  // The writer goes on, and everything it wrote is there.
  append(*log, {2}, 5);  // 26
  append(*log, {3, 4}, 5);  // 27..28: the rollover reuses the recycled file
  EXPECT_FALSE(std::filesystem::exists(recycled));
  expect_intact(*log, 24, 4);
  log.reset();
  log = reopen(options);
  EXPECT_EQ(log->last_frame(), 28u);
  expect_intact(*log, 24, 4);
}

TEST_F(ReplicationLogTest, ASegmentAReaderStillHoldsIsNotRecycled) {
  LogOptions options;
  options.segment_bytes = kSegmentHeaderSize + 4 * kRecordSize;
  auto log = create(options);
  for (std::uint32_t i = 0; i < 7; ++i) append(*log, {1, 2}, 2);  // frames 1..14
  // A reader in the middle of the newest segment that compaction will delete. Frames 15..16
  // are appended after its first read, so it has to read them from that segment's file.
  auto reader = log->read_from(13);
  ASSERT_TRUE(reader);
  auto first = reader->next();
  ASSERT_TRUE(first && *first);
  EXPECT_EQ((*first)->first_frame, 13u);
  append(*log, {1, 2}, 2);  // frames 15..16
  ASSERT_TRUE(log->snapshot());
  append(*log, {1}, 2);  // frame 17
  ASSERT_TRUE(log->compact());
  EXPECT_FALSE(std::filesystem::exists(dir_ / "log" / "recycled-segment.tmp"));
  for (std::uint32_t i = 0; i < 6; ++i) append(*log, {1, 2}, 2);  // rollovers after it
  // The reader goes on through the deleted segment it holds, then into the live ones.
  Frame next = 15;
  while (true) {
    auto t = reader->next();
    ASSERT_TRUE(t) << t.error().message;
    if (!*t) break;
    EXPECT_EQ((*t)->first_frame, next);
    for (std::size_t i = 0; i < (*t)->txn.page_count(); ++i) {
      EXPECT_TRUE(page_matches((*t)->txn.page(i), next, (*t)->txn.pgnos[i]));
    }
    next = (*t)->last_frame() + 1;
  }
  EXPECT_EQ(next, log->last_frame() + 1);
}

TEST_F(ReplicationLogTest, SnapshotFromACallerImageIsCheckedAgainstTheCommit) {
  auto log = create();
  append(*log, {1, 2}, 2);
  ASSERT_TRUE(materialize(*log, dir_ / "db"));
  auto pages = FilePageSource::open(dir_ / "db");
  ASSERT_TRUE(pages);
  EXPECT_EQ(log->snapshot_from(*pages, 1).error().code, LogErrc::kInvalidArgument);
  auto snap = log->snapshot_from(*pages, 2);
  ASSERT_TRUE(snap) << snap.error().message;
  EXPECT_EQ(snap->db_size, 2u);
}

TEST_F(ReplicationLogTest, MaterializeUpToAFrameOrATime) {
  auto log = create();
  append(*log, {1, 2, 3}, 3, 1000);  // 1-3
  append(*log, {2}, 3, 2000);        // 4
  append(*log, {4}, 4, 3000);        // 5
  append(*log, {1}, 2, 4000);        // 6: shrinks the database
  MaterializeTarget at4;
  at4.frame = 4;
  auto r = materialize(*log, dir_ / "a", at4);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->frame, 4u);
  std::string a = read_bytes(dir_ / "a");
  ASSERT_EQ(a.size(), 3 * kPageSize);
  EXPECT_TRUE(
      page_matches({reinterpret_cast<const std::byte*>(a.data()) + kPageSize, kPageSize}, 4, 2));
  MaterializeTarget by_time;
  by_time.time_us = 3500;
  r = materialize(*log, dir_ / "b", by_time);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->frame, 5u);
  EXPECT_EQ(std::filesystem::file_size(dir_ / "b"), 4 * kPageSize);
  r = materialize(*log, dir_ / "c");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->frame, 6u);
  EXPECT_EQ(std::filesystem::file_size(dir_ / "c"), 2 * kPageSize);
}

// Materialising applies the newest image of each page and truncates only when the database
// shrinks: a page cut by a shrink must read as zeros when the database grows again without
// rewriting it, pages beyond a commit's own db_size are dropped, and the result must not
// depend on where the in-memory image is flushed (more distinct pages than it holds).
TEST_F(ReplicationLogTest, MaterializeShrinkThenGrowLeavesZerosAndManyPagesMatchTheirNewestImage) {
  auto log = create();
  append(*log, {1, 2, 3, 4}, 4, 1000);  // 1-4
  append(*log, {3}, 4, 2000);           // 5: page 3 rewritten
  append(*log, {1}, 2, 3000);           // 6: shrink to 2 pages
  append(*log, {5, 1}, 5, 4000);        // 7-8: grow to 5, pages 3 and 4 not rewritten
  append(*log, {2, 6}, 5, 5000);        // 9-10: page 6 is beyond db_size and dropped
  auto r = materialize(*log, dir_ / "a");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->frame, 10u);
  std::string a = read_bytes(dir_ / "a");
  ASSERT_EQ(a.size(), 5 * kPageSize);
  auto page = [&](std::uint32_t p) {
    return std::span<const std::byte>(
        reinterpret_cast<const std::byte*>(a.data()) + (p - 1) * kPageSize, kPageSize);
  };
  // make_txn tags page images with the transaction's first frame.
  EXPECT_TRUE(page_matches(page(1), 7, 1));
  EXPECT_TRUE(page_matches(page(2), 9, 2));
  for (std::uint32_t p : {3u, 4u}) {
    EXPECT_TRUE(
        std::all_of(page(p).begin(), page(p).end(), [](std::byte b) { return b == std::byte{0}; }))
        << "page " << p;
  }
  EXPECT_TRUE(page_matches(page(5), 7, 5));

  // 3000 distinct pages, each written twice, with a shrink in between: more than the
  // materialiser keeps in memory at once, so it writes in several rounds.
  auto big = ReplicationLog::create(dir_ / "big");
  ASSERT_TRUE(big);
  std::vector<std::uint32_t> all(3000);
  for (std::uint32_t p = 1; p <= 3000; ++p) all[p - 1] = p;
  append(**big, all, 3000, 1);
  append(**big, {1}, 1500, 2);  // drops pages 1501..3000
  std::vector<std::uint32_t> again(all.begin() + 1000, all.end());
  append(**big, again, 3000, 3);  // pages 1001..3000 again; 2..1000 keep their first image
  r = materialize(**big, dir_ / "b");
  ASSERT_TRUE(r) << r.error().message;
  std::string b = read_bytes(dir_ / "b");
  ASSERT_EQ(b.size(), 3000 * kPageSize);
  for (std::uint32_t p = 1; p <= 3000; ++p) {
    const std::uint64_t tag = p == 1 ? 3001 : p <= 1000 ? 1 : 3002;
    ASSERT_TRUE(page_matches(
        {reinterpret_cast<const std::byte*>(b.data()) + (p - 1) * kPageSize, kPageSize}, tag, p))
        << "page " << p;
  }
}

}  // namespace
}  // namespace quire::log

namespace quire::log {
namespace {

using namespace quire::log::testing;

// The database a sequence of transactions leaves, kept in memory: page -> tag of its image (a
// page not held reads as zeros).
struct ModelDatabase {
  std::map<std::uint32_t, std::uint64_t> pages;
  std::uint32_t size = 0;
  void apply(const std::vector<std::uint32_t>& pgnos, std::uint32_t db_size, std::uint64_t tag) {
    for (std::uint32_t p : pgnos) pages[p] = tag;
    pages.erase(pages.upper_bound(db_size), pages.end());
    size = db_size;
  }
  // Checks a snapshot file against the model.
  void expect_equal(const SnapshotInfo& info, const LogId& id) const {
    auto snap = SnapshotFile::open(info.path, &id);
    ASSERT_TRUE(snap) << snap.error().message;
    ASSERT_TRUE(snap->verify());
    ASSERT_EQ(snap->page_count(), size);
    std::vector<std::byte> page(kPageSize);
    for (std::uint32_t p = 1; p <= size; ++p) {
      ASSERT_TRUE(snap->read_page(p, page));
      auto it = pages.find(p);
      if (it == pages.end()) {
        ASSERT_TRUE(std::all_of(page.begin(), page.end(), [](std::byte b) { return b == std::byte{0}; }))
            << "page " << p << " of the snapshot at frame " << info.frame << " should be zeros";
      } else {
        ASSERT_TRUE(page_matches(page, it->second, p))
            << "page " << p << " of the snapshot at frame " << info.frame;
      }
    }
  }
};

class IncrementalSnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = scratch_dir("snap"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Appends `count` random transactions: a few pages each, the database growing, sometimes
  // shrinking (VACUUM-like) and growing again over pages it does not rewrite.
  void write_some(ReplicationLog& log, int count) {
    for (int i = 0; i < count; ++i) {
      std::uint32_t size = model_.size == 0 ? 8 : model_.size;
      const int shape = static_cast<int>(rng_() % 20);
      if (shape == 0 && size > 4) size = size / 2 + static_cast<std::uint32_t>(rng_() % 3);
      if (shape == 1 || shape == 2) size += 1 + static_cast<std::uint32_t>(rng_() % 5);
      std::set<std::uint32_t> touched;
      const int n = 1 + static_cast<int>(rng_() % 4);
      for (int k = 0; k < n; ++k) touched.insert(1 + static_cast<std::uint32_t>(rng_() % size));
      touched.insert(1);  // the header page, as SQLite commits do
      if (size > model_.size) {
        for (std::uint32_t p = model_.size + 1; p <= size; ++p) {
          if (rng_() % 2) touched.insert(p);  // some new pages left unwritten: zeros
        }
      }
      std::vector<std::uint32_t> pgnos(touched.begin(), touched.end());
      const std::uint64_t tag = ++tag_;
      auto f = log.append(make_txn(pgnos, size, tag, static_cast<std::int64_t>(tag)));
      ASSERT_TRUE(f) << f.error().message;
      model_.apply(pgnos, size, tag);
      last_frame_ = *f;
      last_pgno_ = pgnos.back();
    }
  }

  std::filesystem::path dir_;
  std::mt19937 rng_{7};
  std::uint64_t tag_ = 0;
  ModelDatabase model_;
  Frame last_frame_ = 0;        // the last record written
  std::uint32_t last_pgno_ = 0;  // and its page
};

TEST_F(IncrementalSnapshotTest, SnapshotsFromChangedPagesEqualTheDatabaseTheFramesDescribe) {
  LogOptions options;
  options.segment_bytes = kSegmentHeaderSize + 64 * kRecordSize;  // several segments per round
  auto created = ReplicationLog::create(dir_ / "log", options);
  ASSERT_TRUE(created) << created.error().message;
  auto log = std::move(created.value());
  for (int round = 0; round < 12; ++round) {
    write_some(*log, 60);
    auto snap = log->snapshot();
    ASSERT_TRUE(snap) << snap.error().message;
    EXPECT_EQ(snap->frame, log->last_frame());
    model_.expect_equal(*snap, log->log_id());
    if (round % 3 == 2) {
      ASSERT_TRUE(log->compact());
    }
  }
  // Every snapshot reads only the changed pages, the first one too (from an empty database).
  EXPECT_EQ(log->incremental_snapshots(), 12u);

  // Reopened, the log seeds its notes from the active segment, which holds every frame since
  // the newest snapshot: the snapshots stay incremental.
  log.reset();
  auto reopened = ReplicationLog::open(dir_ / "log", options);
  ASSERT_TRUE(reopened) << reopened.error().message;
  log = std::move(reopened.value());
  for (int round = 0; round < 3; ++round) {
    write_some(*log, 40);
    auto snap = log->snapshot();
    ASSERT_TRUE(snap) << snap.error().message;
    model_.expect_equal(*snap, log->log_id());
  }
  EXPECT_EQ(log->incremental_snapshots(), 3u);
}

TEST_F(IncrementalSnapshotTest, AfterReopenTheFirstSnapshotReplaysWhenOlderSegmentsHoldChanges) {
  LogOptions options;
  options.segment_bytes = kSegmentHeaderSize + 64 * kRecordSize;
  auto created = ReplicationLog::create(dir_ / "log", options);
  ASSERT_TRUE(created) << created.error().message;
  auto log = std::move(created.value());
  write_some(*log, 20);
  ASSERT_TRUE(log->snapshot());
  write_some(*log, 80);  // more than a segment: the active one no longer reaches the snapshot
  log.reset();
  auto reopened = ReplicationLog::open(dir_ / "log", options);
  ASSERT_TRUE(reopened) << reopened.error().message;
  log = std::move(reopened.value());
  write_some(*log, 10);
  auto snap = log->snapshot();
  ASSERT_TRUE(snap) << snap.error().message;
  model_.expect_equal(*snap, log->log_id());
  EXPECT_EQ(log->incremental_snapshots(), 0u);
  write_some(*log, 10);
  snap = log->snapshot();
  ASSERT_TRUE(snap) << snap.error().message;
  model_.expect_equal(*snap, log->log_id());
  EXPECT_EQ(log->incremental_snapshots(), 1u);
}

TEST_F(IncrementalSnapshotTest, ATornTailLeavesNoNoteBehind) {
  auto created = ReplicationLog::create(dir_ / "log");
  ASSERT_TRUE(created) << created.error().message;
  auto log = std::move(created.value());
  write_some(*log, 30);
  ASSERT_TRUE(log->snapshot());
  write_some(*log, 10);
  // A three-page transaction the model never sees: its last record is then cut in half, as a
  // crash in the middle of its write would leave it. Its first two records still verify.
  const std::vector<std::uint32_t> torn_pages{2, 3, 1};
  auto torn = log->append(make_txn(torn_pages, model_.size, 999'999, 0));
  ASSERT_TRUE(torn) << torn.error().message;
  log.reset();
  std::filesystem::path segment;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "log")) {
    if (e.path().extension() == ".qlog") segment = e.path();
  }
  ASSERT_FALSE(segment.empty());
  std::filesystem::resize_file(segment, segment_record_offset(1, *torn) + kRecordSize / 2);

  auto reopened = ReplicationLog::open(dir_ / "log");
  ASSERT_TRUE(reopened) << reopened.error().message;
  log = std::move(reopened.value());
  ASSERT_EQ(log->last_frame(), *torn - 3);
  // The next transaction reuses the first torn frame for another page.
  const std::uint64_t tag = ++tag_;
  ASSERT_TRUE(log->append(make_txn({1}, model_.size, tag)));
  model_.apply({1}, model_.size, tag);
  auto snap = log->snapshot();
  ASSERT_TRUE(snap) << snap.error().message;
  model_.expect_equal(*snap, log->log_id());
  EXPECT_EQ(log->incremental_snapshots(), 1u);  // counted by the reopened object
}

TEST_F(IncrementalSnapshotTest, ADamagedChangedPageFailsTheSnapshotAndTheNextOneReplays) {
  auto created = ReplicationLog::create(dir_ / "log");
  ASSERT_TRUE(created) << created.error().message;
  auto log = std::move(created.value());
  write_some(*log, 30);
  ASSERT_TRUE(log->snapshot());
  write_some(*log, 30);
  // Damage the page bytes of the last record: the newest image of its page, which the next
  // snapshot must read.
  std::filesystem::path segment;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "log")) {
    if (e.path().extension() == ".qlog") segment = e.path();
  }
  ASSERT_FALSE(segment.empty());
  {
    std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(segment_record_offset(1, last_frame_) + kRecordHeaderSize +
                                        100));
    f.put('\x5a');
  }
  std::vector<std::byte> page(kPageSize);
  auto bad = log->read_page(last_frame_, last_pgno_, page.data());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, LogErrc::kCorrupt);
  auto failed = log->snapshot();
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, LogErrc::kCorrupt);
  // The replaying path reads every record and reports the same damage.
  auto again = log->snapshot();
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, LogErrc::kCorrupt);
  EXPECT_EQ(log->incremental_snapshots(), 1u);  // the first one only
}

}  // namespace
}  // namespace quire::log
