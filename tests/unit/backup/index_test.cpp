// Index objects (docs/formats/backup.md, "Index objects"): the writer seals old batches into
// immutable index objects so that the manifest it rewrites stays small; restore fetches only the
// indexes it needs and checks them; retention drops whole indexes with their batches.
#include <gtest/gtest.h>

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
    auto listed = read_index(*fx.store, dir_of(m.log_id), m.log_id, i);
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
  std::int64_t cutoff = 0;
  for (const auto& c : w.history)
    if (c.frame > snap.frame) {
      cutoff = c.time_us;
      break;
    }
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

}  // namespace
}  // namespace quire::backup
