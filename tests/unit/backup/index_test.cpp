// Index objects (docs/formats/backup.md, "Index objects"): the writer seals old batches into
// immutable index objects so that the manifest it rewrites stays small; restore fetches only the
// indexes it needs and checks them; retention drops whole indexes with their batches.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "backup/backup.h"
#include "backup_test_util.h"

namespace quire::backup {
namespace {

using namespace testutil;  // NOLINT

std::string dir_of(const log::LogId& id) { return "db1/" + log::format_log_id(id) + "/"; }

std::string stored_text(Fixture& fx, const log::LogId& id) {
  return fx.store->get(dir_of(id) + "manifest.json").value();
}

Manifest stored_manifest(Fixture& fx, const log::LogId& id) {
  return manifest_from_json(stored_text(fx, id), "manifest").value();
}

BackupOptions sealing_every(std::uint32_t n) {
  BackupOptions o;
  o.index_batches = n;
  o.manifest_every_batches = 1;
  return o;
}

// Every batch of `m`, sealed ones read from their index objects.
std::vector<BatchEntry> all_batches(Fixture& fx, const Manifest& m) {
  std::vector<BatchEntry> out;
  for (const auto& i : m.indexes) {
    auto listed = read_index_batches(*fx.store, dir_of(m.log_id), m.log_id, i);
    EXPECT_TRUE(listed) << listed.error().message;
    if (listed) out.insert(out.end(), listed->begin(), listed->end());
  }
  out.insert(out.end(), m.batches.begin(), m.batches.end());
  return out;
}

std::set<std::string> listed_under(Fixture& fx, const std::string& under) {
  std::set<std::string> out;
  auto objects = fx.store->list(under);
  EXPECT_TRUE(objects);
  if (objects)
    for (const auto& o : *objects) out.insert(o.key);
  return out;
}

// The commit time of the first commit after frame `f`: a cutoff at which the snapshot at `f` is
// the newest one at or before it.
std::int64_t first_commit_after(const Workload& w, Frame f) {
  for (const auto& c : w.history)
    if (c.frame > f) return c.time_us;
  ADD_FAILURE() << "no commit after frame " << f;
  return 0;
}

void expect_every_commit_restores(Fixture& fx, const Workload& w, Frame from = 0) {
  auto reader = BackupReader::open(*fx.store, "db1");
  ASSERT_TRUE(reader) << reader.error().message;
  for (const auto& c : w.history) {
    if (c.frame < from) continue;
    auto r = reader->restore(RestoreTarget::at_frame(c.frame), fx.out);
    ASSERT_TRUE(r) << "frame " << c.frame << ": " << r.error().message;
    EXPECT_EQ(r->frame, c.frame);
    EXPECT_EQ(read_file(fx.out), c.image) << "frame " << c.frame;
    auto t = reader->restore(RestoreTarget::at_time(c.time_us), fx.out);
    ASSERT_TRUE(t) << "time " << c.time_us << ": " << t.error().message;
    EXPECT_EQ(t->commit_time_us, c.time_us);
  }
  auto latest = reader->restore(RestoreTarget::latest(), fx.out);
  ASSERT_TRUE(latest) << latest.error().message;
  EXPECT_EQ(read_file(fx.out), w.history.back().image);
}

TEST(BackupIndex, SealsOldBatchesSoTheManifestStaysSmall) {
  Fixture fx("idx-seal");
  Workload w;
  const auto id = make_id(61);
  auto writer = upload(fx, w, id, 23, 0, "db1", sealing_every(5));
  const Manifest m = stored_manifest(fx, id);
  EXPECT_EQ(manifest_to_json(m), manifest_to_json(writer->manifest()));
  EXPECT_NE(stored_text(fx, id).find("\"version\":2"), std::string::npos);
  ASSERT_EQ(m.indexes.size(), 4u);
  EXPECT_EQ(m.batches.size(), 3u);
  EXPECT_EQ(m.batch_count(), 23u);
  EXPECT_EQ(m.indexes.front().first_frame, 1u);
  for (std::size_t i = 0; i < m.indexes.size(); ++i) {
    EXPECT_EQ(m.indexes[i].batches, 5u);
    EXPECT_EQ(m.indexes[i].key, index_key(m.indexes[i].first_frame, m.indexes[i].last_frame));
    const Frame next =
        i + 1 < m.indexes.size() ? m.indexes[i + 1].first_frame : m.batches.front().first_frame;
    EXPECT_EQ(m.indexes[i].last_frame + 1, next);
  }
  // The index objects list every sealed batch, in order, as the manifest did.
  const auto batches = all_batches(fx, m);
  ASSERT_EQ(batches.size(), 23u);
  std::uint64_t bytes = 0;
  for (std::size_t i = 0; i < batches.size(); ++i) {
    EXPECT_EQ(batches[i].key, batch_key(batches[i].first_frame));
    if (i > 0) {
      EXPECT_EQ(batches[i].first_frame, batches[i - 1].last_frame + 1);
    }
    if (i < 5) bytes += batches[i].size;
  }
  EXPECT_EQ(m.indexes[0].batch_bytes, bytes);
  EXPECT_EQ(listed_under(fx, dir_of(id) + "indexes/").size(), 4u);
  // Objects: 23 batches, 4 indexes, a manifest per batch, lineages.json once.
  EXPECT_EQ(writer->objects_written(), 23u + 4u + 23u + 1u);

  auto range = restorable_range(*fx.store, "db1");
  ASSERT_TRUE(range) << range.error().message;
  EXPECT_EQ(range->first_frame, batches.front().first_commit_frame);
  EXPECT_EQ(range->last_frame, w.last_frame);
  expect_every_commit_restores(fx, w);
}

TEST(BackupIndex, NoIndexStraddlesASnapshotAndRestoreReadsOnlyTheIndexesItNeeds) {
  Fixture fx("idx-snap");
  Workload w;
  const auto id = make_id(62);
  upload(fx, w, id, 23, 7, "db1", sealing_every(5));
  const Manifest m = stored_manifest(fx, id);
  ASSERT_EQ(m.snapshots.size(), 1u);
  const Frame snap = m.snapshots.front().frame;
  ASSERT_GE(m.indexes.size(), 3u);
  bool one_ends_there = false;
  for (const auto& i : m.indexes) {
    EXPECT_TRUE(i.last_frame <= snap || i.first_frame > snap) << i.key;
    one_ends_there |= i.last_frame == snap;
  }
  EXPECT_TRUE(one_ends_there);
  expect_every_commit_restores(fx, w);

  // Without the indexes before the snapshot, everything from the snapshot on still restores
  // (they are not read); a point before it names the missing index.
  for (const auto& i : m.indexes)
    if (i.last_frame <= snap) {
      ASSERT_TRUE(fx.store->remove(dir_of(id) + i.key));
    }
  expect_every_commit_restores(fx, w, snap);
  auto reader = BackupReader::open(*fx.store, "db1").value();
  auto early = reader.restore(RestoreTarget::at_frame(w.history.front().frame), fx.out);
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().kind, BackupErrc::kMissingObject);
  EXPECT_NE(early.error().message.find(m.indexes.front().key), std::string::npos)
      << early.error().message;
}

TEST(BackupIndex, DamagedIndexIsAnErrorNamingIt) {
  Fixture fx("idx-damage");
  Workload w;
  const auto id = make_id(63);
  upload(fx, w, id, 12, 0, "db1", sealing_every(5));
  const Manifest m = stored_manifest(fx, id);
  ASSERT_EQ(m.indexes.size(), 2u);
  const auto p = fx.object_path("db1", id, m.indexes[0].key);
  expect_each_flip_fails(fx, p, {2, fs::file_size(p) / 2, fs::file_size(p) - 2}, m.indexes[0].key);
  ASSERT_TRUE(restore(*fx.store, "db1", RestoreTarget::latest(), fx.out));

  // An index object that is valid JSON but lists other batches than its entry says.
  const auto batches = all_batches(fx, m);
  const std::vector<BatchEntry> fewer(batches.begin(), batches.begin() + 4);
  auto wrong = index_from_json(index_to_json(id, fewer), id, m.indexes[0], "x");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().kind, BackupErrc::kCorrupt);
  auto other = index_from_json(index_to_json(make_id(1), std::span(batches.data(), 5)), id,
                               m.indexes[0], "x");
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().message.find("another log id"), std::string::npos);
  std::vector<BatchEntry> holed(batches.begin(), batches.begin() + 6);
  holed.erase(holed.begin() + 2);
  auto hole = index_from_json(index_to_json(id, holed), id, m.indexes[0], "x");
  ASSERT_FALSE(hole);
  EXPECT_NE(hole.error().message.find("not contiguous"), std::string::npos);
}

TEST(BackupIndex, ManifestWithIndexesIsValidated) {
  Fixture fx("idx-parse");
  Workload w;
  const auto id = make_id(64);
  auto writer = upload(fx, w, id, 8, 0, "db1", sealing_every(3));
  const Manifest good = writer->manifest();
  ASSERT_FALSE(good.indexes.empty());
  ASSERT_FALSE(good.batches.empty());
  ASSERT_TRUE(manifest_from_json(manifest_to_json(good), "m"));
  auto refused = [](const Manifest& m) {
    auto r = manifest_from_json(manifest_to_json(m), "m");
    return !r && r.error().kind == BackupErrc::kCorrupt;
  };
  Manifest overlap = good;
  overlap.indexes.back().last_frame = overlap.batches.front().first_frame;
  EXPECT_TRUE(refused(overlap));
  Manifest order = good;
  std::swap(order.indexes.front(), order.indexes.back());
  EXPECT_TRUE(refused(order));
  Manifest empty = good;
  empty.indexes.front().batches = 0;
  EXPECT_TRUE(refused(empty));
  // A version-1 manifest has no indexes (a reader of that version would miss their batches).
  std::string text = manifest_to_json(good);
  const auto at = text.find("\"version\":2");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 11, "\"version\":1");
  EXPECT_FALSE(manifest_from_json(text, "m"));
  // Without indexes a manifest is written as version 1, as before.
  Manifest plain = good;
  plain.indexes.clear();
  EXPECT_NE(manifest_to_json(plain).find("\"version\":1"), std::string::npos);
}

TEST(BackupIndex, RetentionDropsWholeIndexesWithTheirBatches) {
  Fixture fx("idx-retention");
  Workload w;
  const auto id = make_id(65);
  auto writer = upload(fx, w, id, 22, 10, "db1", sealing_every(4));
  const Manifest before = writer->manifest();
  ASSERT_EQ(before.snapshots.size(), 1u);
  const SnapshotEntry snap = before.snapshots.front();
  std::set<std::string> expect;
  std::size_t expect_batches = 0;
  for (const auto& i : before.indexes) {
    if (i.last_frame > snap.frame) continue;
    expect.insert(dir_of(id) + i.key);
    auto sealed = read_index(*fx.store, dir_of(id), id, i);
    ASSERT_TRUE(sealed) << sealed.error().message;
    for (const auto& b : *sealed) {
      expect.insert(dir_of(id) + b.key);
      ++expect_batches;
    }
  }
  ASSERT_EQ(expect_batches, 10u);  // batches 1..10, all sealed
  const std::int64_t cutoff = first_commit_after(w, snap.frame);
  auto res = apply_retention(*writer, cutoff);
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(std::set<std::string>(res->deleted_keys.begin(), res->deleted_keys.end()), expect);
  EXPECT_EQ(res->batches_deleted, expect_batches);
  EXPECT_EQ(res->snapshots_deleted, 0u);

  // The store holds exactly what the manifest and its indexes name: the sweep kept the sealed
  // batches it did not read the indexes of.
  const Manifest after = stored_manifest(fx, id);
  EXPECT_EQ(manifest_to_json(after), manifest_to_json(writer->manifest()));
  std::set<std::string> named{dir_of(id) + "manifest.json", dir_of(id) + snap.key};
  for (const auto& i : after.indexes) named.insert(dir_of(id) + i.key);
  for (const auto& b : all_batches(fx, after)) named.insert(dir_of(id) + b.key);
  EXPECT_EQ(listed_under(fx, dir_of(id)), named);
  EXPECT_EQ(after.batch_count(), 12u);
  expect_every_commit_restores(fx, w, snap.frame);

  // A leftover batch object inside a sealed index's frames (a crashed upload) is left alone by
  // the sweep, and one past everything named is removed.
  const IndexEntry& kept = after.indexes.front();
  const std::string inside = dir_of(id) + batch_key(kept.first_frame, kept.first_frame);
  const std::string beyond = dir_of(id) + batch_key(w.last_frame + 100);
  ASSERT_TRUE(fx.store->put(inside, "x"));
  ASSERT_TRUE(fx.store->put(beyond, "x"));
  auto again = apply_retention(*writer, cutoff);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->deleted_keys, std::vector<std::string>{beyond});
}

TEST(BackupIndex, WriterResumesAfterIndexesAndATail) {
  Fixture fx("idx-resume");
  Workload w;
  const auto id = make_id(66);
  BackupOptions o;
  o.index_batches = 5;  // the manifest at its default cadence: a tail after the last write
  {
    auto writer = upload(fx, w, id, 12, 0, "db1", o);
    ASSERT_TRUE(writer->flush_manifest());
    EXPECT_EQ(writer->manifest().indexes.size(), 2u);
    for (int i = 0; i < 4; ++i) {
      const Frame first = w.last_frame + 1;
      ASSERT_TRUE(writer->upload_batch(w.batch(2), first));
    }
    EXPECT_GT(writer->unflushed_batches(), 0u);
  }  // dropped without a flush, as by kill -9
  auto resumed = BackupWriter::open(*fx.store, "db1", id, o);
  ASSERT_TRUE(resumed) << resumed.error().message;
  EXPECT_EQ((*resumed)->last_frame(), w.last_frame);
  EXPECT_EQ((*resumed)->manifest().batch_count(), 16u);
  const Frame first = w.last_frame + 1;
  ASSERT_TRUE((*resumed)->upload_batch(w.batch(1), first));
  ASSERT_TRUE((*resumed)->flush_manifest());
  const Manifest m = stored_manifest(fx, id);
  EXPECT_EQ(m.batch_count(), 17u);
  EXPECT_EQ(m.indexes.size(), 3u);
  EXPECT_LT(m.batches.size(), 5u);
  expect_every_commit_restores(fx, w);
}

TEST(BackupIndex, ManifestOfAnEarlierVersionIsSealedOnItsNextWrite) {
  Fixture fx("idx-upgrade");
  Workload w;
  const auto id = make_id(67);
  {
    BackupOptions o;
    o.manifest_every_batches = 1;
    upload(fx, w, id, 12, 0, "db1", o);
  }
  EXPECT_NE(stored_text(fx, id).find("\"version\":1"), std::string::npos);
  EXPECT_EQ(stored_manifest(fx, id).batches.size(), 12u);
  auto writer = BackupWriter::open(*fx.store, "db1", id, sealing_every(5)).value();
  const Frame first = w.last_frame + 1;
  ASSERT_TRUE(writer->upload_batch(w.batch(1), first));
  const Manifest m = stored_manifest(fx, id);
  EXPECT_EQ(m.indexes.size(), 2u);
  EXPECT_EQ(m.batches.size(), 3u);
  expect_every_commit_restores(fx, w);
}

// The keys of every object under index entry `i` (itself included), and the batches' count.
std::size_t keys_under(Fixture& fx, const log::LogId& id, const IndexEntry& i,
                       std::set<std::string>& keys) {
  keys.insert(dir_of(id) + i.key);
  std::size_t batches = 0;
  if (i.level == 1) {
    auto listed = read_index(*fx.store, dir_of(id), id, i);
    EXPECT_TRUE(listed) << listed.error().message;
    if (listed)
      for (const auto& b : *listed) keys.insert(dir_of(id) + b.key), ++batches;
  } else {
    auto listed = read_index_entries(*fx.store, dir_of(id), id, i);
    EXPECT_TRUE(listed) << listed.error().message;
    if (listed)
      for (const auto& e : *listed) batches += keys_under(fx, id, e, keys);
  }
  return batches;
}

TEST(BackupIndex, IndexesOfIndexesKeepTheManifestBounded) {
  Fixture fx("idx-levels");
  Workload w;
  const auto id = make_id(69);
  BackupOptions o = sealing_every(3);
  o.index_fanout = 3;
  o.index_levels = 2;
  auto writer = upload(fx, w, id, 60, 20, "db1", o);
  const Manifest m = stored_manifest(fx, id);
  ASSERT_EQ(m.snapshots.size(), 1u);
  const SnapshotEntry snap = m.snapshots.front();
  std::size_t level2 = 0, level1 = 0;
  for (std::size_t k = 0; k < m.indexes.size(); ++k) {
    (m.indexes[k].level == 2 ? level2 : level1) += 1;
    if (k > 0) {
      EXPECT_LE(m.indexes[k].level, m.indexes[k - 1].level);
    }
    EXPECT_EQ(m.indexes[k].key, index_key(m.indexes[k].first_frame, m.indexes[k].last_frame,
                                          m.indexes[k].level));
  }
  EXPECT_GE(level2, 4u);
  EXPECT_TRUE(std::any_of(m.indexes.begin(), m.indexes.end(), [&](const IndexEntry& i) {
    return i.first_frame <= snap.frame && snap.frame < i.last_frame;
  })) << "one level-2 index straddles the snapshot";
  EXPECT_LT(level1, 3u);
  EXPECT_LT(m.batches.size(), 3u);
  EXPECT_EQ(m.batch_count(), 60u);
  ASSERT_EQ(all_batches(fx, m).size(), 60u);
  expect_every_commit_restores(fx, w);

  // A damaged index of either level is named by the restore that needs it.
  const IndexEntry& top = m.indexes.front();
  ASSERT_EQ(top.level, 2u);
  const auto below = read_index_entries(*fx.store, dir_of(id), id, top).value();
  const Frame end = below.back().last_frame;  // a commit frame before the snapshot
  ASSERT_LT(end, snap.frame);
  for (const std::string& key : {top.key, below.back().key}) {
    const auto p = fx.object_path("db1", id, key);
    flip_byte(p, fs::file_size(p) / 2);
    auto r = BackupReader::open(*fx.store, "db1").value().restore(RestoreTarget::at_frame(end),
                                                                  fx.out);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, BackupErrc::kCorrupt);
    EXPECT_NE(r.error().message.find(key), std::string::npos) << r.error().message;
    flip_byte(p, fs::file_size(p) / 2);
  }

  // Retention: whole indexes at or before the snapshot go with everything under them; one that
  // straddles it stays whole.
  std::set<std::string> expect;
  std::size_t expect_batches = 0;
  for (const auto& i : m.indexes)
    if (i.last_frame <= snap.frame) expect_batches += keys_under(fx, id, i, expect);
  ASSERT_GT(expect_batches, 0u);
  const std::int64_t cutoff = first_commit_after(w, snap.frame);
  auto res = apply_retention(*writer, cutoff);
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(std::set<std::string>(res->deleted_keys.begin(), res->deleted_keys.end()), expect);
  EXPECT_EQ(res->batches_deleted, expect_batches);
  const Manifest after = stored_manifest(fx, id);
  std::set<std::string> named{dir_of(id) + "manifest.json", dir_of(id) + snap.key};
  for (const auto& i : after.indexes) keys_under(fx, id, i, named);
  for (const auto& b : after.batches) named.insert(dir_of(id) + b.key);
  EXPECT_EQ(listed_under(fx, dir_of(id)), named);  // the sweep kept what is under an index
  EXPECT_EQ(after.batch_count(), 60u - expect_batches);
  expect_every_commit_restores(fx, w, snap.frame);
}

// Keeps the sizes of the manifests written.
class ManifestSizes final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::uint64_t writes = 0, total = 0, largest = 0;

  storage::StorageResult<void> put(std::string_view key, std::string_view bytes) override {
    if (key.ends_with("/manifest.json")) {
      ++writes;
      total += bytes.size();
      largest = std::max<std::uint64_t>(largest, bytes.size());
    }
    return inner_.put(key, bytes);
  }
};

// A long history of one-page transactions, one per batch: with sealing (two levels) the manifest
// written stays under a fixed size however many batches the lineage holds, and what all its
// writes cost grows linearly (without sealing, with the square of the history).
TEST(BackupIndex, ManifestStaysSmallOverALongHistory) {
  Fixture fx("idx-long");
  const auto id = make_id(68);
  constexpr int kBatches = 2000;
  std::map<std::uint32_t, std::uint64_t> total;  // manifest bytes written, by index_batches
  for (std::uint32_t index_batches : {1'000'000u, 20u}) {
    ManifestSizes sizes(*fx.store);
    BackupOptions o;
    o.index_batches = index_batches;
    o.index_fanout = 10;  // 100 level-1 indexes become 10 of level 2
    o.manifest_every_batches = 10;
    const std::string prefix = "long-" + std::to_string(index_batches);
    auto writer = BackupWriter::open(sizes, prefix, id, o).value();
    std::vector<std::byte> page(kPageSize);
    std::int64_t t = 1'700'000'000'000'000;
    for (int i = 0; i < kBatches; ++i) {
      std::vector<log::Transaction> txns(1);
      std::memcpy(page.data(), &i, sizeof i);
      txns[0].add_page(1, page);
      txns[0].db_size = 1;
      txns[0].commit_time_us = t += 1000;
      ASSERT_TRUE(writer->upload_batch(txns, static_cast<Frame>(i) + 1));
    }
    ASSERT_TRUE(writer->flush_manifest());
    std::printf("%d batches, index_batches %u: %llu manifest writes, %llu bytes in all, "
                "largest %llu bytes\n",
                kBatches, index_batches, static_cast<unsigned long long>(sizes.writes),
                static_cast<unsigned long long>(sizes.total),
                static_cast<unsigned long long>(sizes.largest));
    auto reader = BackupReader::open(*fx.store, prefix).value();
    for (Frame f : {Frame{1}, Frame{777}, Frame{kBatches}}) {
      auto r = reader.restore(RestoreTarget::at_frame(f), fx.out);
      ASSERT_TRUE(r) << r.error().message;
      Image want(kPageSize);
      const int i = static_cast<int>(f) - 1;
      std::memcpy(want.data(), &i, sizeof i);
      EXPECT_EQ(read_file(fx.out), want) << "frame " << f;
    }
    total[index_batches] = sizes.total;
    if (index_batches == 20u) {
      // Under 20 + 10 batch entries and 10 index entries per level, whatever the history.
      EXPECT_LT(sizes.largest, 30u * 400 + 20u * 500);
    } else {
      EXPECT_GT(sizes.largest, kBatches * 250u);  // every batch in one manifest
    }
  }
  EXPECT_LT(total[20] * 10, total[1'000'000]);
}

}  // namespace
}  // namespace quire::backup
