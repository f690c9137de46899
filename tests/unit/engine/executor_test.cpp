#include "engine/executor.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "engine/database.h"

namespace quire::engine {
namespace {

class ExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("quire-exec-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto db = Database::open((dir_ / "data").string(), DatabaseOptions{});
    ASSERT_TRUE(db) << db.error().message;
    db_ = std::move(db.value());
    auto lease = db_->acquire();
    ASSERT_TRUE(lease);
    conn_ = std::move(lease.value());
  }
  void TearDown() override {
    conn_ = Lease();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  Expected<StmtResult, ExecError> run(std::string_view sql, std::vector<Value> args = {},
                                      std::vector<NamedArg> named = {}) {
    Query q{sql, std::move(args), std::move(named), true};
    return execute(*conn_, q, budget_);
  }
  StmtResult ok(std::string_view sql, std::vector<Value> args = {}) {
    auto r = run(sql, std::move(args));
    EXPECT_TRUE(r) << sql << ": " << (r ? "" : r.error().message);
    return r ? std::move(r.value()) : StmtResult{};
  }

  std::filesystem::path dir_;
  std::shared_ptr<Database> db_;
  Lease conn_;
  ResponseBudget budget_{1 << 20};
};

TEST_F(ExecutorTest, OpensWithProductionDefaults) {
  EXPECT_EQ(std::get<std::string>(ok("PRAGMA journal_mode").rows[0][0]), "wal");
  EXPECT_EQ(std::get<std::int64_t>(ok("PRAGMA synchronous").rows[0][0]), 1);  // NORMAL
  EXPECT_EQ(std::get<std::int64_t>(ok("PRAGMA foreign_keys").rows[0][0]), 1);
  EXPECT_EQ(std::get<std::int64_t>(ok("PRAGMA page_size").rows[0][0]), 4096);
  EXPECT_EQ(std::get<std::int64_t>(ok("PRAGMA recursive_triggers").rows[0][0]), 0);
  EXPECT_EQ(std::get<std::int64_t>(ok("PRAGMA temp_store").rows[0][0]), 2);  // MEMORY
  EXPECT_EQ(std::get<std::int64_t>(ok("PRAGMA wal_autocheckpoint").rows[0][0]), 0);
}

TEST_F(ExecutorTest, ReturnsEveryValueTypeWithDecltypes) {
  ok("CREATE TABLE t(i INTEGER, r REAL, s TEXT, b BLOB, n)");
  ok("INSERT INTO t VALUES (?, ?, ?, ?, ?)",
     {std::int64_t{INT64_MIN}, 1.5, std::string("héllo"), Blob{0, 1, 255}, std::monostate{}});
  auto r = ok("SELECT i, r, s, b, n, 1 + 1 AS two FROM t");
  ASSERT_EQ(r.cols.size(), 6u);
  EXPECT_EQ(r.cols[0].name, "i");
  EXPECT_EQ(r.cols[0].decltype_, "INTEGER");
  EXPECT_EQ(r.cols[5].name, "two");
  EXPECT_FALSE(r.cols[5].decltype_.has_value());
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(std::get<std::int64_t>(r.rows[0][0]), INT64_MIN);
  EXPECT_EQ(std::get<double>(r.rows[0][1]), 1.5);
  EXPECT_EQ(std::get<std::string>(r.rows[0][2]), "héllo");
  EXPECT_EQ(std::get<Blob>(r.rows[0][3]), (Blob{0, 1, 255}));
  EXPECT_TRUE(is_null(r.rows[0][4]));
}

TEST_F(ExecutorTest, ReportsAffectedRowsOnlyForStatementsThatChangeRows) {
  ok("CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
  auto ins = ok("INSERT INTO t(v) VALUES (1), (2), (3)");
  EXPECT_EQ(ins.affected_row_count, 3u);
  EXPECT_EQ(ins.last_insert_rowid, 3);
  auto sel = ok("SELECT * FROM t");
  EXPECT_EQ(sel.affected_row_count, 0u);  // not the INSERT's count leaking through
  EXPECT_FALSE(sel.last_insert_rowid.has_value());
  auto none = ok("UPDATE t SET v = 0 WHERE id > 100");
  EXPECT_EQ(none.affected_row_count, 0u);
  auto upd = ok("UPDATE t SET v = 0 WHERE id >= 2");
  EXPECT_EQ(upd.affected_row_count, 2u);
  EXPECT_FALSE(upd.last_insert_rowid.has_value());
  EXPECT_EQ(ok("DELETE FROM t").affected_row_count, 3u);
}

TEST_F(ExecutorTest, BindsNamedArgumentsWithAnyPrefix) {
  auto r = ok("SELECT :a, @b, $c");
  (void)r;
  Query q{"SELECT :a, @b, $c", {}, {{"a", std::int64_t{1}}, {"b", std::int64_t{2}}, {"$c", std::int64_t{3}}}, true};
  auto res = execute(*conn_, q, budget_);
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(std::get<std::int64_t>(res->rows[0][0]), 1);
  EXPECT_EQ(std::get<std::int64_t>(res->rows[0][1]), 2);
  EXPECT_EQ(std::get<std::int64_t>(res->rows[0][2]), 3);
}

TEST_F(ExecutorTest, UnknownNamedArgumentIsArgsInvalid) {
  auto r = run("SELECT :a", {}, {{"zzz", std::int64_t{1}}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "ARGS_INVALID");
}

TEST_F(ExecutorTest, TooManyPositionalArgumentsIsArgsInvalid) {
  auto r = run("SELECT ?", {std::int64_t{1}, std::int64_t{2}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "ARGS_INVALID");
}

TEST_F(ExecutorTest, SeveralStatementsAreRefused) {
  auto r = run("SELECT 1; SELECT 2");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "SQL_MANY_STATEMENTS");
  // A trailing semicolon and comment are not another statement.
  EXPECT_TRUE(run("SELECT 1; -- done\n"));
}

TEST_F(ExecutorTest, BlankSqlIsNoStatement) {
  auto r = run("  /* nothing */ ");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "SQL_NO_STATEMENT");
}

TEST_F(ExecutorTest, ConstraintViolationCarriesPrimaryAndExtendedCode) {
  ok("CREATE TABLE t(id INTEGER PRIMARY KEY, u UNIQUE)");
  ok("INSERT INTO t VALUES (1, 'x')");
  auto r = run("INSERT INTO t VALUES (2, 'x')");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "SQLITE_CONSTRAINT");
  EXPECT_EQ(r.error().extended_code, "SQLITE_CONSTRAINT_UNIQUE");
  EXPECT_NE(r.error().message.find("UNIQUE constraint failed"), std::string::npos);
}

TEST_F(ExecutorTest, SyntaxErrorNamesTheOffset) {
  auto r = run("SELEC 1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "SQLITE_ERROR");
  EXPECT_NE(r.error().message.find("syntax error"), std::string::npos);
  EXPECT_NE(r.error().message.find("offset 0"), std::string::npos);
}

TEST_F(ExecutorTest, ResponseBudgetStopsHugeResults) {
  budget_.remaining = 1000;
  auto r = run("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10000) "
               "SELECT x FROM c");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "RESPONSE_TOO_LARGE");
}

TEST_F(ExecutorTest, WantRowsFalseKeepsColumnsAndDropsRows) {
  Query q{"SELECT 1 AS a", {}, {}, false};
  auto r = execute(*conn_, q, budget_);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->cols.size(), 1u);
  EXPECT_TRUE(r->rows.empty());
}

TEST_F(ExecutorTest, CachedStatementIsReusableAfterAnError) {
  ok("CREATE TABLE t(id INTEGER PRIMARY KEY)");
  ok("INSERT INTO t VALUES (?)", {std::int64_t{1}});
  EXPECT_FALSE(run("INSERT INTO t VALUES (?)", {std::int64_t{1}}));
  EXPECT_TRUE(run("INSERT INTO t VALUES (?)", {std::int64_t{2}}));
  EXPECT_EQ(ok("SELECT count(*) FROM t").rows[0][0], Value(std::int64_t{2}));
}

TEST_F(ExecutorTest, ScriptRunsEveryStatementAndStopsAtTheFirstError) {
  EXPECT_TRUE(execute_script(*conn_, "CREATE TABLE a(x); INSERT INTO a VALUES (1); "
                                     "INSERT INTO a VALUES (2);"));
  auto bad = execute_script(*conn_, "INSERT INTO a VALUES (3); INSERT INTO nope VALUES (1); "
                                    "INSERT INTO a VALUES (4)");
  ASSERT_FALSE(bad);
  EXPECT_EQ(ok("SELECT count(*) FROM a").rows[0][0], Value(std::int64_t{3}));
}

TEST_F(ExecutorTest, DescribeReportsParamsColumnsAndKind) {
  ok("CREATE TABLE t(a INTEGER, b TEXT)");
  auto d = describe(*conn_, "SELECT a, b FROM t WHERE a = :x AND b = ?");
  ASSERT_TRUE(d);
  ASSERT_EQ(d->params.size(), 2u);
  EXPECT_EQ(d->params[0].name, ":x");
  EXPECT_FALSE(d->params[1].name.has_value());
  EXPECT_EQ(d->cols.size(), 2u);
  EXPECT_TRUE(d->is_readonly);
  EXPECT_FALSE(d->is_explain);
  auto w = describe(*conn_, "EXPLAIN INSERT INTO t VALUES (1, 'x')");
  ASSERT_TRUE(w);
  EXPECT_TRUE(w->is_explain);
}

TEST_F(ExecutorTest, LeaseRollsBackAnOpenTransactionWhenReturned) {
  ok("CREATE TABLE t(x)");
  ok("BEGIN");
  ok("INSERT INTO t VALUES (1)");
  conn_ = Lease();  // returned mid-transaction
  auto again = db_->acquire();
  ASSERT_TRUE(again);
  conn_ = std::move(again.value());
  EXPECT_FALSE(conn_->in_transaction());
  EXPECT_EQ(ok("SELECT count(*) FROM t").rows[0][0], Value(std::int64_t{0}));
}

TEST_F(ExecutorTest, ReadersSeeASnapshotWhileAWriterCommits) {
  ok("CREATE TABLE t(x)");
  ok("INSERT INTO t VALUES (1)");
  auto reader = db_->acquire();
  ASSERT_TRUE(reader);
  Query begin{"BEGIN", {}, {}, true};
  Query count{"SELECT count(*) FROM t", {}, {}, true};
  ASSERT_TRUE(execute(**reader, begin, budget_));
  ASSERT_TRUE(execute(**reader, count, budget_));
  ok("INSERT INTO t VALUES (2)");  // the writer is not blocked by the open read
  auto seen = execute(**reader, count, budget_);
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->rows[0][0], Value(std::int64_t{1}));
  EXPECT_EQ(ok("SELECT count(*) FROM t").rows[0][0], Value(std::int64_t{2}));
}

TEST_F(ExecutorTest, CheckpointerKeepsTheWalBoundedUnderNonStopWrites) {
  DatabaseOptions options;
  options.checkpoint_threshold_frames = 100;
  auto db = Database::open((dir_ / "small-wal").string(), options);
  ASSERT_TRUE(db);
  auto conn = (*db)->acquire();
  ASSERT_TRUE(conn);
  auto exec = [&](const char* sql) {
    Query q{sql, {}, {}, true};
    ASSERT_TRUE(execute(**conn, q, budget_));
  };
  exec("CREATE TABLE t(x)");
  std::uintmax_t largest = 0;
  const auto wal = std::filesystem::path((*db)->path() + "-wal");
  // Every insert commits at least one frame: without checkpoints the WAL would reach 5000+
  // frames (20 MB). With the writer never pausing, only RESTART checkpoints can bound it.
  for (int i = 0; i < 5000; ++i) {
    exec("INSERT INTO t VALUES (randomblob(100))");
    if (i % 100 == 0) largest = std::max(largest, std::filesystem::file_size(wal));
  }
  EXPECT_LT(largest, 2000u * 4120u);
}

}  // namespace
}  // namespace quire::engine
