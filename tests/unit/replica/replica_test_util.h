// Helpers for the replica tests: a WAL-mode primary whose commits are captured with WalReader,
// reader connections through the replica's VFS, and a content dump to compare databases.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "log/snapshot.h"
#include "log/wal_reader.h"
#include "replica/replica_database.h"

namespace quire::replica::testing {

inline std::filesystem::path scratch_dir(const std::string& tag) {
  auto dir = std::filesystem::temp_directory_path() /
             ("quire-replica-" + tag + "-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline int exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (err ? err : "");
  sqlite3_free(err);
  return rc;
}

// One column value of the first row of `sql` as int64 (the test's invariants are integers).
inline std::int64_t query_int(sqlite3* db, const std::string& sql, int col = 0) {
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK)
      << sql << ": " << sqlite3_errmsg(db);
  std::int64_t v = -1;
  if (st && sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, col);
  sqlite3_finalize(st);
  return v;
}

inline std::string query_text(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  std::string v = "<error>";
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    return v + sqlite3_errmsg(db);
  }
  if (sqlite3_step(st) == SQLITE_ROW) {
    v = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  } else {
    v += sqlite3_errmsg(db);
  }
  sqlite3_finalize(st);
  return v;
}

// The schema and every row of every table, in rowid order, as one string.
inline std::string dump(sqlite3* db) {
  std::string out;
  std::vector<std::string> tables;
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT type, name, sql FROM sqlite_master ORDER BY name", -1, &st,
                         nullptr) != SQLITE_OK) {
    return std::string("<error>") + sqlite3_errmsg(db);
  }
  while (sqlite3_step(st) == SQLITE_ROW) {
    const std::string type = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    const std::string name = reinterpret_cast<const char*>(sqlite3_column_text(st, 1));
    const auto* sql = sqlite3_column_text(st, 2);
    out += type + " " + name + " " + (sql ? reinterpret_cast<const char*>(sql) : "") + "\n";
    if (type == "table") tables.push_back(name);
  }
  sqlite3_finalize(st);
  for (const std::string& t : tables) {
    if (sqlite3_prepare_v2(db, ("SELECT * FROM \"" + t + "\" ORDER BY rowid").c_str(), -1, &st,
                           nullptr) != SQLITE_OK) {
      return out + "<error>" + sqlite3_errmsg(db);
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
      for (int c = 0; c < sqlite3_column_count(st); ++c) {
        const auto* p = static_cast<const char*>(sqlite3_column_blob(st, c));
        out += std::to_string(sqlite3_column_type(st, c)) + ":";
        if (p) out.append(p, static_cast<std::size_t>(sqlite3_column_bytes(st, c)));
        out += "|";
      }
      out += "\n";
    }
    sqlite3_finalize(st);
  }
  return out;
}

struct Captured {
  log::Transaction txn;
  std::uint64_t frame = 0;
};

// A WAL-mode primary (autocheckpoint off); commit() runs SQL and returns the transactions it
// committed, each numbered with a running commit frame (frames count pages, as in the log).
class Primary {
 public:
  explicit Primary(const std::filesystem::path& dir)
      : path_(dir / "primary.db"), reader_(dir / "primary.db-wal") {
    EXPECT_EQ(sqlite3_open(path_.c_str(), &db_), SQLITE_OK);
    sqlite3_db_config(db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    exec(db_, "PRAGMA page_size=4096");
    exec(db_, "PRAGMA journal_mode=WAL");
    exec(db_, "PRAGMA wal_autocheckpoint=0");
    auto base = log::FilePageSource::open(path_);
    EXPECT_TRUE(base);
    frame_ = base ? base->page_count() : 0;
  }
  ~Primary() { sqlite3_close(db_); }

  std::vector<Captured> commit(const std::string& sql) {
    exec(db_, sql);
    return capture();
  }
  std::vector<Captured> capture() {
    std::vector<Captured> out;
    auto batch = reader_.read_committed(cursor_);
    EXPECT_TRUE(batch) << (batch ? "" : batch.error().message);
    if (!batch) return out;
    for (log::Transaction& t : batch->transactions) {
      frame_ += t.page_count();
      out.push_back({std::move(t), frame_});
    }
    cursor_ = batch->end;
    return out;
  }
  // Checkpoints everything into the db file (after capturing), so the file is the state at
  // frame().
  void checkpoint_truncate() {
    EXPECT_TRUE(capture().empty());
    exec(db_, "PRAGMA wal_checkpoint(TRUNCATE)");
  }

  sqlite3* db() { return db_; }
  const std::filesystem::path& path() const { return path_; }
  std::uint64_t frame() const { return frame_; }

 private:
  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
  log::WalReader reader_;
  log::WalPosition cursor_;
  std::uint64_t frame_ = 0;
};

inline sqlite3* open_reader(const ReplicaDatabase& r) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(r.path().c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                                 r.vfs_name().c_str());
  EXPECT_EQ(rc, SQLITE_OK) << (db ? sqlite3_errmsg(db) : "");
  return db;
}

}  // namespace quire::replica::testing
