// Client-side encryption of backup objects: key files, round trips through chunked AES-256-GCM,
// and every way a sealed object can be missing its key, opened with another one, or tampered with
// by someone who can also rewrite the manifest.
#include "backup/encryption.h"

#include <gtest/gtest.h>

#include <set>

#include "backup/backup.h"
#include "backup/chunk_cipher.h"
#include "backup/object_format.h"
#include "backup/ship.h"
#include "log/crc32c.h"
#include "backup_test_util.h"

namespace quire::backup {
namespace {

using namespace testutil;  // NOLINT

EncryptionKey test_key(std::uint8_t seed) {
  EncryptionKey::Bytes b{};
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(seed + 7 * i);
  return EncryptionKey(b);
}

BackupOptions encrypted(std::uint8_t seed, std::uint32_t chunk = 4096) {
  BackupOptions o;
  o.encryption_key = test_key(seed);
  o.encryption_chunk_bytes = chunk;
  return o;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void spew(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(s.data(), static_cast<std::streamsize>(s.size()));
}

// Rewrites the manifest entry of `key` to the object's current size and SHA-256, as an attacker
// with write access to the bucket could: only the encryption can catch what follows.
void forge_manifest(Fixture& fx, const log::LogId& id, const std::string& key) {
  const std::string mkey = "db1/" + log::format_log_id(id) + "/manifest.json";
  Manifest m = manifest_from_json(fx.store->get(mkey).value(), mkey).value();
  const std::string bytes = slurp(fx.object_path("db1", id, key));
  detail::Sha256 sha;
  sha.update(bytes.data(), bytes.size());
  auto digest = sha.finish();
  bool found = false;
  for (auto& s : m.snapshots)
    if (s.key == key) {
      s.size = bytes.size();
      s.sha256 = detail::to_hex(digest.data(), digest.size());
      found = true;
    }
  for (auto& b : m.batches)
    if (b.key == key) {
      b.size = bytes.size();
      b.sha256 = detail::to_hex(digest.data(), digest.size());
      found = true;
    }
  ASSERT_TRUE(found) << key;
  ASSERT_TRUE(fx.store->put(mkey, manifest_to_json(m)));
}

TEST(EncryptionKeyFile, AcceptsRawBytesOrHexWithAnOptionalNewline) {
  const auto dir = scratch_dir("keyfile");
  const EncryptionKey want = test_key(3);
  const std::string raw(reinterpret_cast<const char*>(want.bytes().data()), want.bytes().size());
  const std::string hex = detail::to_hex(want.bytes().data(), want.bytes().size());
  std::string upper = hex;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const std::string& contents : {raw, raw + "\n", hex, hex + "\n", upper + "\r\n"}) {
    spew(dir / "key", contents);
    auto k = load_encryption_key(dir / "key");
    ASSERT_TRUE(k) << k.error().message;
    EXPECT_EQ(k->bytes(), want.bytes());
    EXPECT_EQ(k->id(), want.id());
  }
  EXPECT_EQ(want.id_hex().size(), 16u);
  EXPECT_NE(test_key(4).id(), want.id());

  // Raw keys whose last bytes are a line ending are taken whole (random keys do that).
  for (const std::string& tail : {std::string("\n"), std::string("\r\n")}) {
    std::string key = raw;
    key.replace(key.size() - tail.size(), tail.size(), tail);
    for (const std::string& contents : {key, key + "\n"}) {
      spew(dir / "key", contents);
      auto k = load_encryption_key(dir / "key");
      ASSERT_TRUE(k) << k.error().message;
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(k->bytes().data()), k->bytes().size()),
                key);
    }
  }
}

TEST(EncryptionKeyFile, AnythingElseIsAnErrorNamingTheFileAndTheForms) {
  const auto dir = scratch_dir("badkey");
  const std::string hex(64, 'a');
  for (const std::string& contents :
       {std::string(), std::string(31, 'x'), std::string(33, 'x'), hex.substr(1), hex + "a",
        std::string(63, 'a') + "g", hex + "\n\n", std::string(5000, '0')}) {
    spew(dir / "key", contents);
    auto k = load_encryption_key(dir / "key");
    ASSERT_FALSE(k) << "accepted " << contents.size() << " bytes";
    EXPECT_EQ(k.error().kind, BackupErrc::kInvalidArgument);
    EXPECT_NE(k.error().message.find((dir / "key").string()), std::string::npos) << k.error().message;
    EXPECT_NE(k.error().message.find("32 raw bytes or 64 hex digits"), std::string::npos)
        << k.error().message;
  }
  auto missing = load_encryption_key(dir / "absent");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find((dir / "absent").string()), std::string::npos);
}

TEST(Encryption, RoundTripsLatestEveryFrameAndTimestamps) {
  Fixture fx("enc-roundtrip");
  Workload w;
  const auto id = make_id(21);
  const auto opts = encrypted(1);
  auto writer = upload(fx, w, id, 12, 5, "db1", opts);
  const auto& m = writer->manifest();
  ASSERT_EQ(m.snapshots.size(), 1u);

  // The stored objects are sealed: flags set, the key's id in the header, and no page (random,
  // so incompressible) appears in clear.
  std::vector<std::string> keys{m.snapshots[0].key};
  for (const auto& b : m.batches) keys.push_back(b.key);
  const std::string page(reinterpret_cast<const char*>(w.image.data()), 256);
  for (const auto& k : keys) {
    const std::string bytes = slurp(fx.object_path("db1", id, k));
    std::string why;
    auto h = detail::decode_header(reinterpret_cast<const std::uint8_t*>(bytes.data()), why);
    ASSERT_TRUE(h) << why;
    EXPECT_TRUE(h->encrypted()) << k;
    EXPECT_EQ(h->key_id, opts.encryption_key->id());
    EXPECT_EQ(h->chunk_bytes, 4096u);
    EXPECT_EQ(bytes.find(page), std::string::npos) << k;
  }

  auto reader = BackupReader::open(*fx.store, "db1", &*opts.encryption_key).value();
  auto range = reader.restorable_range();
  ASSERT_TRUE(range);
  EXPECT_EQ(range->last_frame, w.last_frame);
  // Ranged reads whose boundaries fall anywhere relative to the 4 KiB chunks.
  for (std::uint64_t chunk : {std::uint64_t{4096}, std::uint64_t{5000}, std::uint64_t{65537}}) {
    reader.read_chunk_bytes = chunk;
    auto latest = reader.restore(RestoreTarget::latest(), fx.out);
    ASSERT_TRUE(latest) << latest.error().message;
    EXPECT_EQ(read_file(fx.out), w.image);
  }
  for (const auto& c : w.history) {
    auto r = reader.restore(RestoreTarget::at_frame(c.frame), fx.out);
    ASSERT_TRUE(r) << "frame " << c.frame << ": " << r.error().message;
    EXPECT_EQ(read_file(fx.out), c.image) << "frame " << c.frame;
  }
  for (std::size_t i = 0; i < w.history.size(); ++i) {
    std::size_t want = i;
    while (want + 1 < w.history.size() && w.history[want + 1].time_us == w.history[i].time_us)
      ++want;
    auto r = restore(*fx.store, "db1", RestoreTarget::at_time(w.history[i].time_us), fx.out,
                     &*opts.encryption_key);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(read_file(fx.out), w.history[want].image) << i;
  }
}

TEST(Encryption, WithoutTheKeyIsAClearErrorNamingTheObject) {
  Fixture fx("enc-nokey");
  Workload w;
  const auto id = make_id(22);
  auto writer = upload(fx, w, id, 6, 3, "db1", encrypted(1));
  // The manifests are in clear: the range needs no key.
  auto range = restorable_range(*fx.store, "db1");
  ASSERT_TRUE(range) << range.error().message;
  auto r = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, BackupErrc::kEncryption);
  EXPECT_NE(r.error().message.find(writer->manifest().snapshots[0].key), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("no encryption key"), std::string::npos) << r.error().message;
  EXPECT_FALSE(fs::exists(fx.out));
  // A batch-only restore (before the snapshot) fails the same way on the first batch.
  auto early = restore(*fx.store, "db1", RestoreTarget::at_frame(w.history[0].frame), fx.out);
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().kind, BackupErrc::kEncryption);
  EXPECT_NE(early.error().message.find(writer->manifest().batches[0].key), std::string::npos);
}

TEST(Encryption, AnotherKeyIsReportedAsSuchNotAsTampering) {
  Fixture fx("enc-wrongkey");
  Workload w;
  const auto id = make_id(23);
  const auto opts = encrypted(1);
  auto writer = upload(fx, w, id, 6, 3, "db1", opts);
  const EncryptionKey other = test_key(99);
  for (auto target : {RestoreTarget::latest(), RestoreTarget::at_frame(w.history[0].frame)}) {
    auto r = restore(*fx.store, "db1", target, fx.out, &other);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, BackupErrc::kEncryption);
    EXPECT_NE(r.error().message.find("encrypted with another key"), std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find(opts.encryption_key->id_hex()), std::string::npos);
    EXPECT_NE(r.error().message.find(other.id_hex()), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(fx.out));
}

TEST(Encryption, AKeyRefusesObjectsInClearUnlessAllowed) {
  Fixture fx("enc-clear");
  Workload w;
  const auto id = make_id(24);
  upload(fx, w, id, 4, 2);
  const EncryptionKey key = test_key(1);
  auto reader = BackupReader::open(*fx.store, "db1", &key).value();
  auto refused = reader.restore(RestoreTarget::latest(), fx.out);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, BackupErrc::kEncryption);
  EXPECT_NE(refused.error().message.find("not encrypted"), std::string::npos);
  // Turning encryption on for an existing lineage: old objects in clear, new ones sealed.
  auto writer = BackupWriter::open(*fx.store, "db1", id, encrypted(1)).value();
  const Frame first = w.last_frame + 1;
  ASSERT_TRUE(writer->upload_batch(w.batch(3), first));
  auto fresh = BackupReader::open(*fx.store, "db1", &key).value();
  fresh.allow_unencrypted = true;
  auto ok = fresh.restore(RestoreTarget::latest(), fx.out);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(read_file(fx.out), w.image);
  // Without the key the new batch is unreadable, the old points still restore.
  auto no_key = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_FALSE(no_key);
  EXPECT_EQ(no_key.error().kind, BackupErrc::kEncryption);
  auto old = restore(*fx.store, "db1", RestoreTarget::at_frame(first - 1), fx.out);
  ASSERT_TRUE(old) << old.error().message;
}

// Damage inside a sealed chunk, with the manifest rewritten to match, fails authentication.
TEST(Encryption, TamperedChunkFailsAuthentication) {
  Fixture fx("enc-tamper");
  Workload w;
  const auto id = make_id(25);
  const auto opts = encrypted(1);
  auto writer = upload(fx, w, id, 6, 3, "db1", opts);
  ASSERT_TRUE(writer->flush_manifest());  // forge_manifest() edits the stored entries
  const std::string snap = writer->manifest().snapshots[0].key;
  const std::string batch = writer->manifest().batches.back().key;
  for (const auto& key : {snap, batch}) {
    const fs::path p = fx.object_path("db1", id, key);
    const std::string original = slurp(p);
    for (std::uint64_t off : {std::uint64_t{detail::kHeaderSize}, std::uint64_t{5000},
                              std::uint64_t{original.size() - 1}}) {
      if (off >= original.size()) continue;
      flip_byte(p, off);
      forge_manifest(fx, id, key);
      auto r = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out, &*opts.encryption_key);
      ASSERT_FALSE(r) << key << " offset " << off;
      EXPECT_EQ(r.error().kind, BackupErrc::kCorrupt);
      EXPECT_NE(r.error().message.find(key), std::string::npos) << r.error().message;
      EXPECT_NE(r.error().message.find("authentication"), std::string::npos) << r.error().message;
      spew(p, original);
    }
    forge_manifest(fx, id, key);
  }
  // The header is bound too: a field changed consistently in the header (CRC recomputed) and in
  // the manifest still fails.
  const fs::path p = fx.object_path("db1", id, batch);
  std::string bytes = slurp(p);
  auto* h = reinterpret_cast<std::uint8_t*>(bytes.data());
  const std::int64_t later = static_cast<std::int64_t>(detail::get_u64(h + 64)) + 1;
  detail::put_u64(h + 64, static_cast<std::uint64_t>(later));
  detail::put_u32(h + 124, log::crc32c(0, h, 124));
  spew(p, bytes);
  const std::string mkey = "db1/" + log::format_log_id(id) + "/manifest.json";
  Manifest m = manifest_from_json(fx.store->get(mkey).value(), mkey).value();
  m.batches.back().last_commit_time_us = later;
  ASSERT_TRUE(fx.store->put(mkey, manifest_to_json(m)));
  forge_manifest(fx, id, batch);
  auto r = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out, &*opts.encryption_key);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, BackupErrc::kCorrupt);
  EXPECT_NE(r.error().message.find("authentication"), std::string::npos) << r.error().message;
}

// Cutting whole chunks off the end (and fixing the manifest) is caught: the new last chunk was
// not sealed as the final one.
TEST(Encryption, TruncatedObjectIsDetectedEvenWithAForgedManifest) {
  Fixture fx("enc-trunc");
  Workload w;
  const auto id = make_id(26);
  const auto opts = encrypted(1);
  auto writer = upload(fx, w, id, 6, 3, "db1", opts);
  const auto& s = writer->manifest().snapshots[0];
  const fs::path p = fx.object_path("db1", id, s.key);
  const std::string original = slurp(p);
  const std::size_t sealed_chunk = 4096 + detail::kTagSize;
  ASSERT_GT(original.size(), detail::kHeaderSize + 3 * sealed_chunk);
  for (std::size_t cut : {detail::kHeaderSize + 2 * sealed_chunk,  // at a chunk boundary
                          detail::kHeaderSize + sealed_chunk + 100, original.size() - 1}) {
    spew(p, original.substr(0, cut));
    forge_manifest(fx, id, s.key);
    auto r = restore(*fx.store, "db1", RestoreTarget::at_frame(s.frame), fx.out,
                     &*opts.encryption_key);
    ASSERT_FALSE(r) << "cut at " << cut;
    EXPECT_EQ(r.error().kind, BackupErrc::kCorrupt) << r.error().message;
    EXPECT_NE(r.error().message.find(s.key), std::string::npos) << r.error().message;
  }
  spew(p, original);
  forge_manifest(fx, id, s.key);
  auto ok = restore(*fx.store, "db1", RestoreTarget::at_frame(s.frame), fx.out,
                    &*opts.encryption_key);
  ASSERT_TRUE(ok) << ok.error().message;
}

// Reordering chunks inside an object, or taking a chunk from another object sealed with the same
// key, fails authentication.
TEST(Encryption, SwappedChunksAreDetected) {
  Fixture fx("enc-swap");
  Workload w;
  const auto id = make_id(27);
  const auto opts = encrypted(1);
  auto writer = upload(fx, w, id, 8, 3, "db1", opts);
  MemPages pages(w.image);
  ASSERT_TRUE(writer->upload_snapshot(pages, w.last_frame, w.history.back().time_us));
  const auto a = writer->manifest().snapshots[0];
  const auto b = writer->manifest().snapshots[1];
  const fs::path pa = fx.object_path("db1", id, a.key), pb = fx.object_path("db1", id, b.key);
  const std::string oa = slurp(pa), ob = slurp(pb);
  const std::size_t n = 4096 + detail::kTagSize;
  auto chunk = [&](const std::string& s, std::size_t i) {
    return s.substr(detail::kHeaderSize + i * n, n);
  };
  auto expect_auth_failure = [&](const SnapshotEntry& e) {
    forge_manifest(fx, id, e.key);
    auto r = restore(*fx.store, "db1", RestoreTarget::at_frame(e.frame), fx.out,
                     &*opts.encryption_key);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, BackupErrc::kCorrupt);
    EXPECT_NE(r.error().message.find("authentication"), std::string::npos) << r.error().message;
  };
  // Chunks 0 and 1 of A exchanged.
  std::string swapped = oa;
  swapped.replace(detail::kHeaderSize, n, chunk(oa, 1));
  swapped.replace(detail::kHeaderSize + n, n, chunk(oa, 0));
  spew(pa, swapped);
  expect_auth_failure(a);
  // Chunk 1 of B put in A.
  std::string mixed = oa;
  mixed.replace(detail::kHeaderSize + n, n, chunk(ob, 1));
  spew(pa, mixed);
  expect_auth_failure(a);
  // B's header on A's body (the header's CRC is fine; A's nonce and frames are not B's).
  std::string rehead = ob.substr(0, detail::kHeaderSize) + oa.substr(detail::kHeaderSize);
  spew(pb, rehead);
  forge_manifest(fx, id, b.key);
  auto r = restore(*fx.store, "db1", RestoreTarget::at_frame(b.frame), fx.out,
                   &*opts.encryption_key);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, BackupErrc::kCorrupt);
}

TEST(Encryption, ShipEncryptsWithTheKeyInItsOptions) {
  Fixture fx("enc-ship");
  auto dir = fx.root.parent_path();
  auto l = std::move(log::ReplicationLog::create(dir / "log").value());
  Workload w;
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(l->append(w.next()));
  const EncryptionKey key = test_key(5);
  ShipOptions opt;
  opt.encryption_key = &key;
  auto shipped = ship(*l, *fx.store, "db1", opt);
  ASSERT_TRUE(shipped) << shipped.error().message;
  auto no_key = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
  ASSERT_FALSE(no_key);
  EXPECT_EQ(no_key.error().kind, BackupErrc::kEncryption);
  auto ok = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out, &key);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(read_file(fx.out), w.image);
}

TEST(BackupProgress, SnapshotUploadReportsPagesAndRestoreReportsBytes) {
  Fixture fx("progress");
  Workload w;
  const auto id = make_id(28);
  auto writer = upload(fx, w, id, 4, 0, "db1", encrypted(1));
  w.image.resize(700 * kPageSize);  // more than one 256-page step
  for (std::size_t i = 0; i < w.image.size(); i += 97) w.image[i] = std::byte{1};
  MemPages pages(w.image);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> up;
  auto s = writer->upload_snapshot(pages, w.last_frame, w.time_us,
                                   [&](std::uint64_t d, std::uint64_t t) { up.emplace_back(d, t); });
  ASSERT_TRUE(s) << s.error().message;
  ASSERT_GE(up.size(), 3u);
  for (std::size_t i = 1; i < up.size(); ++i) EXPECT_GE(up[i].first, up[i - 1].first);
  EXPECT_EQ(up.back(), std::make_pair(std::uint64_t{700}, std::uint64_t{700}));
  w.history.push_back({w.last_frame, w.time_us, w.image});
  const Frame first = w.last_frame + 1;
  ASSERT_TRUE(writer->upload_batch(w.batch(3), first));

  const EncryptionKey key = test_key(1);
  auto reader = BackupReader::open(*fx.store, "db1", &key).value();
  reader.read_chunk_bytes = 8192;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> down;
  auto r = reader.restore(RestoreTarget::latest(), fx.out,
                          [&](std::uint64_t d, std::uint64_t t) { down.emplace_back(d, t); });
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_GE(down.size(), 3u);
  const std::uint64_t total = s->size + writer->manifest().batches.back().size;
  for (std::size_t i = 1; i < down.size(); ++i) {
    EXPECT_GE(down[i].first, down[i - 1].first);
    EXPECT_EQ(down[i].second, total);
  }
  EXPECT_EQ(down.back().first, total);
  EXPECT_EQ(read_file(fx.out), w.image);
}

}  // namespace
}  // namespace quire::backup
