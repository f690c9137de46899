// The manifest cadence (docs/formats/backup.md, "Manifest cadence"): a writer rewrites
// manifest.json only every manifest_every_batches batches, and readers, a resuming writer and
// retention follow the tail (the batches after the stored manifest's last frame) under their
// predictable keys, without a LIST: no gap, no duplicate, every object checked, a damaged tail
// object reported by key.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>

#include "backup/backup.h"
#include "backup/object_format.h"
#include "backup_test_util.h"
#include "log/crc32c.h"

namespace quire::backup {
namespace {

using namespace testutil;  // NOLINT
using log::Frame;

std::string dir_of(const log::LogId& id) { return "db1/" + log::format_log_id(id) + "/"; }

std::string read_file_string(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_file_string(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(s.data(), static_cast<std::streamsize>(s.size()));
}

Manifest stored_manifest(Fixture& fx, const log::LogId& id) {
  const std::string key = dir_of(id) + "manifest.json";
  return manifest_from_json(fx.store->get(key).value(), key).value();
}

// A batch as uploaded, kept so that it can be uploaded again.
struct Sent {
  Frame first;
  std::vector<log::Transaction> txns;
};

std::vector<Sent> send(BackupWriter& writer, Workload& w, int n) {
  std::vector<Sent> out;
  for (int i = 0; i < n; ++i) {
    Sent s{w.last_frame + 1, w.batch(1 + i % 3)};
    auto r = writer.upload_batch(s.txns, s.first);
    EXPECT_TRUE(r) << r.error().message;
    out.push_back(std::move(s));
  }
  return out;
}

// Counts the requests that reach a store.
class CountingStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::map<std::string, int> calls;

  storage::StorageResult<void> put(std::string_view key, std::string_view bytes) override {
    ++calls["put"];
    return inner_.put(key, bytes);
  }
  storage::StorageResult<std::string> get(std::string_view key) override {
    ++calls["get"];
    return inner_.get(key);
  }
  storage::StorageResult<std::string> get_range(std::string_view key, std::uint64_t offset,
                                                std::uint64_t length) override {
    ++calls["get_range"];
    return inner_.get_range(key, offset, length);
  }
  storage::StorageResult<storage::ObjectInfo> head(std::string_view key) override {
    ++calls["head"];
    return inner_.head(key);
  }
  storage::StorageResult<std::vector<storage::ObjectInfo>> list(std::string_view prefix) override {
    ++calls["list"];
    return inner_.list(prefix);
  }
  storage::StorageResult<std::unique_ptr<storage::MultipartWriter>> open_writer(
      std::string_view key) override {
    ++calls["put"];
    return inner_.open_writer(key);
  }
};

TEST(BackupTail, WriterRewritesTheManifestEveryNBatchesAndFlushesOnRequest) {
  Fixture fx("tail-cadence");
  Workload w;
  const auto id = make_id(40);
  BackupOptions o;
  o.manifest_every_batches = 5;
  o.manifest_every_us = 3'600'000'000;
  auto writer = BackupWriter::open(*fx.store, "db1", id, o).value();
  send(*writer, w, 1);  // a lineage's first upload names it: manifest and lineages.json
  EXPECT_EQ(stored_manifest(fx, id).batches.size(), 1u);
  EXPECT_EQ(writer->objects_written(), 3u);
  send(*writer, w, 4);
  EXPECT_EQ(stored_manifest(fx, id).batches.size(), 1u);
  EXPECT_EQ(writer->unflushed_batches(), 4u);
  EXPECT_EQ(writer->objects_written(), 7u);
  send(*writer, w, 1);  // the fifth since the last write
  EXPECT_EQ(stored_manifest(fx, id).batches.size(), 6u);
  EXPECT_EQ(writer->unflushed_batches(), 0u);
  send(*writer, w, 2);
  ASSERT_TRUE(writer->flush_manifest());
  EXPECT_EQ(manifest_to_json(stored_manifest(fx, id)), manifest_to_json(writer->manifest()));
  const auto objects = writer->objects_written();
  ASSERT_TRUE(writer->flush_manifest());  // up to date: no request
  EXPECT_EQ(writer->objects_written(), objects);
  // New batches are under keys predictable from their first frame.
  for (const auto& b : writer->manifest().batches) EXPECT_EQ(b.key, batch_key(b.first_frame));

  // manifest_every_us = 0: every batch (the time rule).
  BackupOptions every;
  every.manifest_every_us = 0;
  auto eager = BackupWriter::open(*fx.store, "db1", id, every).value();
  send(*eager, w, 3);
  EXPECT_EQ(eager->unflushed_batches(), 0u);
  EXPECT_EQ(stored_manifest(fx, id).last_frame(), w.last_frame);
  BackupOptions zero;
  zero.manifest_every_batches = 0;
  EXPECT_FALSE(BackupWriter::open(*fx.store, "db1", id, zero));
}

// Objects written per N batches: N + about N/30 + N/250 (was 2N: a manifest after every batch).
TEST(BackupTail, ObjectsWrittenPerBatchesIsAboutOnePerBatch) {
  constexpr int kBatches = 300;
  std::uint64_t objects[2] = {0, 0};
  for (int pass = 0; pass < 2; ++pass) {
    Fixture fx(pass == 0 ? "tail-count-old" : "tail-count-new");
    Workload w;
    BackupOptions o;
    o.manifest_every_us = 3'600'000'000;  // the batch rule only, so the count is exact
    if (pass == 0) o.manifest_every_batches = 1;  // the previous behaviour
    auto writer = BackupWriter::open(*fx.store, "db1", make_id(41), o).value();
    for (int i = 0; i < kBatches; ++i) {
      const Frame first = w.last_frame + 1;
      ASSERT_TRUE(writer->upload_batch(w.batch(1), first));
    }
    ASSERT_TRUE(writer->flush_manifest());
    objects[pass] = writer->objects_written();
  }
  std::printf("objects written for %d batches: %llu with a manifest per batch, %llu now\n",
              kBatches, static_cast<unsigned long long>(objects[0]),
              static_cast<unsigned long long>(objects[1]));
  // Batches, lineages.json, manifests, one index object (250 batches sealed).
  const std::uint64_t indexes = kBatches / BackupOptions{}.index_batches;
  EXPECT_EQ(indexes, 1u);
  EXPECT_EQ(objects[0], kBatches + 1u + kBatches + indexes);
  // Manifest writes after batches 1, 31, ..., 271, and the flush.
  EXPECT_EQ(objects[1], kBatches + 1u + kBatches / 30 + 1 + indexes);
}

TEST(BackupTail, WriterResumesAfterACrashWithATailWithoutGapOrDuplicate) {
  Fixture fx("tail-resume");
  Workload w;
  const auto id = make_id(42);
  std::vector<BatchEntry> before;
  {
    auto writer = BackupWriter::open(*fx.store, "db1", id).value();
    send(*writer, w, 10);
    ASSERT_EQ(writer->unflushed_batches(), 9u);
    before = writer->manifest().batches;
    // kill -9: no flush_manifest().
  }
  ASSERT_EQ(stored_manifest(fx, id).batches.size(), 1u);
  auto resumed = BackupWriter::open(*fx.store, "db1", id).value();
  EXPECT_EQ(resumed->last_frame(), w.last_frame);
  ASSERT_EQ(resumed->manifest().batches.size(), before.size());
  for (std::size_t i = 0; i < before.size(); ++i) {
    const auto& a = before[i];
    const auto& b = resumed->manifest().batches[i];
    EXPECT_EQ(manifest_to_json(Manifest{id, {}, {}, {a}}),
              manifest_to_json(Manifest{id, {}, {}, {b}}))
        << "batch " << i;
  }
  EXPECT_EQ(resumed->unflushed_batches(), 9u);
  // Anything but the frame after the tail is refused; that one continues it.
  auto dup = resumed->upload_batch(w.batch(1), before.back().first_frame);
  EXPECT_FALSE(dup);
  w.history.pop_back();
  w.image = w.history.back().image;
  w.last_frame = w.history.back().frame;
  send(*resumed, w, 2);
  // The first upload after a resume rewrites the manifest with the adopted tail.
  const Manifest stored = stored_manifest(fx, id);
  EXPECT_EQ(stored.batches.size(), 11u);
  for (std::size_t i = 1; i < stored.batches.size(); ++i)
    EXPECT_EQ(stored.batches[i].first_frame, stored.batches[i - 1].last_frame + 1);

  auto latest = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_TRUE(latest) << latest.error().message;
  EXPECT_EQ(latest->frame, w.last_frame);
  EXPECT_EQ(latest->txns_applied, w.history.size());
  EXPECT_EQ(read_file(fx.out), w.image);
}

TEST(BackupTail, RestoresLatestTimeAndFrameThroughATailWithoutListing) {
  Fixture fx("tail-restore");
  Workload w;
  const auto id = make_id(43);
  auto writer = upload(fx, w, id, 14, 4);  // a snapshot writes the manifest; 10 batches follow
  ASSERT_EQ(writer->unflushed_batches(), 10u);
  EXPECT_LT(stored_manifest(fx, id).last_frame(), w.last_frame);

  CountingStore counting(*fx.store);
  auto reader = BackupReader::open(counting, "db1").value();
  // lineages.json, the manifest, then a ranged GET per tail object and one "not found".
  EXPECT_EQ(counting.calls["get"], 2);
  EXPECT_EQ(counting.calls["get_range"], 11);
  EXPECT_EQ(reader.lineages().back().last_frame(), w.last_frame);
  auto range = reader.restorable_range();
  ASSERT_TRUE(range) << range.error().message;
  EXPECT_EQ(range->last_frame, w.last_frame);
  EXPECT_EQ(range->last_time_us, w.history.back().time_us);

  auto latest = reader.restore(RestoreTarget::latest(), fx.out);
  ASSERT_TRUE(latest) << latest.error().message;
  EXPECT_EQ(latest->frame, w.last_frame);
  EXPECT_EQ(read_file(fx.out), w.image);
  for (const auto& c : w.history) {
    if (c.frame < range->first_frame) continue;
    auto r = reader.restore(RestoreTarget::at_frame(c.frame), fx.out);
    ASSERT_TRUE(r) << "frame " << c.frame << ": " << r.error().message;
    EXPECT_EQ(read_file(fx.out), c.image) << "frame " << c.frame;
    auto t = reader.restore(RestoreTarget::at_time(c.time_us), fx.out);
    ASSERT_TRUE(t) << "time " << c.time_us << ": " << t.error().message;
    EXPECT_EQ(t->commit_time_us, c.time_us);
  }
  EXPECT_EQ(counting.calls["list"], 0);
}

TEST(BackupTail, CorruptedTailObjectIsReportedByKeyNeverTakenAsTheEnd) {
  Fixture fx("tail-corrupt");
  Workload w;
  const auto id = make_id(44);
  auto writer = BackupWriter::open(*fx.store, "db1", id).value();
  auto sent = send(*writer, w, 8);
  ASSERT_EQ(writer->unflushed_batches(), 7u);
  const BatchEntry bad = writer->manifest().batches[4];  // in the tail
  const BatchEntry good = writer->manifest().batches[3];
  const fs::path p = fx.object_path("db1", id, bad.key);

  // A damaged header (checksum), then a consistent header naming other frames.
  for (int variant = 0; variant < 2; ++variant) {
    if (variant == 0) {
      flip_byte(p, 44);
    } else {
      flip_byte(p, 44);  // undo
      std::string bytes = read_file_string(p);
      auto* h = reinterpret_cast<std::uint8_t*>(bytes.data());
      detail::put_u64(h + 32, bad.first_frame + 1);
      detail::put_u32(h + 124, log::crc32c(0, h, 124));
      write_file_string(p, bytes);
    }
    auto reader = BackupReader::open(*fx.store, "db1");
    ASSERT_TRUE(reader) << reader.error().message;
    auto range = reader->restorable_range();
    ASSERT_FALSE(range);
    EXPECT_EQ(range.error().kind, BackupErrc::kCorrupt);
    EXPECT_NE(range.error().message.find(bad.key), std::string::npos) << range.error().message;
    auto latest = reader->restore(RestoreTarget::latest(), fx.out);
    ASSERT_FALSE(latest);
    EXPECT_EQ(latest.error().kind, BackupErrc::kCorrupt);
    EXPECT_NE(latest.error().message.find(bad.key), std::string::npos);
    auto past = reader->restore(RestoreTarget::at_frame(bad.first_frame + 1), fx.out);
    ASSERT_FALSE(past);
    EXPECT_NE(past.error().message.find(bad.key), std::string::npos);
    auto late = reader->restore(RestoreTarget::at_time(good.last_commit_time_us), fx.out);
    ASSERT_FALSE(late);  // a commit at that very time could be in the damaged object
    // Points before it need nothing from it.
    auto early = reader->restore(RestoreTarget::at_frame(good.last_frame), fx.out);
    ASSERT_TRUE(early) << early.error().message;
    EXPECT_EQ(early->frame, good.last_frame);
    const std::int64_t t = writer->manifest().batches[0].last_commit_time_us;
    ASSERT_LT(t, good.last_commit_time_us);
    auto then = reader->restore(RestoreTarget::at_time(t), fx.out);
    ASSERT_TRUE(then) << then.error().message;
  }

  // Damage in the body: the header is fine, so the chain goes on; the trailer's SHA-256 (or
  // zstd) catches it when the object is read.
  write_file_string(p, std::string());
  {
    // (restore the object from the sent transactions: a fresh writer resumes before it)
    auto resumed = BackupWriter::open(*fx.store, "db1", id).value();
    EXPECT_EQ(resumed->last_frame(), good.last_frame);  // stops before the damaged object
    for (std::size_t i = 4; i < sent.size(); ++i)
      ASSERT_TRUE(resumed->upload_batch(sent[i].txns, sent[i].first));
  }
  auto healed = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_TRUE(healed) << healed.error().message;
  EXPECT_EQ(read_file(fx.out), w.image);
  const BatchEntry tail_bad =
      BackupReader::open(*fx.store, "db1").value().lineages().back().batches.back();
  ASSERT_TRUE(tail_bad.sha256.empty());  // still in the tail of the stored manifest
  const fs::path q = fx.object_path("db1", id, tail_bad.key);
  flip_byte(q, detail::kHeaderSize + 20);
  auto body = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_FALSE(body);
  EXPECT_EQ(body.error().kind, BackupErrc::kCorrupt);
  EXPECT_NE(body.error().message.find(tail_bad.key), std::string::npos) << body.error().message;
}

// A batch's content as docs/formats/backup.md lays it out ("Batch content").
std::string batch_content(const Sent& s) {
  std::string out;
  Frame f = s.first;
  for (const auto& t : s.txns) {
    std::uint8_t h[detail::kTxnHeaderSize];
    detail::put_u64(h, f);
    detail::put_u32(h + 8, static_cast<std::uint32_t>(t.page_count()));
    detail::put_u32(h + 12, t.db_size);
    detail::put_u64(h + 16, static_cast<std::uint64_t>(t.commit_time_us));
    out.append(reinterpret_cast<const char*>(h), sizeof h);
    for (std::size_t i = 0; i < t.page_count(); ++i) {
      std::uint8_t pgno[4];
      detail::put_u32(pgno, t.pgnos[i]);
      out.append(reinterpret_cast<const char*>(pgno), 4);
      out.append(reinterpret_cast<const char*>(t.page(i).data()), t.page(i).size());
    }
    f += t.page_count();
  }
  return out;
}

// Objects carry zstd's content checksum in place of a SHA-256 of their content
// (kFlagZstdChecksum): damage anywhere in a tail object's payload (the pages are random, so
// zstd stores them as they are and only the checksum can see a changed byte) is reported, and
// so is an object that claims the checksum but whose frame has none.
TEST(BackupTail, ZstdChecksumGuardsTheContentOfTailObjects) {
  Fixture fx("tail-zstd-checksum");
  Workload w;
  const auto id = make_id(46);
  auto writer = BackupWriter::open(*fx.store, "db1", id).value();
  send(*writer, w, 6);
  const BatchEntry bad = writer->manifest().batches[4];
  ASSERT_TRUE(stored_manifest(fx, id).batches.size() < 5u);  // in the tail
  const fs::path p = fx.object_path("db1", id, bad.key);
  const std::string original = read_file_string(p);
  std::string why;
  const auto h = detail::decode_header(reinterpret_cast<const std::uint8_t*>(original.data()), why);
  ASSERT_TRUE(h) << why;
  EXPECT_TRUE(h->zstd_checksum());
  const auto t = detail::decode_trailer(reinterpret_cast<const std::uint8_t*>(original.data()) +
                                            original.size() - detail::kTrailerSize,
                                        why);
  ASSERT_TRUE(t) << why;
  EXPECT_EQ(t->content_sha256, (std::array<std::uint8_t, 32>{}));  // not computed any more

  auto expect_corrupt = [&](const std::string& what) {
    auto r = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
    ASSERT_FALSE(r) << what;
    EXPECT_EQ(r.error().kind, BackupErrc::kCorrupt) << what << ": " << r.error().message;
    EXPECT_NE(r.error().message.find(bad.key), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find(what), std::string::npos) << r.error().message;
  };
  // A byte in the middle of the payload: a page's byte, stored raw.
  const std::size_t payload_len = original.size() - detail::kHeaderSize - detail::kTrailerSize;
  flip_byte(p, detail::kHeaderSize + payload_len / 2);
  expect_corrupt("checksum");
  write_file_string(p, original);
  // The frame header without its checksum flag (bit 2 of the descriptor after the magic).
  std::string bytes = read_file_string(p);
  bytes[detail::kHeaderSize + 4] = static_cast<char>(original[detail::kHeaderSize + 4] & ~0x04);
  write_file_string(p, bytes);
  expect_corrupt("without its content checksum");
  write_file_string(p, original);
  auto ok = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(read_file(fx.out), w.image);
}

// Objects written before kFlagZstdChecksum (flag clear, a SHA-256 of the content in the
// trailer) still restore, and their content SHA-256 is still compared for tail objects.
TEST(BackupTail, OlderObjectsWithAContentSha256StillRestoreAndAreChecked) {
  Fixture fx("tail-content-sha");
  Workload w;
  const auto id = make_id(47);
  auto writer = BackupWriter::open(*fx.store, "db1", id).value();
  auto sent = send(*writer, w, 6);
  const BatchEntry old = writer->manifest().batches[4];
  ASSERT_TRUE(stored_manifest(fx, id).batches.size() < 5u);  // in the tail
  const fs::path p = fx.object_path("db1", id, old.key);
  std::string bytes = read_file_string(p);
  auto* d = reinterpret_cast<std::uint8_t*>(bytes.data());
  // As the earlier writer wrote it: flags 0, the content's SHA-256 in the trailer.
  detail::put_u32(d + 72, 0);
  detail::put_u32(d + 124, log::crc32c(0, d, 124));
  const std::string content = batch_content(sent[4]);
  detail::Sha256 sha;
  sha.update(content.data(), content.size());
  std::uint8_t* trailer = d + bytes.size() - detail::kTrailerSize;
  detail::encode_trailer({content.size(), sha.finish()}, trailer);
  write_file_string(p, bytes);
  auto ok = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(read_file(fx.out), w.image);

  trailer[20] ^= 1;  // a wrong SHA-256 under a valid trailer CRC
  detail::put_u32(trailer + 60, log::crc32c(0, trailer, 60));
  write_file_string(p, bytes);
  auto bad = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, BackupErrc::kCorrupt);
  EXPECT_NE(bad.error().message.find("content SHA-256 mismatch"), std::string::npos)
      << bad.error().message;
}

TEST(BackupTail, MissingTailObjectEndsTheChainAndTheWriterFillsIt) {
  Fixture fx("tail-missing");
  Workload w;
  const auto id = make_id(45);
  auto writer = BackupWriter::open(*fx.store, "db1", id).value();
  auto sent = send(*writer, w, 8);
  const auto batches = writer->manifest().batches;
  writer.reset();  // kill -9
  // The object after batch 2 vanished (the writer never leaves such a hole: it uploads in order
  // and an upload that failed is retried at the same key). Without a LIST nothing can know that
  // batches 4.. exist: restore stops at the end of the unbroken chain.
  const fs::path p = fx.object_path("db1", id, batches[3].key);
  ASSERT_TRUE(fs::remove(p));
  auto range = restorable_range(*fx.store, "db1");
  ASSERT_TRUE(range) << range.error().message;
  EXPECT_EQ(range->last_frame, batches[2].last_frame);
  auto latest = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_TRUE(latest) << latest.error().message;
  EXPECT_EQ(latest->frame, batches[2].last_frame);
  std::size_t at = 0;
  while (w.history[at].frame != batches[2].last_frame) ++at;
  EXPECT_EQ(read_file(fx.out), w.history[at].image);

  // A resuming writer continues after the same chain, so the hole is filled from the log.
  auto resumed = BackupWriter::open(*fx.store, "db1", id).value();
  EXPECT_EQ(resumed->last_frame(), batches[2].last_frame);
  for (std::size_t i = 3; i < sent.size(); ++i)
    ASSERT_TRUE(resumed->upload_batch(sent[i].txns, sent[i].first));
  auto full = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_TRUE(full) << full.error().message;
  EXPECT_EQ(full->frame, w.last_frame);
  EXPECT_EQ(read_file(fx.out), w.image);
}

TEST(BackupTail, RetentionKeepsTheTailAndWritesItIntoTheManifest) {
  Fixture fx("tail-retention");
  Workload w;
  const auto id = make_id(46);
  auto writer = upload(fx, w, id, 6, 3);  // batches, snapshot, then a tail of 3
  const std::int64_t cutoff = writer->manifest().snapshots[0].commit_time_us + 1;
  send(*writer, w, 4);
  ASSERT_EQ(writer->unflushed_batches(), 7u);
  writer.reset();  // kill -9: the tail exists only in the store
  auto resumed = BackupWriter::open(*fx.store, "db1", id).value();
  ASSERT_EQ(resumed->last_frame(), w.last_frame);
  auto res = apply_retention(*resumed, cutoff);
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->snapshots_deleted, 0u);
  EXPECT_EQ(res->batches_deleted, 3u);  // those before the snapshot, no tail batch
  for (const auto& k : res->deleted_keys) EXPECT_EQ(k.find("manifest"), std::string::npos);
  const Manifest stored = stored_manifest(fx, id);
  EXPECT_EQ(manifest_to_json(stored), manifest_to_json(resumed->manifest()));
  EXPECT_EQ(stored.last_frame(), w.last_frame);
  for (const auto& b : stored.batches)
    EXPECT_TRUE(fs::exists(fx.object_path("db1", id, b.key))) << b.key;
  auto latest = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_TRUE(latest) << latest.error().message;
  EXPECT_EQ(read_file(fx.out), w.image);
}

TEST(BackupTail, OlderLineagesTailIsFollowedAndFoldedByRetention) {
  Fixture fx("tail-old-lineage");
  Workload wa;
  const auto a = make_id(47), b = make_id(48);
  auto wa_writer = BackupWriter::open(*fx.store, "db1", a).value();
  send(*wa_writer, wa, 6);
  wa_writer.reset();  // the server died, then the database got a new log
  // (b's commits start inside a's time span, so that only a's tail reaches the cutoff below)
  Workload wb;
  wb.time_us = wa.history.front().time_us + 1;
  auto wb_writer = BackupWriter::open(*fx.store, "db1", b).value();
  send(*wb_writer, wb, 2);

  auto reader = BackupReader::open(*fx.store, "db1").value();
  ASSERT_EQ(reader.lineages().size(), 2u);
  EXPECT_EQ(reader.lineages().front().last_frame(), wa.last_frame);
  const RestoreTarget a_latest{RestoreTarget::Kind::kLatest, 0, 0, a};
  auto old = reader.restore(a_latest, fx.out);
  ASSERT_TRUE(old) << old.error().message;
  EXPECT_EQ(read_file(fx.out), wa.image);

  // Retention at a's last commit: b is the base lineage; a is older and its stored manifest
  // ends before the cutoff, but its tail does not: a stays, with its tail written into its
  // manifest.
  const std::string key = "db1/" + log::format_log_id(a) + "/manifest.json";
  const Manifest stored_a = manifest_from_json(fx.store->get(key).value(), key).value();
  ASSERT_LT(stored_a.batches.back().last_commit_time_us, wa.history.back().time_us);
  auto res = apply_retention(*wb_writer, wa.history.back().time_us);
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->lineages_deleted, 0u);
  EXPECT_EQ(res->objects_deleted, 0u);
  const Manifest folded = manifest_from_json(fx.store->get(key).value(), key).value();
  EXPECT_EQ(folded.last_frame(), wa.last_frame);
  for (const auto& e : folded.batches) EXPECT_FALSE(e.sha256.empty());
  auto again = restore(*fx.store, "db1", a_latest, fx.out);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(read_file(fx.out), wa.image);
}

TEST(BackupTail, BatchesUnderEarlierFirstLastKeysStayReadable) {
  Fixture fx("tail-oldkeys");
  Workload w;
  const auto id = make_id(49);
  auto writer = upload(fx, w, id, 5, 0);
  ASSERT_TRUE(writer->flush_manifest());
  // Rename every object to the earlier <first>-<last> form, as a previous version wrote them.
  Manifest m = stored_manifest(fx, id);
  for (auto& b : m.batches) {
    const std::string old_key = batch_key(b.first_frame, b.last_frame);
    fs::rename(fx.object_path("db1", id, b.key), fx.object_path("db1", id, old_key));
    b.key = old_key;
  }
  ASSERT_TRUE(fx.store->put(dir_of(id) + "manifest.json", manifest_to_json(m)));
  writer.reset();
  auto resumed = BackupWriter::open(*fx.store, "db1", id).value();
  EXPECT_EQ(resumed->last_frame(), w.last_frame);
  send(*resumed, w, 3);
  auto latest = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_TRUE(latest) << latest.error().message;
  EXPECT_EQ(read_file(fx.out), w.image);
}

}  // namespace
}  // namespace quire::backup
