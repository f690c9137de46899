// apply_retention(): deletes exactly what no point in time after the cutoff needs, keeps every such
// point restorable byte for byte, drops older lineages except the base one, and rewrites manifests
// before deleting anything.
#include <gtest/gtest.h>

#include <set>

#include "backup/backup.h"
#include "backup/ship.h"
#include "log/materialize.h"
#include "backup_test_util.h"

namespace quire::backup {
namespace {

using namespace testutil;  // NOLINT

std::string dir_of(const std::string& prefix, const log::LogId& id) {
  return prefix + "/" + log::format_log_id(id) + "/";
}

// Every data object a lineage's manifest names, as full keys.
std::set<std::string> named(const Manifest& m, const std::string& prefix) {
  std::set<std::string> out;
  for (const auto& s : m.snapshots) out.insert(dir_of(prefix, m.log_id) + s.key);
  for (const auto& b : m.batches) out.insert(dir_of(prefix, m.log_id) + b.key);
  return out;
}

std::set<std::string> listed(storage::ObjectStore& store, const std::string& under) {
  std::set<std::string> out;
  auto objects = store.list(under);
  EXPECT_TRUE(objects);
  if (objects)
    for (const auto& o : *objects) out.insert(o.key);
  return out;
}

// The index of the newest commit at or before t (history is in commit order).
std::size_t newest_at(const std::vector<Commit>& h, std::int64_t t) {
  std::size_t k = 0;
  for (std::size_t i = 0; i < h.size(); ++i)
    if (h[i].time_us <= t) k = i;
  return k;
}

// Batches of 1..3 transactions, with a snapshot after the batches listed in `snaps`.
std::unique_ptr<BackupWriter> upload_with_snapshots(Fixture& fx, Workload& w, const log::LogId& id,
                                                    int batches, std::set<int> snaps,
                                                    const std::string& prefix = "db1") {
  auto writer = BackupWriter::open(*fx.store, prefix, id).value();
  for (int i = 0; i < batches; ++i) {
    const Frame first = w.last_frame + 1;
    EXPECT_TRUE(writer->upload_batch(w.batch(1 + i % 3), first));
    if (snaps.contains(i)) {
      MemPages pages(w.image);
      EXPECT_TRUE(writer->upload_snapshot(pages, w.last_frame, w.history.back().time_us));
    }
  }
  return writer;
}

TEST(Retention, DeletesExactlyWhatNoPointAfterTheCutoffNeeds) {
  Fixture fx("ret-exact");
  Workload w;
  const auto id = make_id(41);
  auto writer = upload_with_snapshots(fx, w, id, 16, {3, 7, 11});
  const Manifest before = writer->manifest();
  ASSERT_EQ(before.snapshots.size(), 3u);
  const SnapshotEntry base = before.snapshots[1];
  // The cutoff: the first commit after the second snapshot (so that snapshot is the newest one
  // at or before it).
  std::int64_t cutoff = 0;
  for (const auto& c : w.history)
    if (c.frame > base.frame) {
      cutoff = c.time_us;
      break;
    }
  ASSERT_LT(cutoff, before.snapshots[2].commit_time_us);

  std::set<std::string> expect{dir_of("db1", id) + before.snapshots[0].key};
  std::uint64_t expect_bytes = before.snapshots[0].size;
  std::size_t expect_batches = 0;
  for (const auto& b : before.batches)
    if (b.last_frame <= base.frame) {
      expect.insert(dir_of("db1", id) + b.key);
      expect_bytes += b.size;
      ++expect_batches;
    }
  ASSERT_GT(expect_batches, 4u);

  auto res = apply_retention(*writer, cutoff);
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(std::set<std::string>(res->deleted_keys.begin(), res->deleted_keys.end()), expect);
  EXPECT_EQ(res->objects_deleted, expect.size());
  EXPECT_EQ(res->bytes_deleted, expect_bytes);
  EXPECT_EQ(res->snapshots_deleted, 1u);
  EXPECT_EQ(res->batches_deleted, expect_batches);
  EXPECT_EQ(res->lineages_deleted, 0u);
  // The store holds exactly what the manifest names, and the stored manifest is the writer's.
  const std::string mkey = dir_of("db1", id) + "manifest.json";
  auto stored = manifest_from_json(fx.store->get(mkey).value(), mkey).value();
  EXPECT_EQ(manifest_to_json(stored), manifest_to_json(writer->manifest()));
  EXPECT_EQ(stored.snapshots.front().frame, base.frame);
  auto objects = listed(*fx.store, dir_of("db1", id));
  objects.erase(mkey);
  EXPECT_EQ(objects, named(stored, "db1"));

  auto reader = BackupReader::open(*fx.store, "db1").value();
  auto range = reader.restorable_range();
  ASSERT_TRUE(range);
  EXPECT_EQ(range->first_frame, base.frame);
  EXPECT_LE(range->first_time_us, cutoff);
  EXPECT_EQ(range->last_frame, w.last_frame);
  // Every point from the cutoff on, by time and by frame.
  for (std::int64_t t = cutoff; t <= w.history.back().time_us + 1; t += 997) {
    auto r = reader.restore(RestoreTarget::at_time(t), fx.out);
    ASSERT_TRUE(r) << "time " << t << ": " << r.error().message;
    EXPECT_EQ(read_file(fx.out), w.history[newest_at(w.history, t)].image) << "time " << t;
  }
  for (const auto& c : w.history) {
    if (c.frame < base.frame) continue;
    auto r = reader.restore(RestoreTarget::at_frame(c.frame), fx.out);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(read_file(fx.out), c.image);
  }
  // Before the base snapshot: gone.
  auto early = reader.restore(RestoreTarget::at_frame(before.snapshots[0].frame), fx.out);
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().kind, BackupErrc::kOutOfRange);

  // Again: nothing more to delete. The writer goes on without resurrecting pruned entries.
  auto again = apply_retention(*writer, cutoff);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->objects_deleted, 0u);
  const Frame next = w.last_frame + 1;
  ASSERT_TRUE(writer->upload_batch(w.batch(2), next));
  ASSERT_TRUE(writer->flush_manifest());  // (else the new batch is in the tail)
  stored = manifest_from_json(fx.store->get(mkey).value(), mkey).value();
  EXPECT_EQ(stored.snapshots.front().frame, base.frame);
  EXPECT_EQ(stored.batches.back().last_frame, w.last_frame);
}

TEST(Retention, ACutoffBeforeEverySnapshotDeletesNothing) {
  Fixture fx("ret-none");
  Workload w;
  const auto id = make_id(42);
  auto writer = upload_with_snapshots(fx, w, id, 8, {4});
  const auto before = listed(*fx.store, "db1/");
  auto res = apply_retention(*writer, writer->manifest().snapshots[0].commit_time_us - 1);
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->objects_deleted, 0u);
  EXPECT_EQ(listed(*fx.store, "db1/"), before);
  auto r = restore(*fx.store, "db1", RestoreTarget::at_frame(w.history[0].frame), fx.out);
  ASSERT_TRUE(r) << r.error().message;
}

// Shipped from a real log with the periodic snapshot policy: after retention, restore at every
// commit from the cutoff on equals the log's own materialize().
TEST(Retention, AfterShippingWithPeriodicSnapshotsAgreesWithMaterialize) {
  Fixture fx("ret-log");
  const auto dir = fx.root.parent_path();
  auto l = std::move(log::ReplicationLog::create(dir / "log").value());
  Workload w;
  ShipOptions opt;
  opt.snapshot_after_bytes = 40 * kPageSize;
  opt.batch_bytes = 8 * kPageSize;
  auto writer = BackupWriter::open(*fx.store, "db1", l->log_id()).value();
  for (int round = 0; round < 8; ++round) {
    for (int i = 0; i < 6; ++i) ASSERT_TRUE(l->append(w.next()));
    auto r = ship(*l, *writer, opt);
    ASSERT_TRUE(r) << r.error().message;
  }
  const auto& snaps = writer->manifest().snapshots;
  ASSERT_GE(snaps.size(), 3u);
  const std::int64_t cutoff = (snaps[1].commit_time_us + snaps[2].commit_time_us) / 2;
  auto res = apply_retention(*writer, cutoff);
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_GT(res->objects_deleted, 0u);
  EXPECT_LE(writer->manifest().snapshots.front().commit_time_us, cutoff);
  auto reader = BackupReader::open(*fx.store, "db1").value();
  const auto from_log = dir / "from-log.db";
  for (std::size_t i = newest_at(w.history, cutoff); i < w.history.size(); ++i) {
    const std::int64_t t = std::max(w.history[i].time_us, cutoff);
    auto m = log::materialize(*l, from_log, log::MaterializeTarget{log::Frame(-1), t});
    ASSERT_TRUE(m) << m.error().message;
    auto r = reader.restore(RestoreTarget::at_time(t), fx.out);
    ASSERT_TRUE(r) << "time " << t << ": " << r.error().message;
    EXPECT_EQ(r->frame, m->frame);
    EXPECT_EQ(read_file(fx.out), read_file(from_log)) << "time " << t;
  }
}

// Lineages A, B, C (current), one after the other in time.
struct ThreeLineages {
  Fixture fx{"ret-lineages"};
  log::LogId a = make_id(51), b = make_id(52), c = make_id(53);
  Workload wa, wb, wc;
  std::unique_ptr<BackupWriter> writer;  // C's

  explicit ThreeLineages(std::int64_t c_start_offset_us) {
    upload_with_snapshots(fx, wa, a, 6, {2});
    wb.image = wa.image;
    wb.time_us = wa.time_us + 1'000'000;
    start_from_snapshot(wb, b, 5);
    wc.image = wb.image;
    wc.time_us = wb.time_us + c_start_offset_us;
    writer = start_from_snapshot(wc, c, 5);
  }
  std::unique_ptr<BackupWriter> start_from_snapshot(Workload& w, const log::LogId& id, int batches) {
    auto wr = BackupWriter::open(*fx.store, "db1", id).value();
    MemPages pages(w.image);
    EXPECT_TRUE(wr->upload_snapshot(pages, 1, w.time_us));
    w.last_frame = 1;
    w.history.push_back({1, w.time_us, w.image});
    for (int i = 0; i < batches; ++i) {
      const Frame first = w.last_frame + 1;
      EXPECT_TRUE(wr->upload_batch(w.batch(2), first));
    }
    return wr;
  }
  std::vector<log::LogId> lineage_ids() {
    std::vector<log::LogId> out;
    auto reader = BackupReader::open(*fx.store, "db1");
    EXPECT_TRUE(reader);
    if (reader)
      for (const auto& m : reader->lineages()) out.push_back(m.log_id);
    return out;
  }
};

TEST(Retention, DropsOlderLineagesButKeepsTheOneThatHoldsTheCutoff) {
  ThreeLineages t(1'000'000);  // C starts a second after B's last commit
  auto& fx = t.fx;
  const auto a_objects = listed(*fx.store, dir_of("db1", t.a));
  const auto b_objects = listed(*fx.store, dir_of("db1", t.b));
  // Cutoff between B's last commit and C's first: the state at the cutoff is B's last, so B
  // stays; A goes entirely.
  const std::int64_t cutoff1 = t.wb.history.back().time_us + 10;
  auto r1 = apply_retention(*t.writer, cutoff1);
  ASSERT_TRUE(r1) << r1.error().message;
  EXPECT_EQ(r1->lineages_deleted, 1u);
  EXPECT_EQ(t.lineage_ids(), (std::vector<log::LogId>{t.b, t.c}));
  EXPECT_TRUE(listed(*fx.store, dir_of("db1", t.a)).empty());
  EXPECT_EQ(listed(*fx.store, dir_of("db1", t.b)), b_objects);
  std::set<std::string> deleted(r1->deleted_keys.begin(), r1->deleted_keys.end());
  EXPECT_EQ(deleted, a_objects);
  auto at_cutoff = restore(*fx.store, "db1", RestoreTarget::at_time(cutoff1), fx.out);
  ASSERT_TRUE(at_cutoff) << at_cutoff.error().message;
  EXPECT_EQ(at_cutoff->log_id, t.b);
  EXPECT_EQ(read_file(fx.out), t.wb.image);
  for (const auto& c : t.wc.history) {
    auto r = restore(*fx.store, "db1", RestoreTarget::at_time(c.time_us), fx.out);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->log_id, t.c);
    EXPECT_EQ(read_file(fx.out), t.wc.history[newest_at(t.wc.history, c.time_us)].image);
  }
  // Once the cutoff passes C's first commit, B is no longer needed.
  auto r2 = apply_retention(*t.writer, t.wc.history.front().time_us);
  ASSERT_TRUE(r2) << r2.error().message;
  EXPECT_EQ(r2->lineages_deleted, 1u);
  EXPECT_EQ(t.lineage_ids(), std::vector<log::LogId>{t.c});
  EXPECT_TRUE(listed(*fx.store, dir_of("db1", t.b)).empty());
  auto latest = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_TRUE(latest) << latest.error().message;
  EXPECT_EQ(read_file(fx.out), t.wc.image);
}

TEST(Retention, KeepsAnOlderLineageWithCommitsAfterTheCutoff) {
  ThreeLineages t(-3'000);  // C starts a few commits before B's last one
  const std::int64_t cutoff = t.wc.history.front().time_us + 1;
  ASSERT_GT(t.wb.history.back().time_us, cutoff);
  auto r = apply_retention(*t.writer, cutoff);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(t.lineage_ids(), (std::vector<log::LogId>{t.b, t.c}));
  RestoreTarget named = RestoreTarget::latest();
  named.log_id = t.b;
  auto rb = restore(*t.fx.store, "db1", named, t.fx.out);
  ASSERT_TRUE(rb) << rb.error().message;
  EXPECT_EQ(read_file(t.fx.out), t.wb.image);
}

// The base lineage (older than the current one) is pruned like the current one: what comes
// before its newest snapshot at or before the cutoff goes, its manifest is rewritten.
TEST(Retention, PrunesTheOlderBaseLineageToo) {
  Fixture fx("ret-base-prune");
  Workload wb;
  const auto b = make_id(61), c = make_id(62);
  auto old_writer = upload_with_snapshots(fx, wb, b, 9, {2, 5});
  const Manifest before = old_writer->manifest();
  old_writer.reset();
  Workload wc;
  wc.image = wb.image;
  wc.time_us = wb.time_us + 1'000'000;
  auto writer = BackupWriter::open(*fx.store, "db1", c).value();
  MemPages pages(wc.image);
  const std::int64_t c_start = wc.time_us;
  ASSERT_TRUE(writer->upload_snapshot(pages, 1, c_start));
  wc.last_frame = 1;
  ASSERT_TRUE(writer->upload_batch(wc.batch(3), 2));
  const std::int64_t cutoff = before.snapshots[1].commit_time_us;  // before C began
  auto res = apply_retention(*writer, cutoff);
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->lineages_deleted, 0u);
  EXPECT_EQ(res->snapshots_deleted, 1u);
  std::size_t batches = 0;
  for (const auto& e : before.batches) batches += e.last_frame <= before.snapshots[1].frame;
  EXPECT_EQ(res->batches_deleted, batches);
  auto reader = BackupReader::open(*fx.store, "db1").value();
  ASSERT_EQ(reader.lineages().size(), 2u);
  EXPECT_EQ(reader.lineages()[0].snapshots.front().frame, before.snapshots[1].frame);
  auto listed_b = listed(*fx.store, dir_of("db1", b));
  listed_b.erase(dir_of("db1", b) + "manifest.json");
  EXPECT_EQ(listed_b, named(reader.lineages()[0], "db1"));
  for (std::int64_t t = cutoff; t < c_start; t += 7919) {
    auto r = reader.restore(RestoreTarget::at_time(t), fx.out);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->log_id, b);
    EXPECT_EQ(read_file(fx.out), wb.history[newest_at(wb.history, t)].image) << t;
  }
}

// Records every put and remove; optionally fails remove_many.
class RecordingStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::vector<std::string> ops;
  bool fail_removes = false;

  storage::StorageResult<void> put(std::string_view key, std::string_view bytes) override {
    ops.push_back("put " + std::string(key));
    return inner_.put(key, bytes);
  }
  storage::StorageResult<void> remove(std::string_view key) override {
    ops.push_back("remove " + std::string(key));
    if (fail_removes) return unexpected(injected());
    return inner_.remove(key);
  }
  storage::StorageResult<void> remove_many(std::span<const std::string> keys) override {
    for (const auto& k : keys) ops.push_back("remove " + k);
    if (fail_removes) return unexpected(injected());
    return inner_.remove_many(keys);
  }
  storage::StorageResult<std::unique_ptr<storage::MultipartWriter>> open_writer(
      std::string_view key) override {
    ops.push_back("put " + std::string(key));
    return inner_.open_writer(key);
  }

 private:
  static storage::StorageError injected() {
    return storage::storage_error(storage::StorageErrc::kTransient, "injected");
  }
};

// True when no put (manifest, lineages.json) follows a remove in `ops`.
bool puts_before_removes(const std::vector<std::string>& ops) {
  bool removed = false;
  for (const auto& op : ops) {
    if (op.starts_with("remove ")) removed = true;
    else if (removed) return false;
  }
  return true;
}

TEST(Retention, RewritesManifestsBeforeDeletingAndSurvivesAFailureInBetween) {
  ThreeLineages t(1'000'000);
  RecordingStore rec(*t.fx.store);
  // A writer for C on the recording store, and an unreferenced leftover in C's lineage.
  auto writer = BackupWriter::open(rec, "db1", t.c).value();
  const Frame next = t.wc.last_frame + 1;
  ASSERT_TRUE(writer->upload_batch(t.wc.batch(2), next));
  MemPages pages(t.wc.image);
  ASSERT_TRUE(writer->upload_snapshot(pages, t.wc.last_frame, t.wc.history.back().time_us));
  const std::string stray = dir_of("db1", t.c) + batch_key(900, 901);
  ASSERT_TRUE(rec.put(stray, "leftover of a failed upload"));
  const std::int64_t cutoff = t.wc.history.back().time_us;

  // Removes fail: the manifests and lineages.json are already rewritten, nothing is missing,
  // and every point from the cutoff on still restores.
  rec.ops.clear();
  rec.fail_removes = true;
  auto failed = apply_retention(*writer, cutoff);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().kind, BackupErrc::kStorage);
  EXPECT_TRUE(puts_before_removes(rec.ops));
  EXPECT_TRUE(std::any_of(rec.ops.begin(), rec.ops.end(),
                          [](const std::string& op) { return op.ends_with("lineages.json"); }));
  EXPECT_EQ(t.lineage_ids(), std::vector<log::LogId>{t.c});
  auto reader = BackupReader::open(*t.fx.store, "db1").value();
  for (const auto& m : reader.lineages())
    for (const auto& k : named(m, "db1")) EXPECT_TRUE(t.fx.store->head(k)) << k;
  auto r = reader.restore(RestoreTarget::at_time(cutoff), t.fx.out);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(read_file(t.fx.out), t.wc.image);

  // Then it works: the leftovers of the dropped lineages and of the failed upload go.
  rec.ops.clear();
  rec.fail_removes = false;
  auto ok = apply_retention(*writer, cutoff);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_TRUE(puts_before_removes(rec.ops));
  std::set<std::string> deleted(ok->deleted_keys.begin(), ok->deleted_keys.end());
  EXPECT_TRUE(deleted.contains(stray));
  auto objects = listed(*t.fx.store, "db1/");
  std::set<std::string> want = named(writer->manifest(), "db1");
  want.insert("db1/lineages.json");
  want.insert(dir_of("db1", t.c) + "manifest.json");
  EXPECT_EQ(objects, want);
  auto latest = restore(*t.fx.store, "db1", RestoreTarget::latest(), t.fx.out);
  ASSERT_TRUE(latest) << latest.error().message;
  EXPECT_EQ(read_file(t.fx.out), t.wc.image);
}

}  // namespace
}  // namespace quire::backup
