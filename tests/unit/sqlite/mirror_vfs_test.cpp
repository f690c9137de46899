#include "sqlite/mirror_vfs.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/write_mirror.h"

namespace quire::sqlite {
namespace {

namespace fs = std::filesystem;

class MirrorVfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("quire-mirrorvfs-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    vfs_ = sqlite3_vfs_find(mirror_vfs_name());
    ASSERT_NE(vfs_, nullptr);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::uint64_t size_on_disk(const fs::path& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  }
  static std::string bytes_of(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  fs::path dir_;
  sqlite3_vfs* vfs_ = nullptr;
};

// A frame header is held back until the page after it comes, and both reach the file in one
// write; anything else done to the file first writes the header on its own.
TEST_F(MirrorVfsTest, AFrameHeaderWaitsForItsPageAndNothingSeesTheFileWithoutIt) {
  std::ofstream(dir_ / "x.db").put('\0');  // the unix VFS gives a -wal its database's mode
  const std::string path = (dir_ / "x.db-wal").string();
  auto mirror = WriteMirror::acquire(path);
  std::vector<char> file_mem(static_cast<std::size_t>(vfs_->szOsFile));
  auto* f = reinterpret_cast<sqlite3_file*>(file_mem.data());
  int out_flags = 0;
  ASSERT_EQ(vfs_->xOpen(vfs_, path.c_str(), f,
                        SQLITE_OPEN_WAL | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &out_flags),
            SQLITE_OK);
  std::string wal_header(32, 'W'), h1(24, 'a'), page1(4096, 'b'), h2(24, 'c'), page2(4096, 'd');
  ASSERT_EQ(f->pMethods->xWrite(f, wal_header.data(), 32, 0), SQLITE_OK);
  EXPECT_EQ(size_on_disk(path), 32u);

  ASSERT_EQ(f->pMethods->xWrite(f, h1.data(), 24, 32), SQLITE_OK);
  EXPECT_EQ(size_on_disk(path), 32u) << "the header waits for its page";
  ASSERT_EQ(f->pMethods->xWrite(f, page1.data(), 4096, 56), SQLITE_OK);
  EXPECT_EQ(bytes_of(path), wal_header + h1 + page1);
  std::string back(24 + 4096, '\0');
  ASSERT_TRUE(mirror->read(back.data(), back.size(), 32)) << "the mirror saw both";
  EXPECT_EQ(back, h1 + page1);

  // Held back, then the size is asked for: the header is written first.
  const sqlite3_int64 e1 = 56 + 4096;
  ASSERT_EQ(f->pMethods->xWrite(f, h2.data(), 24, e1), SQLITE_OK);
  EXPECT_EQ(size_on_disk(path), static_cast<std::uint64_t>(e1));
  sqlite3_int64 size = 0;
  ASSERT_EQ(f->pMethods->xFileSize(f, &size), SQLITE_OK);
  EXPECT_EQ(size, e1 + 24);
  ASSERT_EQ(f->pMethods->xWrite(f, page2.data(), 4096, e1 + 24), SQLITE_OK);
  // Held back, then a write somewhere else: the header goes first, on its own.
  const sqlite3_int64 e2 = e1 + 24 + 4096;
  ASSERT_EQ(f->pMethods->xWrite(f, h1.data(), 24, e2), SQLITE_OK);
  EXPECT_EQ(size_on_disk(path), static_cast<std::uint64_t>(e2));
  ASSERT_EQ(f->pMethods->xWrite(f, page1.data(), 4096, e2 + 24 + 4096), SQLITE_OK);
  EXPECT_EQ(size_on_disk(path), static_cast<std::uint64_t>(e2 + 24 + 4096 + 4096));
  EXPECT_EQ(bytes_of(path).substr(static_cast<std::size_t>(e2), 24), h1);
  // Held back, then read (the same file): the reader sees it.
  const sqlite3_int64 e3 = e2 + 24 + 4096 + 4096;
  ASSERT_EQ(f->pMethods->xWrite(f, h2.data(), 24, e3), SQLITE_OK);
  EXPECT_EQ(size_on_disk(path), static_cast<std::uint64_t>(e3));
  std::string read(24, '\0');
  ASSERT_EQ(f->pMethods->xRead(f, read.data(), 24, e3), SQLITE_OK);
  EXPECT_EQ(read, h2);
  // A header that does not continue the last write (SQLite rewriting an older frame's
  // checksum) is written at once.
  ASSERT_EQ(f->pMethods->xWrite(f, h2.data(), 24, 32), SQLITE_OK);
  EXPECT_EQ(bytes_of(path).substr(32, 24), h2);
  // Held back, then the file is closed: written before it closes.
  ASSERT_EQ(f->pMethods->xWrite(f, h1.data(), 24, 56), SQLITE_OK);  // continues the one above
  EXPECT_EQ(bytes_of(path).substr(56, 24), page1.substr(0, 24)) << "held back";
  ASSERT_EQ(f->pMethods->xClose(f), SQLITE_OK);
  EXPECT_EQ(bytes_of(path).substr(56, 24), h1);
}

// A database in WAL mode opened through the shim (its -wal mirrored), without automatic
// checkpoints, so that every commit stays in the -wal.
class MirroredDatabase {
 public:
  MirroredDatabase(const fs::path& path, const char* pragmas) : path_(path) {
    auto wal = wal_mirror_path(path.string());
    EXPECT_TRUE(wal);
    wal_ = wal ? *wal : path.string() + "-wal";
    mirror_ = WriteMirror::acquire(wal_);
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                              mirror_vfs_name()),
              SQLITE_OK);
    exec("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;");
    exec(pragmas);
    exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
  }
  ~MirroredDatabase() { sqlite3_close(db_); }

  void exec(const std::string& sql) {
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK)
        << sql << ": " << (err ? err : "");
    sqlite3_free(err);
  }

  // What a kill -9 now would leave (the files as the page cache holds them), opened with plain
  // SQLite, which recovers from the -wal: `sql`'s first column, and PRAGMA integrity_check.
  std::pair<std::int64_t, std::string> recovered(const fs::path& copy_dir, const char* sql) {
    fs::create_directories(copy_dir);
    const fs::path copy = copy_dir / path_.filename();
    fs::copy_file(path_, copy);
    fs::copy_file(wal_, copy.string() + "-wal");
    sqlite3* c = nullptr;
    EXPECT_EQ(sqlite3_open_v2(copy.c_str(), &c, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    std::pair<std::int64_t, std::string> out{-1, ""};
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(c, sql, -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
      out.first = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(c, "PRAGMA integrity_check", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      out.second = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(c);
    return out;
  }

 private:
  fs::path path_;
  std::string wal_;
  std::shared_ptr<WriteMirror> mirror_;
  sqlite3* db_ = nullptr;
};

constexpr const char* kRows =
    "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM s WHERE n<%d) "
    "INSERT INTO t(v) SELECT hex(randomblob(%d)) FROM s";

std::string rows(int n, int bytes) {
  char sql[256];
  std::snprintf(sql, sizeof sql, kRows, n, bytes);
  return sql;
}

// Through SQLite: every commit is whole in the -wal when its statement returns, so a copy of the
// files taken then recovers every committed row.
TEST_F(MirrorVfsTest, EveryCommitIsWholeInTheWalWhenItReturns) {
  MirroredDatabase db(dir_ / "a.db", "");
  for (int i = 1; i <= 300; ++i) {
    // Single rows, and every tenth commit a large one (many frames in one commit).
    db.exec(i % 10 == 0 ? rows(40, 500) : rows(1, 50));
    if (i % 50 != 0) continue;
    auto [count, check] = db.recovered(dir_ / ("copy" + std::to_string(i)), "SELECT count(*) FROM t");
    EXPECT_EQ(count, (i / 10) * 40 + (i - i / 10)) << "after commit " << i;
    EXPECT_EQ(check, "ok");
  }
}

// A transaction larger than the page cache spills frames into the -wal before it commits;
// pages changed again after that are rewritten in place, and SQLite then rewrites the frame
// headers' checksums up to the commit frame: header writes with no page after them. None of them
// may wait for a page that never comes.
TEST_F(MirrorVfsTest, ChecksumRewritesOfSpilledFramesAreWrittenAtOnce) {
  MirroredDatabase db(dir_ / "s.db", "PRAGMA cache_size=5; PRAGMA synchronous=NORMAL;");
  for (int round = 1; round <= 3; ++round) {
    db.exec("BEGIN; " + rows(2000, 100) + "; UPDATE t SET v = 'again' WHERE id % 97 = 0; COMMIT;");
    const fs::path copy = dir_ / ("copy" + std::to_string(round));
    auto [count, check] = db.recovered(copy, "SELECT count(*) FROM t");
    EXPECT_EQ(count, 2000 * round) << "round " << round;
    EXPECT_EQ(check, "ok");
    auto [again, _] = db.recovered(copy / "again", "SELECT sum(v = 'again') FROM t");
    EXPECT_EQ(again, 2000 * round / 97) << "round " << round;
  }
}

}  // namespace
}  // namespace quire::sqlite
