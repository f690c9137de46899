// ship(): brings a backup up to date with a replication log; idempotent; snapshot first for a
// new lineage whose log was compacted, and when the log was compacted past what the store has.
#include "backup/ship.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "log/log.h"
#include "storage/file_object_store.h"

namespace quire::backup {
namespace {

namespace fs = std::filesystem;
using log::kPageSize;
using Image = std::vector<std::byte>;

fs::path scratch(const std::string& tag) {
  auto dir = fs::temp_directory_path() /
             ("quire-ship-" + tag + "-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Transactions over an in-memory image; `image` is the database after the last one.
struct Gen {
  std::mt19937_64 rng{7};
  Image image;
  std::int64_t time_us = 1'700'000'000'000'000;
  log::Transaction next() {
    log::Transaction t;
    const auto size = static_cast<std::uint32_t>(image.size() / kPageSize);
    const std::uint32_t new_size = size == 0 ? 3 : size + static_cast<std::uint32_t>(rng() % 2);
    image.resize(std::size_t{new_size} * kPageSize, std::byte{0});
    std::vector<std::uint32_t> pgnos;
    for (std::uint32_t p = size + 1; p <= new_size; ++p) pgnos.push_back(p);
    const std::uint32_t p = 1 + static_cast<std::uint32_t>(rng() % new_size);
    if (std::find(pgnos.begin(), pgnos.end(), p) == pgnos.end()) pgnos.push_back(p);
    std::vector<std::byte> page(kPageSize);
    for (auto q : pgnos) {
      for (auto& b : page) b = static_cast<std::byte>(rng());
      std::memcpy(image.data() + std::size_t{q - 1} * kPageSize, page.data(), kPageSize);
      t.add_page(q, page);
    }
    t.db_size = new_size;
    time_us += 1000;
    t.commit_time_us = time_us;
    return t;
  }
  void append(log::ReplicationLog& l, int n) {
    for (int i = 0; i < n; ++i) ASSERT_TRUE(l.append(next()).has_value());
    ASSERT_TRUE(l.sync().has_value());
  }
};

Image read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Image img(s.size());
  std::memcpy(img.data(), s.data(), s.size());
  return img;
}

TEST(Ship, UploadsEverythingOnceThenOnlyWhatIsNew) {
  const auto dir = scratch("inc");
  auto l = std::move(log::ReplicationLog::create(dir / "log").value());
  auto store = std::move(storage::FileObjectStore::open(dir / "store").value());
  Gen g;
  g.append(*l, 40);
  ShipOptions opt;
  opt.batch_bytes = 16 * kPageSize;
  auto first = ship(*l, *store, "ns");
  ASSERT_TRUE(first.has_value()) << first.error().message;
  EXPECT_FALSE(first->snapshot.has_value());  // the log starts at frame 1: no snapshot needed
  EXPECT_EQ(first->store_frame_before, 0u);
  EXPECT_EQ(first->store_frame_after, l->last_frame());
  EXPECT_EQ(first->txns, 40u);

  auto again = ship(*l, *store, "ns");
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_FALSE(again->uploaded_anything());
  EXPECT_EQ(again->objects_written, 0u);

  g.append(*l, 25);
  auto more = ship(*l, *store, "ns", opt);
  ASSERT_TRUE(more.has_value()) << more.error().message;
  EXPECT_EQ(more->txns, 25u);
  EXPECT_GT(more->batches.size(), 1u);  // split by batch_bytes
  EXPECT_EQ(more->batches.front().first_frame, first->store_frame_after + 1);
  EXPECT_EQ(more->store_frame_after, l->last_frame());

  auto restored = restore(*store, "ns", RestoreTarget::latest(), dir / "out.db");
  ASSERT_TRUE(restored.has_value()) << restored.error().message;
  EXPECT_EQ(restored->frame, l->last_frame());
  EXPECT_EQ(read_all(dir / "out.db"), g.image);
}

TEST(Ship, SnapshotFirstWhenTheLogWasCompacted) {
  const auto dir = scratch("compact");
  log::LogOptions lo;
  lo.segment_bytes = 64 * 1024;
  auto l = std::move(log::ReplicationLog::create(dir / "log", lo).value());
  auto store = std::move(storage::FileObjectStore::open(dir / "store").value());
  Gen g;
  g.append(*l, 20);
  ASSERT_TRUE(ship(*l, *store, "old").has_value());
  g.append(*l, 60);
  ASSERT_TRUE(l->snapshot().has_value());
  g.append(*l, 5);
  auto compacted = l->compact();
  ASSERT_TRUE(compacted.has_value());
  ASSERT_GT(l->first_available_frame(), 1u);

  // A new lineage (prefix) needs the log's snapshot first.
  auto fresh = ship(*l, *store, "new");
  ASSERT_TRUE(fresh.has_value()) << fresh.error().message;
  ASSERT_TRUE(fresh->snapshot.has_value());
  EXPECT_EQ(fresh->snapshot->frame, l->latest_snapshot()->frame);
  EXPECT_EQ(fresh->store_frame_after, l->last_frame());

  // The old lineage stopped before the compacted frames: snapshot, then the rest.
  auto old = ship(*l, *store, "old");
  ASSERT_TRUE(old.has_value()) << old.error().message;
  ASSERT_TRUE(old->snapshot.has_value());
  EXPECT_EQ(old->store_frame_after, l->last_frame());

  for (const char* prefix : {"new", "old"}) {
    auto r = restore(*store, prefix, RestoreTarget::latest(), dir / (std::string(prefix) + ".db"));
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_EQ(read_all(dir / (std::string(prefix) + ".db")), g.image) << prefix;
    auto idem = ship(*l, *store, prefix);
    ASSERT_TRUE(idem.has_value());
    EXPECT_FALSE(idem->uploaded_anything());
  }
}


// The size trigger: once the batches after the newest snapshot exceed snapshot_after_bytes, ship
// ends with a snapshot of the log at the store's last frame (built, as the log has none).
TEST(Ship, PeriodicSnapshotAfterEnoughBatchBytes) {
  const auto dir = scratch("policy-bytes");
  auto l = std::move(log::ReplicationLog::create(dir / "log").value());
  auto store = std::move(storage::FileObjectStore::open(dir / "store").value());
  auto writer = std::move(BackupWriter::open(*store, "ns", l->log_id()).value());
  Gen g;
  ShipOptions opt;
  opt.snapshot_after_bytes = 30 * kPageSize;  // random pages: stored bytes ~ page bytes
  opt.snapshot_interval_us = 0;
  g.append(*l, 5);
  auto small = ship(*l, *writer, opt);
  ASSERT_TRUE(small.has_value()) << small.error().message;
  EXPECT_FALSE(small->snapshot.has_value());
  g.append(*l, 40);
  auto big = ship(*l, *writer, opt);
  ASSERT_TRUE(big.has_value()) << big.error().message;
  ASSERT_TRUE(big->snapshot.has_value());
  EXPECT_TRUE(big->periodic_snapshot);
  EXPECT_EQ(big->snapshot->frame, l->last_frame());
  EXPECT_EQ(big->store_frame_after, l->last_frame());
  ASSERT_TRUE(l->latest_snapshot().has_value());
  EXPECT_EQ(l->latest_snapshot()->frame, l->last_frame());
  // Nothing new: nothing uploaded, and the snapshot is not repeated.
  auto idle = ship(*l, *writer, opt);
  ASSERT_TRUE(idle.has_value()) << idle.error().message;
  EXPECT_FALSE(idle->uploaded_anything());
  // A few more commits stay under the limit.
  g.append(*l, 3);
  auto few = ship(*l, *writer, opt);
  ASSERT_TRUE(few.has_value()) << few.error().message;
  EXPECT_FALSE(few->snapshot.has_value());
  EXPECT_EQ(writer->manifest().snapshots.size(), 1u);

  // The store overload follows the same policy.
  g.append(*l, 40);
  auto through_store = ship(*l, *store, "ns", opt);
  ASSERT_TRUE(through_store.has_value()) << through_store.error().message;
  EXPECT_TRUE(through_store->periodic_snapshot);
  auto restored = restore(*store, "ns", RestoreTarget::latest(), dir / "out.db");
  ASSERT_TRUE(restored.has_value()) << restored.error().message;
  EXPECT_EQ(read_all(dir / "out.db"), g.image);
}

// The time trigger counts commit times: a snapshot once the store's newest commit is the
// interval after the newest snapshot (or the first commit), never without new commits.
TEST(Ship, PeriodicSnapshotAfterTheIntervalOnlyWithCommits) {
  const auto dir = scratch("policy-time");
  auto l = std::move(log::ReplicationLog::create(dir / "log").value());
  auto store = std::move(storage::FileObjectStore::open(dir / "store").value());
  auto writer = std::move(BackupWriter::open(*store, "ns", l->log_id()).value());
  Gen g;  // commits 1 ms apart
  ShipOptions opt;
  opt.snapshot_after_bytes = ShipOptions::kNever;
  opt.snapshot_interval_us = 10'000;
  g.append(*l, 5);  // 4 ms from the first commit
  auto r1 = ship(*l, *writer, opt);
  ASSERT_TRUE(r1.has_value()) << r1.error().message;
  EXPECT_FALSE(r1->snapshot.has_value());
  g.append(*l, 8);  // 12 ms
  auto r2 = ship(*l, *writer, opt);
  ASSERT_TRUE(r2.has_value()) << r2.error().message;
  ASSERT_TRUE(r2->periodic_snapshot);
  EXPECT_EQ(r2->snapshot->frame, l->last_frame());
  auto idle = ship(*l, *writer, opt);
  ASSERT_TRUE(idle.has_value());
  EXPECT_FALSE(idle->uploaded_anything());
  g.append(*l, 9);  // 9 ms after the snapshot
  auto r3 = ship(*l, *writer, opt);
  ASSERT_TRUE(r3.has_value());
  EXPECT_FALSE(r3->snapshot.has_value());
  g.append(*l, 1);  // 10 ms
  auto r4 = ship(*l, *writer, opt);
  ASSERT_TRUE(r4.has_value());
  EXPECT_TRUE(r4->periodic_snapshot);
  EXPECT_EQ(writer->manifest().snapshots.size(), 2u);
}

// The log's own newest snapshot is uploaded when it reaches the store's frame (no new one is
// built); frames the log holds beyond the store's are shipped first, so nothing is skipped.
TEST(Ship, PeriodicSnapshotReusesTheLogsSnapshot) {
  const auto dir = scratch("policy-reuse");
  auto l = std::move(log::ReplicationLog::create(dir / "log").value());
  auto store = std::move(storage::FileObjectStore::open(dir / "store").value());
  auto writer = std::move(BackupWriter::open(*store, "ns", l->log_id()).value());
  Gen g;
  g.append(*l, 1);
  ShipOptions opt;
  opt.snapshot_after_bytes = 10 * kPageSize;
  auto first = ship(*l, *writer, opt);
  ASSERT_TRUE(first.has_value()) << first.error().message;
  EXPECT_FALSE(first->snapshot.has_value());
  g.append(*l, 30);
  auto taken = l->snapshot();
  ASSERT_TRUE(taken.has_value());
  auto r = ship(*l, *writer, opt);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  ASSERT_TRUE(r->periodic_snapshot);
  EXPECT_EQ(r->snapshot->frame, taken->frame);
  EXPECT_EQ(l->snapshots().size(), 1u);
  auto restored = restore(*store, "ns", RestoreTarget::latest(), dir / "out.db");
  ASSERT_TRUE(restored.has_value()) << restored.error().message;
  EXPECT_EQ(restored->snapshot_key.substr(restored->snapshot_key.find("snapshots/")),
            snapshot_key(taken->frame));
  EXPECT_EQ(read_all(dir / "out.db"), g.image);
}

TEST(Ship, DefaultPolicyDoesNotSnapshotASmallYoungDatabase) {
  const auto dir = scratch("policy-default");
  auto l = std::move(log::ReplicationLog::create(dir / "log").value());
  auto store = std::move(storage::FileObjectStore::open(dir / "store").value());
  Gen g;
  g.append(*l, 50);
  auto r = ship(*l, *store, "ns");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_FALSE(r->snapshot.has_value());
  // A day of commit time later (one commit), the interval trigger fires.
  log::Transaction t = g.next();
  t.commit_time_us += 24ll * 3600 * 1'000'000;
  g.time_us = t.commit_time_us;
  ASSERT_TRUE(l->append(t).has_value());
  auto day = ship(*l, *store, "ns");
  ASSERT_TRUE(day.has_value()) << day.error().message;
  EXPECT_TRUE(day->periodic_snapshot);
}

}  // namespace
}  // namespace quire::backup
