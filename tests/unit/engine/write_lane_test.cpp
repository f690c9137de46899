#include "engine/write_lane.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <thread>

#include "engine/database.h"
#include "engine/executor.h"

namespace quire::engine {
namespace {

class WriteLaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("quire-lane-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto db = Database::open((dir_ / "data").string(), DatabaseOptions{});
    ASSERT_TRUE(db);
    db_ = std::move(db.value());
    exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v UNIQUE)");
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  StmtResult exec(std::string_view sql, std::vector<Value> args = {}) {
    auto lease = db_->acquire();
    EXPECT_TRUE(lease);
    ResponseBudget budget{1 << 20};
    auto r = execute(**lease, Query{sql, std::move(args), {}, true}, budget);
    EXPECT_TRUE(r) << sql;
    return r ? std::move(r.value()) : StmtResult{};
  }

  // Submits one INSERT through the lane; returns its result (or error) once committed.
  Expected<StmtResult, ExecError> insert(std::string_view sql, std::vector<Value> args) {
    Expected<StmtResult, ExecError> out = unexpected(ExecError{"NOT_RUN", "", ""});
    auto done = db_->write_lane()
                    .submit([&](sqlite::Connection& conn) {
                      ResponseBudget budget{1 << 20};
                      out = execute(conn, Query{sql, args, {}, true}, budget);
                    })
                    .get();
    if (!done) return unexpected(ExecError{done.error().code, done.error().message, ""});
    return out;
  }

  std::filesystem::path dir_;
  std::shared_ptr<Database> db_;
};

TEST_F(WriteLaneTest, ConcurrentWritersGetSerialResultsAndShareCommits) {
  constexpr int kThreads = 16, kPerThread = 100;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<std::int64_t> rowids;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto r = insert("INSERT INTO t(v) VALUES (?)", {std::int64_t{t * 1000 + i}});
        if (!r || r->affected_row_count != 1 || !r->last_insert_rowid) {
          ++failures;
          continue;
        }
        std::lock_guard lock(mu);
        rowids.insert(*r->last_insert_rowid);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, 0);
  // Every insert got its own rowid, as serial execution gives, and every one is in the table.
  EXPECT_EQ(rowids.size(), static_cast<std::size_t>(kThreads * kPerThread));
  EXPECT_EQ(exec("SELECT count(*) FROM t").rows[0][0], Value(std::int64_t{kThreads * kPerThread}));
  EXPECT_EQ(db_->write_lane().tasks_committed(), static_cast<std::uint64_t>(kThreads * kPerThread));
  // With 16 writers at once, commits are shared: fewer groups than tasks.
  EXPECT_LT(db_->write_lane().groups_committed(), db_->write_lane().tasks_committed());
}

TEST_F(WriteLaneTest, AFailingStatementAffectsOnlyItsOwnTask) {
  exec("INSERT INTO t(v) VALUES ('taken')");
  std::vector<std::thread> threads;
  std::atomic<int> ok{0}, failed{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        // Every fifth insert violates the UNIQUE constraint.
        Value v = (i % 5 == 0) ? Value(std::string("taken")) : Value(std::int64_t{t * 100 + i});
        auto r = insert("INSERT INTO t(v) VALUES (?)", {v});
        if (r) {
          ++ok;
        } else {
          EXPECT_EQ(r.error().code, "SQLITE_CONSTRAINT");
          ++failed;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failed, 8 * 10);
  EXPECT_EQ(ok, 8 * 40);
  EXPECT_EQ(exec("SELECT count(*) FROM t").rows[0][0], Value(std::int64_t{1 + 8 * 40}));
}

TEST_F(WriteLaneTest, AStatementThatRollsBackTheGroupDoesNotLoseTheOthers) {
  exec("INSERT INTO t(v) VALUES ('taken')");
  std::vector<std::thread> threads;
  std::atomic<int> ok{0}, failed{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        // INSERT OR ROLLBACK ends the whole transaction on a conflict: the lane must run the
        // tasks it undid again, so every acknowledged insert is in the table.
        auto r = (i % 7 == 0)
                     ? insert("INSERT OR ROLLBACK INTO t(v) VALUES ('taken')", {})
                     : insert("INSERT INTO t(v) VALUES (?)", {std::int64_t{t * 100 + i}});
        r ? ++ok : ++failed;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failed, 8 * 8);  // i = 0, 7, ..., 49
  EXPECT_EQ(ok, 8 * 42);
  EXPECT_EQ(exec("SELECT count(*) FROM t").rows[0][0], Value(std::int64_t{1 + 8 * 42}));
}

TEST_F(WriteLaneTest, AFullQueueRefusesWithARetryableError) {
  WriteLaneOptions options;
  options.max_queue = 1;
  auto conn = sqlite::Connection::open((dir_ / "data").string(), {});
  ASSERT_TRUE(conn);
  WriteGate write_gate(std::chrono::milliseconds(5000));
  WriteLane lane(std::move(conn.value()), write_gate, options);
  std::promise<void> release;
  auto gate = release.get_future().share();
  // The first task holds the lane; the second waits in the queue; the third is refused.
  auto first = lane.submit([gate](sqlite::Connection&) { gate.wait(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto second = lane.submit([](sqlite::Connection&) {});
  auto third = lane.submit([](sqlite::Connection&) {}).get();
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().code, "TRANSACTION_BUSY");
  release.set_value();
  EXPECT_TRUE(first.get());
  EXPECT_TRUE(second.get());
}

TEST_F(WriteLaneTest, ATaskThatThrowsFailsAloneAndTheOthersCommit) {
  auto conn = sqlite::Connection::open((dir_ / "data").string(), {});
  ASSERT_TRUE(conn);
  WriteGate write_gate(std::chrono::milliseconds(5000));
  WriteLane lane(std::move(conn.value()), write_gate, WriteLaneOptions{});
  std::promise<void> release;
  auto gate = release.get_future().share();
  // One task holds the lane while three queue up behind it: they form the next group, whose
  // middle task writes and then throws.
  auto first = lane.submit([gate](sqlite::Connection&) { gate.wait(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto insert = [](std::string v) {
    return [v](sqlite::Connection& c) {
      const std::string sql = "INSERT INTO t(v) VALUES ('" + v + "')";
      ASSERT_TRUE(c.exec(sql.c_str()));
    };
  };
  std::vector<Expected<void, WriteLane::Failure>> ends(3);
  std::atomic<int> reported{0};
  auto record = [&](int i) {
    return [&, i](Expected<void, WriteLane::Failure> r) {
      ends[i] = std::move(r);
      ++reported;
    };
  };
  lane.submit(insert("a"), record(0));
  lane.submit(
      [](sqlite::Connection& c) {
        ASSERT_TRUE(c.exec("INSERT INTO t(v) VALUES ('thrown')"));
        throw std::runtime_error("a bug");
      },
      record(1));
  lane.submit(insert("c"), record(2));
  release.set_value();
  EXPECT_TRUE(first.get());
  while (reported < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(ends[0]);
  ASSERT_FALSE(ends[1]);
  EXPECT_EQ(ends[1].error().code, "INTERNAL_ERROR");
  EXPECT_NE(ends[1].error().message.find("a bug"), std::string::npos);
  EXPECT_TRUE(ends[2]);
  EXPECT_EQ(exec("SELECT group_concat(v, ',') FROM (SELECT v FROM t ORDER BY v)").rows[0][0],
            Value(std::string("a,c")));
}

TEST_F(WriteLaneTest, GroupableStatementsArePlainDmlAndDdl) {
  EXPECT_TRUE(groupable_statement("INSERT INTO t VALUES (1)"));
  EXPECT_TRUE(groupable_statement("  -- note\n update t set v = 1"));
  EXPECT_TRUE(groupable_statement("/* x */ DELETE FROM t"));
  EXPECT_TRUE(groupable_statement("CREATE TABLE x(a)"));
  EXPECT_TRUE(groupable_statement("WITH c AS (SELECT 1) INSERT INTO t SELECT * FROM c"));
  EXPECT_FALSE(groupable_statement("PRAGMA foreign_keys = off"));
  EXPECT_FALSE(groupable_statement("BEGIN"));
  EXPECT_FALSE(groupable_statement("COMMIT"));
  EXPECT_FALSE(groupable_statement("VACUUM"));
  EXPECT_FALSE(groupable_statement("ATTACH 'x' AS y"));
  EXPECT_FALSE(groupable_statement("SAVEPOINT a"));
  EXPECT_FALSE(groupable_statement("/* never closed INSERT"));
}

TEST_F(WriteLaneTest, WritesByKeywordLeaveWithToTheStatementItself) {
  EXPECT_TRUE(writes_by_keyword("insert into t values (1)"));
  EXPECT_TRUE(writes_by_keyword(" /* a */ REPLACE INTO t VALUES (1)"));
  EXPECT_TRUE(writes_by_keyword("-- b\nDROP TABLE t"));
  EXPECT_TRUE(writes_by_keyword("ALTER TABLE t ADD c"));
  EXPECT_FALSE(writes_by_keyword("WITH c AS (SELECT 1) SELECT * FROM c"));
  EXPECT_FALSE(writes_by_keyword("SELECT 1"));
  EXPECT_FALSE(writes_by_keyword("INSERTED"));  // a keyword is a whole word
  EXPECT_FALSE(writes_by_keyword(""));
}

}  // namespace
}  // namespace quire::engine
