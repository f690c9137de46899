#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "sqlite/connection.h"

namespace quire::sqlite {
namespace {

class HookErrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("quire-hookerr-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto c = Connection::open((dir_ / "db").string(), {});
    ASSERT_TRUE(c) << c.error().message;
    conn_ = std::move(c.value());
    ASSERT_TRUE(conn_->exec("CREATE TABLE t(x)"));
  }
  void TearDown() override {
    conn_.reset();
    std::filesystem::remove_all(dir_);
  }

  // A commit hook that refuses every commit, reporting it as a full disk.
  static int refuse(void*) {
    set_hook_error(nullptr, SQLITE_CONSTRAINT_COMMITHOOK, {SQLITE_FULL, "no room for the log", -1});
    return 1;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Connection> conn_;
};

TEST_F(HookErrorTest, ARefusingCommitHookIsReportedWithItsOwnCodeAndMessage) {
  sqlite3_commit_hook(conn_->handle(), &HookErrorTest::refuse, nullptr);
  auto r = conn_->exec("INSERT INTO t VALUES (1)");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().rc, SQLITE_FULL);
  EXPECT_EQ(r.error().message, "no room for the log");

  // Through a prepared statement and last_error(), as the executor reads it.
  auto stmt = conn_->prepare("INSERT INTO t VALUES (2)", nullptr);
  ASSERT_TRUE(stmt);
  EXPECT_EQ(sqlite3_step(stmt->get()), SQLITE_CONSTRAINT_COMMITHOOK);
  const Error e = conn_->last_error();
  EXPECT_EQ(e.rc, SQLITE_FULL);
  EXPECT_EQ(e.message, "no room for the log");

  // Nothing was committed.
  sqlite3_commit_hook(conn_->handle(), nullptr, nullptr);
  auto count = conn_->prepare("SELECT count(*) FROM t", nullptr);
  ASSERT_TRUE(count);
  ASSERT_EQ(sqlite3_step(count->get()), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(count->get(), 0), 0);
}

TEST_F(HookErrorTest, AnotherErrorIsReportedAsSQLiteReportsIt) {
  // A hook error left behind (its statement's error never read) does not relabel a later,
  // different failure.
  set_hook_error(conn_->handle(), SQLITE_CONSTRAINT_COMMITHOOK, {SQLITE_FULL, "stale", -1});
  auto r = conn_->exec("INSERT INTO nosuch VALUES (1)");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().rc, SQLITE_ERROR);
  EXPECT_NE(r.error().message.find("no such table"), std::string::npos) << r.error().message;

  // And it is gone afterwards: a real commit-hook failure without a message of its own reads
  // as SQLite's.
  sqlite3_commit_hook(conn_->handle(), [](void*) { return 1; }, nullptr);
  auto again = conn_->exec("INSERT INTO t VALUES (1)");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().rc, SQLITE_CONSTRAINT_COMMITHOOK);
}

}  // namespace
}  // namespace quire::sqlite
