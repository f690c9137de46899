#include "storage/file_object_store.h"

#include <gtest/gtest.h>

#include <fstream>
#include <mutex>
#include <thread>

#include "storage_test_util.h"

namespace quire::storage {
namespace {

namespace fs = std::filesystem;
using testing::random_bytes;
using testing::scratch_dir;

std::unique_ptr<FileObjectStore> open_store(const fs::path& dir, std::size_t part = 8u << 20) {
  auto store = FileObjectStore::open(dir, part);
  EXPECT_TRUE(store) << store.error().message;
  return std::move(*store);
}

std::vector<std::string> keys_of(const std::vector<ObjectInfo>& infos) {
  std::vector<std::string> out;
  for (const auto& i : infos) out.push_back(i.key);
  return out;
}

// Every file under dir, including temporary ones.
std::vector<std::string> files_under(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out.push_back(fs::relative(e.path(), dir).string());
  }
  return out;
}

TEST(FileObjectStore, PutThenGetReturnsTheSameBytes) {
  auto store = open_store(scratch_dir("file"));
  std::string bytes = random_bytes(100000, 1);
  ASSERT_TRUE(store->put("db1/snapshots/0001.snap", bytes));
  auto got = store->get("db1/snapshots/0001.snap");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, bytes);
  auto head = store->head("db1/snapshots/0001.snap");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->size, bytes.size());
  EXPECT_FALSE(head->etag.empty());
}

TEST(FileObjectStore, PutReplacesThePreviousObject) {
  auto store = open_store(scratch_dir("file"));
  ASSERT_TRUE(store->put("k", "first version"));
  ASSERT_TRUE(store->put("k", "v2"));
  EXPECT_EQ(store->get("k").value(), "v2");
  ASSERT_TRUE(store->put("empty", ""));
  EXPECT_EQ(store->get("empty").value(), "");
}

TEST(FileObjectStore, MissingObjectsAreNotFound) {
  auto store = open_store(scratch_dir("file"));
  EXPECT_EQ(store->get("nope").error().kind, StorageErrc::kNotFound);
  EXPECT_EQ(store->get("no/such/dir/key").error().kind, StorageErrc::kNotFound);
  EXPECT_EQ(store->head("nope").error().kind, StorageErrc::kNotFound);
  EXPECT_EQ(store->get_range("nope", 0, 10).error().kind, StorageErrc::kNotFound);
  ASSERT_TRUE(store->put("dir/key", "x"));
  EXPECT_EQ(store->get("dir").error().kind, StorageErrc::kNotFound);  // a directory, not an object
}

TEST(FileObjectStore, GetIntoReplacesATooSmallBufferWithRoomForTheNextLargerObject) {
  auto store = open_store(scratch_dir("file"));
  const std::string a(100000, 'a');
  const std::string b(101000, 'b');  // a restore's next batch: a little larger
  ASSERT_TRUE(store->put("a", a));
  ASSERT_TRUE(store->put("b", b));
  std::string buf;
  ASSERT_TRUE(store->get_into("a", buf));
  EXPECT_EQ(buf, a);
  const char* const storage = buf.data();
  ASSERT_TRUE(store->get_into("b", buf));
  EXPECT_EQ(buf, b);
  EXPECT_EQ(buf.data(), storage) << "the buffer was reallocated for a slightly larger object";
}

TEST(FileObjectStore, GetRangeIsClippedToTheObject) {
  auto store = open_store(scratch_dir("file"));
  ASSERT_TRUE(store->put("k", "0123456789"));
  EXPECT_EQ(store->get_range("k", 2, 3).value(), "234");
  EXPECT_EQ(store->get_range("k", 8, 100).value(), "89");
  EXPECT_EQ(store->get_range("k", 10, 5).value(), "");
  EXPECT_EQ(store->get_range("k", 50, 5).value(), "");
}

TEST(FileObjectStore, GetRangeIntoReusesTheBufferAndHoldsExactlyTheBytesRead) {
  auto store = open_store(scratch_dir("file"));
  ASSERT_TRUE(store->put("k", "0123456789"));
  std::string buf(64, 'x');  // longer than any answer: must end up exactly the bytes read
  ASSERT_TRUE(store->get_range_into("k", 2, 3, buf));
  EXPECT_EQ(buf, "234");
  ASSERT_TRUE(store->get_range_into("k", 0, 100, buf));  // grows again
  EXPECT_EQ(buf, "0123456789");
  ASSERT_TRUE(store->get_range_into("k", 8, 100, buf));
  EXPECT_EQ(buf, "89");
  ASSERT_TRUE(store->get_range_into("k", 50, 5, buf));
  EXPECT_EQ(buf, "");
  EXPECT_EQ(store->get_range_into("nope", 0, 10, buf).error().kind, StorageErrc::kNotFound);
  buf.assign(3, 'y');
  ASSERT_TRUE(store->get_into("k", buf));
  EXPECT_EQ(buf, "0123456789");
  EXPECT_EQ(store->get_into("nope", buf).error().kind, StorageErrc::kNotFound);
}

TEST(FileObjectStore, ListIsRecursiveSortedAndFilteredByPrefix) {
  auto store = open_store(scratch_dir("file"));
  for (const char* key :
       {"db2/a", "db1/ltx/0/0002", "db1/ltx/0/0001", "db1/manifest", "db10/x", "top"}) {
    ASSERT_TRUE(store->put(key, key));
  }
  auto all = store->list("");
  ASSERT_TRUE(all) << all.error().message;
  EXPECT_EQ(keys_of(*all), (std::vector<std::string>{"db1/ltx/0/0001", "db1/ltx/0/0002",
                                                     "db1/manifest", "db10/x", "db2/a", "top"}));
  EXPECT_EQ((*all)[0].size, std::string("db1/ltx/0/0001").size());
  EXPECT_EQ(keys_of(store->list("db1/").value()),
            (std::vector<std::string>{"db1/ltx/0/0001", "db1/ltx/0/0002", "db1/manifest"}));
  EXPECT_EQ(
      keys_of(store->list("db1").value()),
      (std::vector<std::string>{"db1/ltx/0/0001", "db1/ltx/0/0002", "db1/manifest", "db10/x"}));
  EXPECT_EQ(keys_of(store->list("db1/ltx/0/000").value()),
            (std::vector<std::string>{"db1/ltx/0/0001", "db1/ltx/0/0002"}));
  EXPECT_TRUE(store->list("missing/")->empty());
}

TEST(FileObjectStore, TemporaryFilesAreNeverListed) {
  auto dir = scratch_dir("file");
  auto store = open_store(dir);
  ASSERT_TRUE(store->put("db/a", "a"));
  // A temp file left by a crash, and one belonging to a writer still in progress.
  std::ofstream(dir / "db" / ".quire-tmp.999.0") << "partial";
  auto writer = store->open_writer("db/b");
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->write("half of it"));
  EXPECT_EQ(files_under(dir).size(), 3u);
  EXPECT_EQ(keys_of(store->list("").value()), (std::vector<std::string>{"db/a"}));
  EXPECT_EQ(keys_of(store->list("db/.quire").value()), (std::vector<std::string>{}));
  EXPECT_EQ(store->get("db/b").error().kind, StorageErrc::kNotFound);
}

TEST(FileObjectStore, WriterPublishesOnlyOnComplete) {
  auto dir = scratch_dir("file");
  auto store = open_store(dir);
  ASSERT_TRUE(store->put("big", "old"));
  auto writer = store->open_writer("big");
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->write("new "));
  ASSERT_TRUE((*writer)->write("content"));
  EXPECT_EQ(store->get("big").value(), "old");
  auto info = (*writer)->complete();
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->size, 11u);
  EXPECT_EQ(store->get("big").value(), "new content");
  EXPECT_EQ(files_under(dir), (std::vector<std::string>{"big"}));
}

TEST(FileObjectStore, AbortedOrDroppedWritersLeaveNothing) {
  auto dir = scratch_dir("file");
  auto store = open_store(dir);
  {
    auto writer = store->open_writer("a/b");
    ASSERT_TRUE((*writer)->write("xyz"));
    (*writer)->abort();
  }
  {
    auto writer = store->open_writer("a/c");
    ASSERT_TRUE((*writer)->write("xyz"));
  }  // destroyed without complete()
  EXPECT_TRUE(files_under(dir).empty());
  EXPECT_TRUE(store->list("")->empty());
}

TEST(FileObjectStore, PutLargeGoesThroughTheWriter) {
  auto store = open_store(scratch_dir("file"), /*part=*/4096);
  std::string bytes = random_bytes(4096 * 5 + 17, 2);
  ASSERT_TRUE(store->put_large("large", bytes));
  EXPECT_EQ(store->get("large").value(), bytes);
}

TEST(FileObjectStore, RemoveIsIdempotentAndPrunesEmptyDirectories) {
  auto dir = scratch_dir("file");
  auto store = open_store(dir);
  ASSERT_TRUE(store->put("db/ltx/0/1", "1"));
  ASSERT_TRUE(store->put("db/manifest", "m"));
  ASSERT_TRUE(store->remove("db/ltx/0/1"));
  ASSERT_TRUE(store->remove("db/ltx/0/1"));
  ASSERT_TRUE(store->remove("never/was"));
  EXPECT_FALSE(fs::exists(dir / "db" / "ltx"));
  EXPECT_TRUE(fs::exists(dir / "db" / "manifest"));
  std::vector<std::string> keys{"db/manifest", "x/1", "x/2"};
  ASSERT_TRUE(store->put("x/1", "1"));
  ASSERT_TRUE(store->remove_many(keys));
  EXPECT_TRUE(store->list("")->empty());
  EXPECT_TRUE(fs::exists(dir));
}

TEST(FileObjectStore, InvalidKeysAreRefusedBeforeTouchingTheDisk) {
  auto dir = scratch_dir("file");
  auto store = open_store(dir / "root");
  std::ofstream(dir / "outside") << "secret";
  for (const char* key : {"", "/etc/passwd", "../outside", "a/../../outside", "a/./b", ".", "..",
                          "a//b", "a/", ".quire-tmp.1.2", "a/.quire-tmp.x"}) {
    SCOPED_TRACE(key);
    auto put = store->put(key, "x");
    ASSERT_FALSE(put);
    EXPECT_EQ(put.error().kind, StorageErrc::kPermanent);
    EXPECT_FALSE(store->get(key));
    EXPECT_FALSE(store->head(key));
    EXPECT_FALSE(store->remove(key));
    EXPECT_FALSE(store->open_writer(key));
  }
  EXPECT_EQ(store->put(std::string(1025, 'k'), "x").error().kind, StorageErrc::kPermanent);
  EXPECT_EQ(store->put(std::string("a\0b", 3), "x").error().kind, StorageErrc::kPermanent);
  EXPECT_FALSE(store->list("../"));
  EXPECT_FALSE(store->list("/"));
  EXPECT_TRUE(store->list("a/"));
  EXPECT_TRUE(fs::exists(dir / "outside"));
  EXPECT_TRUE(files_under(dir / "root").empty());
}

TEST(FileObjectStore, ConcurrentPutsAndRemovesInOneDirectorySucceed) {
  auto store = open_store(scratch_dir("file"));
  std::vector<std::thread> threads;
  std::mutex mu;
  std::vector<std::string> failures;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        std::string key = "shared/dir/" + std::to_string(t) + "-" + std::to_string(i);
        auto put = store->put(key, key);
        auto removed = put ? store->remove(key) : StorageResult<void>();
        if (!put || !removed) {
          std::lock_guard lock(mu);
          failures.push_back(!put ? put.error().message : removed.error().message);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_TRUE(failures.empty()) << failures.size() << " failures, first: " << failures[0];
  EXPECT_TRUE(store->list("")->empty());
}

TEST(OpenObjectStore, PicksTheStoreFromTheUrl) {
  auto dir = scratch_dir("factory");
  auto by_url = open_object_store("file://" + (dir / "a").string());
  ASSERT_TRUE(by_url) << by_url.error().message;
  EXPECT_EQ((*by_url)->describe(), "file://" + (dir / "a").string());
  auto by_path = open_object_store((dir / "b").string());
  ASSERT_TRUE(by_path) << by_path.error().message;
  ASSERT_TRUE((*by_path)->put("k", "v"));
  EXPECT_TRUE(fs::exists(dir / "b" / "k"));
}

TEST(OpenObjectStore, RefusesUnknownSchemesAndMalformedUrls) {
  for (const char* url : {"", "ftp://host/x", "gs://bucket/x", "file://relative/dir", "s3://",
                          "s3:///prefix", "s3://bad bucket/x", "s3://b/../x"}) {
    SCOPED_TRACE(url);
    auto store = open_object_store(url);
    ASSERT_FALSE(store);
    EXPECT_EQ(store.error().kind, StorageErrc::kPermanent) << store.error().message;
    EXPECT_NE(store.error().message.find("object store"), std::string::npos);
  }
}

}  // namespace
}  // namespace quire::storage
