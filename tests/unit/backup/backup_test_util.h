// Helpers shared by the backup unit tests: a random workload over an in-memory reference image,
// a scratch FileObjectStore, and an uploader.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "backup/backup.h"
#include "log/log.h"
#include "storage/file_object_store.h"

namespace quire::backup::testutil {

namespace fs = std::filesystem;
using log::Frame;
using log::kPageSize;

inline fs::path scratch_dir(const std::string& tag) {
  auto dir = fs::temp_directory_path() /
             ("quire-backup-" + tag + "-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

using Image = std::vector<std::byte>;  // db_size * 4096 bytes

class MemPages final : public log::PageSource {
 public:
  explicit MemPages(const Image& img) : img_(img) {}
  std::uint32_t page_count() const override { return static_cast<std::uint32_t>(img_.size() / kPageSize); }
  Expected<void, log::LogError> read_page(std::uint32_t pgno, std::span<std::byte> out) const override {
    std::memcpy(out.data(), img_.data() + (pgno - 1) * kPageSize, kPageSize);
    return {};
  }

 private:
  const Image& img_;
};

struct Commit {
  Frame frame;
  std::int64_t time_us;
  Image image;
};

// Random images for `pgnos`, added to `t` and written into `image` (which must already hold
// them): `image` is then the database as of `t`.
inline void add_random_pages(log::Transaction& t, Image& image,
                             const std::vector<std::uint32_t>& pgnos, std::mt19937_64& rng) {
  std::vector<std::byte> page(kPageSize);
  for (auto p : pgnos) {
    for (auto& b : page) b = static_cast<std::byte>(rng());
    std::memcpy(image.data() + std::size_t{p - 1} * kPageSize, page.data(), kPageSize);
    t.add_page(p, page);
  }
}

// Random transactions over an in-memory reference database; the history records the image after
// every commit.
struct Workload {
  std::mt19937_64 rng{42};
  Image image;
  Frame last_frame = 0;
  std::int64_t time_us = 1'700'000'000'000'000;
  std::vector<Commit> history;

  log::Transaction next() {
    log::Transaction t;
    std::uint32_t size = static_cast<std::uint32_t>(image.size() / kPageSize);
    std::uint32_t new_size = size == 0 ? 3 : size;
    const int r = static_cast<int>(rng() % 10);
    if (r < 3) new_size = size + 1 + static_cast<std::uint32_t>(rng() % 4);
    else if (r == 3 && size > 4) new_size = size - 1 - static_cast<std::uint32_t>(rng() % 3);
    image.resize(std::size_t{new_size} * kPageSize, std::byte{0});
    std::vector<std::uint32_t> pgnos;
    for (std::uint32_t p = size + 1; p <= new_size; ++p) pgnos.push_back(p);  // growth
    const int extra = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < extra; ++i) {
      std::uint32_t p = 1 + static_cast<std::uint32_t>(rng() % new_size);
      if (std::find(pgnos.begin(), pgnos.end(), p) == pgnos.end()) pgnos.push_back(p);
    }
    add_random_pages(t, image, pgnos, rng);
    t.db_size = new_size;
    time_us += 1000 + static_cast<std::int64_t>(rng() % 5000);
    if (rng() % 7 == 0) time_us -= 1000;  // sometimes two commits share a time... or close
    if (!history.empty() && time_us < history.back().time_us) time_us = history.back().time_us;
    t.commit_time_us = time_us;
    last_frame += t.page_count();
    history.push_back({last_frame, time_us, image});
    return t;
  }
  std::vector<log::Transaction> batch(int n) {
    std::vector<log::Transaction> v;
    for (int i = 0; i < n; ++i) v.push_back(next());
    return v;
  }
};

inline Image read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Image img(s.size());
  std::memcpy(img.data(), s.data(), s.size());
  return img;
}

inline void flip_byte(const fs::path& p, std::uint64_t offset) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x40);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

inline log::LogId make_id(std::uint8_t seed) {
  log::LogId id{};
  for (std::size_t i = 0; i < id.size(); ++i) id[i] = static_cast<std::uint8_t>(seed * 31 + i);
  return id;
}

struct Fixture {
  fs::path root;
  std::unique_ptr<storage::FileObjectStore> store;
  fs::path out;
  explicit Fixture(const std::string& tag) {
    auto dir = scratch_dir(tag);
    root = dir / "store";
    out = dir / "restored.db";
    store = std::move(storage::FileObjectStore::open(root).value());
  }
  fs::path object_path(const std::string& prefix, const log::LogId& id, const std::string& key) {
    return root / prefix / log::format_log_id(id) / key;
  }
};

// Uploads a workload: batches from frame 1, a snapshot after `snap_after` batches.
inline std::unique_ptr<BackupWriter> upload(Fixture& fx, Workload& w, const log::LogId& id,
                                            int batches, int snap_after,
                                            const std::string& prefix = "db1",
                                            const BackupOptions& options = {}) {
  auto writer = BackupWriter::open(*fx.store, prefix, id, options);
  EXPECT_TRUE(writer) << writer.error().message;
  for (int i = 0; i < batches; ++i) {
    const Frame first = w.last_frame + 1;
    auto txns = w.batch(1 + i % 4);
    auto r = (*writer)->upload_batch(txns, first);
    EXPECT_TRUE(r) << r.error().message;
    if (i + 1 == snap_after) {
      MemPages pages(w.image);
      auto s = (*writer)->upload_snapshot(pages, w.last_frame, w.history.back().time_us);
      EXPECT_TRUE(s) << s.error().message;
    }
  }
  return std::move(*writer);
}

// A store that passes every call to another; tests override what they watch or break.
class ForwardingStore : public storage::ObjectStore {
 public:
  explicit ForwardingStore(storage::ObjectStore& inner) : inner_(inner) {}
  storage::StorageResult<void> put(std::string_view key, std::string_view bytes) override {
    return inner_.put(key, bytes);
  }
  storage::StorageResult<std::string> get(std::string_view key) override { return inner_.get(key); }
  storage::StorageResult<std::string> get_range(std::string_view key, std::uint64_t offset,
                                                std::uint64_t length) override {
    return inner_.get_range(key, offset, length);
  }
  storage::StorageResult<storage::ObjectInfo> head(std::string_view key) override {
    return inner_.head(key);
  }
  storage::StorageResult<std::vector<storage::ObjectInfo>> list(std::string_view prefix) override {
    return inner_.list(prefix);
  }
  storage::StorageResult<void> remove(std::string_view key) override { return inner_.remove(key); }
  storage::StorageResult<void> remove_many(std::span<const std::string> keys) override {
    return inner_.remove_many(keys);
  }
  storage::StorageResult<std::unique_ptr<storage::MultipartWriter>> open_writer(
      std::string_view key) override {
    return inner_.open_writer(key);
  }
  std::string describe() const override { return inner_.describe(); }
  std::size_t part_size() const override { return inner_.part_size(); }

 protected:
  storage::ObjectStore& inner_;
};

// Flips the byte at each offset of the object at `p` in turn (and back): restoring the latest
// point must fail as corrupt, naming `key` and, when given, saying `why`.
inline void expect_each_flip_fails(Fixture& fx, const fs::path& p,
                                   std::initializer_list<std::uint64_t> offsets,
                                   const std::string& key, const std::string& why = "") {
  for (std::uint64_t off : offsets) {
    flip_byte(p, off);
    auto r = restore(*fx.store, "db1", RestoreTarget::latest(), fx.out);
    ASSERT_FALSE(r) << "offset " << off;
    EXPECT_EQ(r.error().kind, BackupErrc::kCorrupt) << r.error().message;
    EXPECT_NE(r.error().message.find(key), std::string::npos) << r.error().message;
    if (!why.empty()) {
      EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
    }
    flip_byte(p, off);  // undo
  }
}

}  // namespace quire::backup::testutil
