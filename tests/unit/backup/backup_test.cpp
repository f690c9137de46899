#include "backup/backup.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "log/log.h"
#include "log/materialize.h"
#include "storage/file_object_store.h"
#include "backup_test_util.h"

namespace quire::backup {
namespace {

using namespace testutil;  // NOLINT
namespace fs = std::filesystem;
using log::Frame;
using log::kPageSize;

TEST(Backup, RestoresLatestEveryCommitFrameAndTimestamps) {
  Fixture fx("roundtrip");
  Workload w;
  const auto id = make_id(1);
  upload(fx, w, id, 12, 5);

  auto latest = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_TRUE(latest) << latest.error().message;
  EXPECT_EQ(latest->frame, w.last_frame);
  EXPECT_EQ(latest->log_id, id);
  EXPECT_FALSE(latest->snapshot_key.empty());
  EXPECT_EQ(read_file(fx.out), w.image);

  auto reader = BackupReader::open(*fx.store, "db1");
  ASSERT_TRUE(reader) << reader.error().message;
  auto range = reader->restorable_range();
  ASSERT_TRUE(range) << range.error().message;
  EXPECT_EQ(range->first_frame, w.history.front().frame);
  EXPECT_EQ(range->first_time_us, w.history.front().time_us);
  EXPECT_EQ(range->last_frame, w.last_frame);
  EXPECT_EQ(range->last_time_us, w.history.back().time_us);

  for (const auto& c : w.history) {
    auto r = reader->restore(RestoreTarget::at_frame(c.frame), fx.out);
    ASSERT_TRUE(r) << "frame " << c.frame << ": " << r.error().message;
    EXPECT_EQ(r->frame, c.frame);
    EXPECT_EQ(read_file(fx.out), c.image) << "frame " << c.frame;
    // A frame inside the next transaction restores this commit.
    auto mid = reader->restore(RestoreTarget::at_frame(c.frame + 1), fx.out);
    if (c.frame < w.last_frame && &c != &w.history.back()) {
      const auto& next = (&c)[1];
      if (next.frame > c.frame + 1) {
        ASSERT_TRUE(mid) << mid.error().message;
        EXPECT_EQ(mid->frame, c.frame);
        EXPECT_EQ(read_file(fx.out), c.image);
      }
    }
  }
  // Timestamps: at each commit time, and just before the next one: the newest commit <= T.
  for (std::size_t i = 0; i < w.history.size(); ++i) {
    std::size_t want = i;
    while (want + 1 < w.history.size() && w.history[want + 1].time_us == w.history[i].time_us) ++want;
    for (std::int64_t t : {w.history[i].time_us,
                           i + 1 < w.history.size() ? w.history[i + 1].time_us - 1 : w.history[i].time_us + 5}) {
      std::size_t expect = 0;
      for (std::size_t k = 0; k < w.history.size(); ++k)
        if (w.history[k].time_us <= t) expect = k;
      auto r = reader->restore(RestoreTarget::at_time(t), fx.out);
      ASSERT_TRUE(r) << "time " << t << ": " << r.error().message;
      EXPECT_EQ(r->frame, w.history[expect].frame) << "time " << t;
      EXPECT_EQ(read_file(fx.out), w.history[expect].image) << "time " << t;
    }
  }
  // Before the first commit, and a frame beyond the end: out of range.
  auto early = reader->restore(RestoreTarget::at_time(w.history.front().time_us - 1), fx.out);
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().kind, BackupErrc::kOutOfRange);
  auto beyond = reader->restore(RestoreTarget::at_frame(w.last_frame + 1), fx.out);
  ASSERT_FALSE(beyond);
  EXPECT_EQ(beyond.error().kind, BackupErrc::kOutOfRange);
  // Far future timestamp: latest.
  auto future = reader->restore(RestoreTarget::at_time(w.history.back().time_us + 1'000'000'000), fx.out);
  ASSERT_TRUE(future) << future.error().message;
  EXPECT_EQ(read_file(fx.out), w.image);
}

TEST(Backup, StartsFromASnapshotAndEnforcesContiguity) {
  Fixture fx("snapstart");
  Workload w;
  const auto id = make_id(2);
  auto writer = BackupWriter::open(*fx.store, "ns/a", id).value();
  for (int i = 0; i < 5; ++i) w.next();  // compacted away: never backed up
  auto bad_first = writer->upload_batch(w.batch(1), w.history[4].frame + 1);
  ASSERT_FALSE(bad_first);
  EXPECT_EQ(bad_first.error().kind, BackupErrc::kInvalidArgument);
  w.history.pop_back();  // undo the rejected transaction in the reference
  // (the reference image moved on; rebuild it from the history)
  w.image = w.history.back().image;
  w.last_frame = w.history.back().frame;

  MemPages pages(w.image);
  ASSERT_TRUE(writer->upload_snapshot(pages, w.last_frame, w.history.back().time_us));
  const std::size_t snap_index = w.history.size() - 1;
  const Frame first = w.last_frame + 1;
  ASSERT_TRUE(writer->upload_batch(w.batch(3), first));
  auto skip = writer->upload_batch(w.batch(1), w.last_frame + 5);
  ASSERT_FALSE(skip);
  EXPECT_EQ(skip.error().kind, BackupErrc::kInvalidArgument);
  w.history.pop_back();
  w.image = w.history.back().image;
  w.last_frame = w.history.back().frame;

  // A reopened writer resumes where the manifest ends.
  auto resumed = BackupWriter::open(*fx.store, "ns/a/", id).value();
  EXPECT_EQ(resumed->last_frame(), w.last_frame);
  const Frame f2 = w.last_frame + 1;
  ASSERT_TRUE(resumed->upload_batch(w.batch(2), f2));

  auto range = restorable_range(*fx.store, "ns/a");
  ASSERT_TRUE(range) << range.error().message;
  EXPECT_EQ(range->first_frame, w.history[snap_index].frame);
  EXPECT_EQ(range->last_frame, w.last_frame);

  auto before = restore(*fx.store, "ns/a", RestoreTarget::at_frame(w.history[2].frame), fx.out);
  ASSERT_FALSE(before);
  EXPECT_EQ(before.error().kind, BackupErrc::kOutOfRange);
  for (std::size_t i = snap_index; i < w.history.size(); ++i) {
    auto r = restore(*fx.store, "ns/a", RestoreTarget::at_time(w.history[i].time_us), fx.out);
    ASSERT_TRUE(r) << r.error().message;
    std::size_t expect = i;
    while (expect + 1 < w.history.size() && w.history[expect + 1].time_us == w.history[i].time_us) ++expect;
    EXPECT_EQ(read_file(fx.out), w.history[expect].image);
  }
  auto latest = restore(*fx.store, "ns/a", RestoreTarget::latest(), fx.out);
  ASSERT_TRUE(latest) << latest.error().message;
  EXPECT_EQ(read_file(fx.out), w.image);
}

TEST(Backup, BatchesBuiltATransactionAtATimeRestoreEveryCommit) {
  Fixture fx("incremental");
  Workload w;
  const auto id = make_id(9);
  auto writer = BackupWriter::open(*fx.store, "db", id).value();
  // Nothing to finish, and a batch must continue the lineage.
  EXPECT_FALSE(writer->finish_batch());
  EXPECT_FALSE(writer->start_batch(2));
  // A transaction that breaks the rules abandons the batch: nothing is uploaded.
  ASSERT_TRUE(writer->start_batch(1));
  auto t1 = w.next();
  ASSERT_TRUE(writer->add_to_batch(log::TransactionView::of(t1)));
  auto late = t1;
  late.commit_time_us -= 1;
  EXPECT_FALSE(writer->add_to_batch(log::TransactionView::of(late)));
  EXPECT_EQ(writer->batch_txns(), 0u);
  EXPECT_FALSE(writer->finish_batch());
  EXPECT_EQ(writer->last_frame(), 0u);
  // Another writer starting a batch on this thread takes the thread's batch memory: the first
  // writer's batch is abandoned, never uploaded with the other's bytes.
  {
    Workload w2;
    auto other = BackupWriter::open(*fx.store, "other", make_id(10)).value();
    ASSERT_TRUE(writer->start_batch(1));
    ASSERT_TRUE(writer->add_to_batch(log::TransactionView::of(t1)));
    ASSERT_TRUE(other->start_batch(1));
    auto u = w2.next();
    ASSERT_TRUE(other->add_to_batch(log::TransactionView::of(u)));
    EXPECT_FALSE(writer->add_to_batch(log::TransactionView::of(t1)));
    ASSERT_TRUE(writer->start_batch(1));  // and back: now the other one is abandoned
    ASSERT_TRUE(writer->add_to_batch(log::TransactionView::of(t1)));
    auto lost = other->finish_batch();
    ASSERT_FALSE(lost);
    EXPECT_NE(lost.error().message.find("abandoned"), std::string::npos) << lost.error().message;
    EXPECT_EQ(other->last_frame(), 0u);
    ASSERT_TRUE(writer->start_batch(1));  // leave nothing half-built for what follows
  }

  // Then two batches, the first of some 600 pages (its buffer grows past the first 2 MiB while
  // it is built), the second from a view with another stride (pages behind 64-byte headers, as
  // a log reader's buffer holds them).
  ASSERT_TRUE(writer->start_batch(1));
  ASSERT_TRUE(writer->add_to_batch(log::TransactionView::of(t1)));
  for (int i = 0; i < 199; ++i) {
    auto t = w.next();
    ASSERT_TRUE(writer->add_to_batch(log::TransactionView::of(t)));
  }
  EXPECT_EQ(writer->batch_txns(), 200u);
  auto first = writer->finish_batch();
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->txns, 200u);
  EXPECT_EQ(first->last_frame, w.last_frame);
  EXPECT_GT(w.last_frame, 512u) << "the batch must outgrow one huge page";

  ASSERT_TRUE(writer->start_batch(w.last_frame + 1));
  for (int i = 0; i < 5; ++i) {
    auto t = w.next();
    constexpr std::size_t kStride = kPageSize + 64;
    std::vector<std::byte> strided(t.page_count() * kStride, std::byte{0xee});
    for (std::size_t k = 0; k < t.page_count(); ++k)
      std::memcpy(strided.data() + k * kStride + 64, t.page(k).data(), kPageSize);
    log::TransactionView v = log::TransactionView::of(t);
    v.first_page = strided.data() + 64;
    v.stride = kStride;
    ASSERT_TRUE(writer->add_to_batch(v));
  }
  ASSERT_TRUE(writer->finish_batch());

  for (std::size_t i = 0; i < w.history.size(); i += 7) {
    auto r = restore(*fx.store, "db", RestoreTarget::at_frame(w.history[i].frame), fx.out);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(read_file(fx.out), w.history[i].image) << "commit " << i;
  }
  auto latest = restore(*fx.store, "db", RestoreTarget::latest(), fx.out);
  ASSERT_TRUE(latest) << latest.error().message;
  EXPECT_EQ(read_file(fx.out), w.image);
}

TEST(Backup, CorruptedBatchIsAnErrorNamingIt) {
  Fixture fx("corruptbatch");
  Workload w;
  const auto id = make_id(3);
  auto writer = upload(fx, w, id, 6, 0);
  const auto& b = writer->manifest().batches[3];
  fs::path p = fx.object_path("db1", id, b.key);
  ASSERT_TRUE(fs::exists(p));
  fs::create_directories(fx.out.parent_path());
  { std::ofstream(fx.out) << "previous"; }
  expect_each_flip_fails(fx, p, {3, 200, fs::file_size(p) - 10}, b.key);
  // The output file was left alone, and no temporary remains.
  EXPECT_EQ(read_file(fx.out).size(), 8u);
  EXPECT_FALSE(fs::exists(fx.out.string() + ".restore-tmp"));
  // Restoring to a point before the damaged batch does not need it.
  flip_byte(p, 200);
  auto early = restore(*fx.store, "db1", RestoreTarget::at_frame(b.first_frame - 1), fx.out);
  ASSERT_TRUE(early) << early.error().message;
  EXPECT_EQ(early->frame, b.first_frame - 1);
  // Truncated object: size mismatch.
  flip_byte(p, 200);
  fs::resize_file(p, fs::file_size(p) - 1);
  auto trunc = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_FALSE(trunc);
  EXPECT_EQ(trunc.error().kind, BackupErrc::kCorrupt);
  EXPECT_NE(trunc.error().message.find(b.key), std::string::npos);
}

TEST(Backup, BatchNamedByTheManifestIsCheckedAgainstItsSha256) {
  Fixture fx("batchsha");
  Workload w;
  const auto id = make_id(3);
  auto writer = upload(fx, w, id, 6, 0);
  ASSERT_TRUE(writer->flush_manifest());  // the manifest names every batch (no tail)
  const auto& b = writer->manifest().batches[3];
  ASSERT_FALSE(b.sha256.empty());
  fs::path p = fx.object_path("db1", id, b.key);
  // The SHA-256 the restore computes while it fetches the batch ahead is the first check to
  // fail, whichever byte changed, and the batches before it still restore.
  expect_each_flip_fails(fx, p, {3, 200, fs::file_size(p) - 10}, b.key,
                         "SHA-256 does not match the manifest");
  auto ok = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(read_file(fx.out), w.image);
}

TEST(Backup, CorruptedSnapshotIsAnErrorNamingIt) {
  Fixture fx("corruptsnap");
  Workload w;
  const auto id = make_id(4);
  auto writer = upload(fx, w, id, 6, 3);
  ASSERT_EQ(writer->manifest().snapshots.size(), 1u);
  const auto& s = writer->manifest().snapshots[0];
  fs::path p = fx.object_path("db1", id, s.key);
  expect_each_flip_fails(fx, p, {0, 140, fs::file_size(p) - 1}, s.key);
  auto ok = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(read_file(fx.out), w.image);
}

TEST(Backup, MissingBatchObjectAndManifestGapAreErrors) {
  Fixture fx("missing");
  Workload w;
  const auto id = make_id(5);
  auto writer = upload(fx, w, id, 6, 0);
  ASSERT_TRUE(writer->flush_manifest());  // the manifest names every batch (no tail)
  const BatchEntry b = writer->manifest().batches[2];
  fs::path p = fx.object_path("db1", id, b.key);
  fs::path saved = fx.root.parent_path() / "saved";
  fs::rename(p, saved);
  auto r = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, BackupErrc::kMissingObject);
  EXPECT_NE(r.error().message.find(b.key), std::string::npos) << r.error().message;
  fs::rename(saved, p);

  // A manifest that skips a batch: the hole is detected, not jumped over.
  Manifest m = writer->manifest();
  m.batches.erase(m.batches.begin() + 2);
  ASSERT_TRUE(fx.store->put("db1/" + log::format_log_id(id) + "/manifest.json", manifest_to_json(m)));
  auto gap = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_FALSE(gap);
  EXPECT_EQ(gap.error().kind, BackupErrc::kGap) << gap.error().message;
  auto at_time = restore(*fx.store, "db1", RestoreTarget::at_time(w.history.back().time_us), fx.out);
  ASSERT_FALSE(at_time);
  EXPECT_EQ(at_time.error().kind, BackupErrc::kGap) << at_time.error().message;
  auto before = restore(*fx.store, "db1", RestoreTarget::at_frame(b.first_frame - 1), fx.out);
  ASSERT_TRUE(before) << before.error().message;
  auto range = restorable_range(*fx.store, "db1");
  ASSERT_TRUE(range);
  EXPECT_EQ(range->last_frame, b.first_frame - 1);
}

TEST(Backup, AbsentOrDamagedManifestIsAClearError) {
  Fixture fx("nomanifest");
  auto none = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().kind, BackupErrc::kNoBackup);
  EXPECT_NE(none.error().message.find("lineages.json"), std::string::npos) << none.error().message;

  Workload w;
  const auto id = make_id(6);
  upload(fx, w, id, 2, 0);
  const std::string mkey = "db1/" + log::format_log_id(id) + "/manifest.json";
  ASSERT_TRUE(fx.store->put(mkey, "{\"format\": \"quire-backup-manifest\", \"vers"));
  auto bad = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, BackupErrc::kCorrupt);
  EXPECT_NE(bad.error().message.find(mkey), std::string::npos) << bad.error().message;
  ASSERT_TRUE(fx.store->remove(mkey));
  auto gone = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().kind, BackupErrc::kMissingObject);
  EXPECT_NE(gone.error().message.find(mkey), std::string::npos) << gone.error().message;
  EXPECT_FALSE(fs::exists(fx.out));
}

TEST(Backup, NewLogIdStartsANewLineage) {
  Fixture fx("lineage");
  Workload w;
  const auto id1 = make_id(7), id2 = make_id(8);
  upload(fx, w, id1, 4, 0);
  const auto old_history = w.history;
  // The log is re-created (new id): a new lineage starting with a snapshot of the current image.
  Workload w2;
  w2.image = w.image;
  w2.time_us = w.time_us + 10'000;
  auto writer = BackupWriter::open(*fx.store, "db1", id2).value();
  MemPages pages(w2.image);
  ASSERT_TRUE(writer->upload_snapshot(pages, 1, w2.time_us));
  w2.last_frame = 1;
  w2.history.push_back({1, w2.time_us, w2.image});
  ASSERT_TRUE(writer->upload_batch(w2.batch(3), 2));

  auto reader = BackupReader::open(*fx.store, "db1").value();
  ASSERT_EQ(reader.lineages().size(), 2u);
  EXPECT_EQ(reader.lineages().back().log_id, id2);
  auto latest = reader.restore(RestoreTarget::latest(), fx.out);
  ASSERT_TRUE(latest) << latest.error().message;
  EXPECT_EQ(latest->log_id, id2);
  EXPECT_EQ(read_file(fx.out), w2.image);
  // A time before the new lineage began comes from the old one.
  auto old = reader.restore(RestoreTarget::at_time(old_history[1].time_us), fx.out);
  ASSERT_TRUE(old) << old.error().message;
  EXPECT_EQ(old->log_id, id1);
  EXPECT_EQ(read_file(fx.out), old_history[1].image);
  // A frame in a named lineage.
  RestoreTarget t = RestoreTarget::at_frame(old_history[2].frame);
  t.log_id = id1;
  auto named = reader.restore(t, fx.out);
  ASSERT_TRUE(named) << named.error().message;
  EXPECT_EQ(read_file(fx.out), old_history[2].image);
  auto range1 = reader.restorable_range(id1);
  ASSERT_TRUE(range1);
  EXPECT_EQ(range1->last_frame, old_history.back().frame);
}

// A snapshot larger than one upload part, read back in small ranged GETs whose boundaries split
// the header, the payload and the trailer.
TEST(Backup, LargeSnapshotStreamsThroughPartsAndChunks) {
  Fixture fx("large");
  fx.store = std::move(storage::FileObjectStore::open(fx.root, 64u << 10).value());
  Workload w;
  const auto id = make_id(9);
  auto writer = BackupWriter::open(*fx.store, "db1", id).value();
  std::mt19937_64 rng(7);
  w.image.resize(600 * kPageSize);
  for (std::size_t i = 0; i < w.image.size(); ++i)
    w.image[i] = static_cast<std::byte>(i % 3 == 0 ? rng() : i / kPageSize);  // part compressible
  w.last_frame = 1000;
  MemPages pages(w.image);
  auto s = writer->upload_snapshot(pages, 1000, w.time_us);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_GT(s->size, 3u * (64u << 10));
  w.history.push_back({1000, w.time_us, w.image});
  ASSERT_TRUE(writer->upload_batch(w.batch(3), 1001));
  auto reader = BackupReader::open(*fx.store, "db1").value();
  for (std::uint64_t chunk : {std::uint64_t{4096}, std::uint64_t{5000}, std::uint64_t{65537},
                              std::uint64_t{8} << 20}) {
    reader.read_chunk_bytes = chunk;
    auto at_snap = reader.restore(RestoreTarget::at_frame(1000), fx.out);
    ASSERT_TRUE(at_snap) << "chunk " << chunk << ": " << at_snap.error().message;
    EXPECT_EQ(read_file(fx.out), w.history.front().image) << "chunk " << chunk;
    auto latest = reader.restore(RestoreTarget::latest(), fx.out);
    ASSERT_TRUE(latest) << latest.error().message;
    EXPECT_EQ(read_file(fx.out), w.image);
  }
  // Damage in the middle of the payload is caught with small chunks too.
  reader.read_chunk_bytes = 5000;
  flip_byte(fx.object_path("db1", id, s->key), s->size / 2);
  auto bad = reader.restore(RestoreTarget::latest(), fx.out);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, BackupErrc::kCorrupt);
  EXPECT_NE(bad.error().message.find(s->key), std::string::npos) << bad.error().message;
}

// Restore writes each run of consecutive page numbers with one gathered write: runs longer than
// one pwritev (512 parts), pages in descending order (runs of one), runs broken by other pages, a
// rewrite that shrinks the file and a growth past a hole all restore exactly, at every commit.
TEST(Backup, RunsOfConsecutivePagesRestoreExactlyAtEveryCommit) {
  Fixture fx("runs");
  const auto id = make_id(11);
  auto writer = BackupWriter::open(*fx.store, "db1", id).value();
  std::mt19937_64 rng(11);
  Image image;
  std::vector<Commit> history;
  Frame frame = 0;
  std::int64_t time_us = 1'700'000'000'000'000;
  auto commit = [&](const std::vector<std::uint32_t>& pgnos, std::uint32_t db_size) {
    log::Transaction t;
    image.resize(std::size_t{db_size} * kPageSize, std::byte{0});
    add_random_pages(t, image, pgnos, rng);
    t.db_size = db_size;
    time_us += 1000;
    t.commit_time_us = time_us;
    frame += pgnos.size();
    history.push_back({frame, time_us, image});
    return t;
  };
  auto range = [](std::uint32_t from, std::uint32_t to) {  // from..to, either direction
    std::vector<std::uint32_t> v;
    for (std::uint32_t p = from;; p = from < to ? p + 1 : p - 1) {
      v.push_back(p);
      if (p == to) break;
    }
    return v;
  };
  std::vector<log::Transaction> first;
  first.push_back(commit(range(1, 1300), 1300));
  first.push_back(commit(range(1300, 601), 1300));
  first.push_back(commit({1, 2, 3, 900, 901, 5, 6, 7, 8, 1299, 1300}, 1300));
  ASSERT_TRUE(writer->upload_batch(first, 1));
  const Frame second_first = frame + 1;
  std::vector<log::Transaction> second;
  second.push_back(commit(range(1, 800), 800));
  second.push_back(commit(range(1000, 1100), 1100));
  ASSERT_TRUE(writer->upload_batch(second, second_first));

  auto reader = BackupReader::open(*fx.store, "db1").value();
  for (const auto& c : history) {
    auto r = reader.restore(RestoreTarget::at_frame(c.frame), fx.out);
    ASSERT_TRUE(r) << "frame " << c.frame << ": " << r.error().message;
    EXPECT_EQ(read_file(fx.out), c.image) << "frame " << c.frame;
  }
  auto latest = reader.restore(RestoreTarget::latest(), fx.out);
  ASSERT_TRUE(latest) << latest.error().message;
  EXPECT_EQ(read_file(fx.out), image);
}

// A snapshot taken at a commit inside an already uploaded batch: restores after it start from the
// snapshot and skip the batch's earlier transactions.
TEST(Backup, SnapshotInsideABatchSkipsItsEarlierTransactions) {
  Fixture fx("midbatch");
  Workload w;
  const auto id = make_id(10);
  auto writer = BackupWriter::open(*fx.store, "db1", id).value();
  ASSERT_TRUE(writer->upload_batch(w.batch(2), 1));
  const std::size_t before = w.history.size();
  const Frame second = w.last_frame + 1;
  ASSERT_TRUE(writer->upload_batch(w.batch(5), second));
  const Commit mid = w.history[before + 2];
  MemPages pages(mid.image);
  ASSERT_TRUE(writer->upload_snapshot(pages, mid.frame, mid.time_us));
  const Frame third = w.last_frame + 1;
  ASSERT_TRUE(writer->upload_batch(w.batch(2), third));
  // Now break the first two batches: restores at or after the snapshot must not need them.
  fs::remove(fx.object_path("db1", id, writer->manifest().batches[0].key));
  for (std::size_t i = before + 2; i < w.history.size(); ++i) {
    auto r = restore(*fx.store, "db1", RestoreTarget::at_frame(w.history[i].frame), fx.out);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_NE(r->snapshot_key.find(snapshot_key(mid.frame)), std::string::npos);
    EXPECT_EQ(read_file(fx.out), w.history[i].image) << i;
  }
  auto early = restore(*fx.store, "db1", RestoreTarget::at_frame(w.history[0].frame), fx.out);
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().kind, BackupErrc::kMissingObject);
}

// The same transactions through the replication log: restore from the backup equals the log's own
// materialize() at every commit.
TEST(Backup, AgreesWithReplicationLogMaterialize) {
  Fixture fx("log");
  auto dir = fx.root.parent_path();
  auto created = log::ReplicationLog::create(dir / "log");
  ASSERT_TRUE(created) << created.error().message;
  auto& rlog = *created;
  Workload w;
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(rlog->append(w.next()));
  auto writer = BackupWriter::open(*fx.store, "db1", rlog->log_id()).value();
  auto reader = rlog->read_from(1);
  ASSERT_TRUE(reader);
  std::vector<log::Transaction> pending;
  Frame first = 1;
  for (;;) {
    auto t = reader->next();
    ASSERT_TRUE(t) << t.error().message;
    if (!*t) break;
    if (pending.empty()) first = (*t)->first_frame;
    pending.push_back(std::move((*t)->txn));
    if (pending.size() == 7) {
      ASSERT_TRUE(writer->upload_batch(pending, first));
      pending.clear();
    }
  }
  if (!pending.empty()) {
    ASSERT_TRUE(writer->upload_batch(pending, first));
  }
  auto from_log = dir / "from-log.db";
  for (std::size_t i = 0; i < w.history.size(); i += 3) {
    const Frame f = w.history[i].frame;
    auto m = log::materialize(*rlog, from_log, log::MaterializeTarget{f, std::nullopt});
    ASSERT_TRUE(m) << m.error().message;
    auto r = restore(*fx.store, "db1", RestoreTarget::at_frame(f), fx.out);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(read_file(fx.out), read_file(from_log)) << "frame " << f;
    EXPECT_EQ(read_file(fx.out), w.history[i].image) << "frame " << f;
  }
}

}  // namespace
}  // namespace quire::backup
