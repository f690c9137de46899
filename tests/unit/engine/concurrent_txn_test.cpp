#include "engine/concurrent_txn.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "engine/database.h"
#include "engine/executor.h"

namespace quire::engine {
namespace {

class ConcurrentTxnTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("quire-cc-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto db = Database::open((dir_ / "data").string(), DatabaseOptions{});
    ASSERT_TRUE(db);
    db_ = std::move(db.value());
    exec("CREATE TABLE acct(id INTEGER PRIMARY KEY, v INTEGER NOT NULL)");
    exec("INSERT INTO acct(id, v) VALUES (1, 100), (2, 100)");
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  StmtResult exec(std::string_view sql) {
    auto lease = db_->acquire();
    EXPECT_TRUE(lease);
    ResponseBudget budget{1 << 20};
    auto r = execute(**lease, Query{sql, {}, {}, true}, budget);
    EXPECT_TRUE(r) << sql << ": " << (r ? "" : r.error().message);
    return r ? std::move(r.value()) : StmtResult{};
  }

  Value scalar(std::string_view sql) {
    auto r = exec(sql);
    return r.rows.empty() ? Value() : r.rows[0][0];
  }

  // A client of a concurrent transaction: its own leased connection, like a stream.
  struct Client {
    Lease lease;
    ConcurrentTxn txn;
    Expected<StmtResult, ExecError> run(std::string_view sql, std::vector<Value> args = {}) {
      ResponseBudget budget{1 << 20};
      return txn.execute(*lease, Query{sql, std::move(args), {}, true}, budget);
    }
    Expected<void, ExecError> commit() { return txn.commit(*lease); }
  };
  Client client() {
    auto lease = db_->acquire();
    EXPECT_TRUE(lease);
    return Client{std::move(lease.value()), ConcurrentTxn(db_, 0, 0)};
  }

  std::filesystem::path dir_;
  std::shared_ptr<Database> db_;
};

TEST_F(ConcurrentTxnTest, DisjointRowsBothCommit) {
  Client a = client(), b = client();
  ASSERT_TRUE(a.run("UPDATE acct SET v = v + 1 WHERE id = 1"));
  ASSERT_TRUE(b.run("UPDATE acct SET v = v + 1 WHERE id = 2"));
  ASSERT_TRUE(a.commit());
  ASSERT_TRUE(b.commit());
  EXPECT_EQ(scalar("SELECT v FROM acct WHERE id = 1"), Value(std::int64_t{101}));
  EXPECT_EQ(scalar("SELECT v FROM acct WHERE id = 2"), Value(std::int64_t{101}));
}

TEST_F(ConcurrentTxnTest, TheSecondWriterOfARowConflictsAndLeavesNoTrace) {
  Client a = client(), b = client();
  auto ra = a.run("SELECT v FROM acct WHERE id = 1");
  auto rb = b.run("SELECT v FROM acct WHERE id = 1");
  ASSERT_TRUE(ra && rb);
  ASSERT_TRUE(a.run("UPDATE acct SET v = ? WHERE id = 1", {std::int64_t{150}}));
  ASSERT_TRUE(b.run("UPDATE acct SET v = ? WHERE id = 1", {std::int64_t{175}}));
  ASSERT_TRUE(a.commit());
  auto c = b.commit();
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, "SQLITE_BUSY");
  EXPECT_EQ(c.error().extended_code, "SQLITE_BUSY_SNAPSHOT");
  EXPECT_TRUE(b.txn.failed());
  EXPECT_FALSE(b.run("SELECT 1"));  // failed until the caller ends it
  EXPECT_EQ(scalar("SELECT v FROM acct WHERE id = 1"), Value(std::int64_t{150}));
}

TEST_F(ConcurrentTxnTest, AConflictIsFoundAtTheFirstStatementThatNoLongerHolds) {
  Client a = client(), b = client();
  ASSERT_TRUE(b.run("SELECT v FROM acct WHERE id = 1"));
  ASSERT_TRUE(b.run("UPDATE acct SET v = 0 WHERE id = 2"));
  ASSERT_TRUE(a.run("UPDATE acct SET v = 1 WHERE id = 1"));
  ASSERT_TRUE(a.commit());
  // b's next write replays its read, which now returns 1, not 100.
  auto r = b.run("UPDATE acct SET v = 0 WHERE id = 1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().extended_code, "SQLITE_BUSY_SNAPSHOT");
  EXPECT_EQ(scalar("SELECT v FROM acct WHERE id = 2"), Value(std::int64_t{100}));
}

TEST_F(ConcurrentTxnTest, OwnWritesAreVisibleToItselfOnly) {
  Client a = client();
  ASSERT_TRUE(a.run("INSERT INTO acct(id, v) VALUES (3, 7)"));
  auto seen = a.run("SELECT v FROM acct WHERE id = 3");
  ASSERT_TRUE(seen);
  ASSERT_EQ(seen->rows.size(), 1u);
  EXPECT_EQ(seen->rows[0][0], Value(std::int64_t{7}));
  EXPECT_EQ(scalar("SELECT count(*) FROM acct"), Value(std::int64_t{2}));
  ASSERT_TRUE(a.commit());
  EXPECT_EQ(scalar("SELECT count(*) FROM acct"), Value(std::int64_t{3}));
}

TEST_F(ConcurrentTxnTest, AReadOnlyTransactionValidatesItsReads) {
  Client a = client();
  ASSERT_TRUE(a.run("SELECT v FROM acct WHERE id = 1"));
  exec("UPDATE acct SET v = 5 WHERE id = 1");  // commits in between
  auto c = a.commit();
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, "SQLITE_BUSY");

  Client b = client();
  ASSERT_TRUE(b.run("SELECT v FROM acct WHERE id = 1"));
  exec("UPDATE acct SET v = 6 WHERE id = 2");  // not what b read
  EXPECT_TRUE(b.commit());
}

TEST_F(ConcurrentTxnTest, RandomValuesTheClientSawReplayIdentically) {
  Client a = client();
  auto r = a.run("SELECT random(), hex(randomblob(16))");
  ASSERT_TRUE(r);
  ASSERT_TRUE(a.run("INSERT INTO acct(id, v) VALUES (10, random())"));
  auto v = a.run("SELECT v FROM acct WHERE id = 10");
  ASSERT_TRUE(v);
  exec("UPDATE acct SET v = v + 1 WHERE id = 2");  // unrelated commit: forces a real replay
  ASSERT_TRUE(a.commit());
  EXPECT_EQ(scalar("SELECT v FROM acct WHERE id = 10"), v->rows[0][0]);
  // Outside a concurrent transaction random() is as random as ever.
  EXPECT_NE(scalar("SELECT random()"), scalar("SELECT random()"));
}

TEST_F(ConcurrentTxnTest, ARowidTheClientSawIsValidated) {
  Client a = client(), b = client();
  auto ia = a.run("INSERT INTO acct(v) VALUES (1)");
  auto ib = b.run("INSERT INTO acct(v) VALUES (2)");
  ASSERT_TRUE(ia && ib);
  EXPECT_EQ(ia->last_insert_rowid, std::optional<std::int64_t>(3));
  EXPECT_EQ(ib->last_insert_rowid, std::optional<std::int64_t>(3));
  ASSERT_TRUE(a.commit());
  // b was told rowid 3, which a now has: committing b would make that answer wrong.
  EXPECT_FALSE(b.commit());
  EXPECT_EQ(scalar("SELECT v FROM acct WHERE id = 3"), Value(std::int64_t{1}));
  EXPECT_EQ(scalar("SELECT count(*) FROM acct"), Value(std::int64_t{3}));
}

TEST_F(ConcurrentTxnTest, ManyTransfersKeepTheTotal) {
  exec("DELETE FROM acct");
  for (int i = 1; i <= 8; ++i) exec("INSERT INTO acct(id, v) VALUES (" + std::to_string(i) + ", 1000)");
  std::atomic<int> committed{0}, conflicts{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 8; ++w) {
    workers.emplace_back([&, w] {
      for (int i = 0; i < 30; ++i) {
        const std::int64_t from = 1 + (w + i) % 8, to = 1 + (w + 3 * i + 1) % 8, amount = 1 + i % 7;
        if (from == to) continue;
        while (true) {
          Client c = client();
          auto bal = c.run("SELECT v FROM acct WHERE id = ?", {from});
          if (bal && std::get<std::int64_t>(bal->rows[0][0]) >= amount &&
              c.run("UPDATE acct SET v = v - ? WHERE id = ?", {amount, from}) &&
              c.run("UPDATE acct SET v = v + ? WHERE id = ?", {amount, to}) && c.commit()) {
            ++committed;
            break;
          }
          ++conflicts;
        }
      }
    });
  }
  for (auto& t : workers) t.join();
  EXPECT_EQ(scalar("SELECT sum(v) FROM acct"), Value(std::int64_t{8000}));
  EXPECT_EQ(scalar("SELECT min(v) >= 0 FROM acct"), Value(std::int64_t{1}));
  EXPECT_GT(committed.load(), 0);
}

TEST_F(ConcurrentTxnTest, BeginConcurrentIsRecognised) {
  EXPECT_TRUE(is_begin_concurrent("BEGIN CONCURRENT"));
  EXPECT_TRUE(is_begin_concurrent("  begin /* x */ concurrent transaction"));
  EXPECT_FALSE(is_begin_concurrent("BEGIN IMMEDIATE"));
  EXPECT_FALSE(is_begin_concurrent("BEGIN"));
}

}  // namespace
}  // namespace quire::engine
