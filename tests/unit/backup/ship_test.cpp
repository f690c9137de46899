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

}  // namespace
}  // namespace quire::backup
