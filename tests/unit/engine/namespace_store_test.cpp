#include "engine/namespace_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "common/background_pool.h"
#include "engine/executor.h"
#include "log/log.h"
#include "log/materialize.h"

namespace quire::engine {
namespace {

class NamespaceStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("quire-ns-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    store_ = open_store(4);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<NamespaceStore> open_store(std::size_t max_open) {
    NamespaceStore::Options options;
    options.root = dir_.string();
    options.max_open = max_open;
    auto store = NamespaceStore::open(options);
    EXPECT_TRUE(store) << store.error().message;
    return store ? std::move(store.value()) : nullptr;
  }

  Expected<StmtResult, ExecError> run(std::string_view ns, std::string_view sql) {
    auto db = store_->get(ns);
    EXPECT_TRUE(db) << db.error().message;
    auto lease = (*db)->acquire();
    EXPECT_TRUE(lease);
    ResponseBudget budget{1 << 20};
    return execute(**lease, Query{sql, {}, {}, true}, budget);
  }

  std::filesystem::path dir_;
  std::unique_ptr<NamespaceStore> store_;
};

TEST_F(NamespaceStoreTest, DefaultExistsAndUnknownNamespacesAreNotCreated) {
  EXPECT_TRUE(store_->get("default"));
  auto missing = store_->get("acme");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, NamespaceError::Kind::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "acme"));
}

TEST_F(NamespaceStoreTest, NamesThatCouldEscapeTheDirectoryAreRefused) {
  for (const char* bad : {"", "..", "../x", "a/b", "a.b", "a b", "tenant\\x", ".hidden"}) {
    EXPECT_FALSE(NamespaceStore::valid_name(bad)) << bad;
    auto r = store_->create(bad, {});
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().kind, NamespaceError::Kind::kInvalidName);
  }
  EXPECT_FALSE(NamespaceStore::valid_name(std::string(65, 'a')));
  EXPECT_TRUE(NamespaceStore::valid_name(std::string(64, 'a')));
  EXPECT_TRUE(NamespaceStore::valid_name("Tenant_42-eu"));
}

TEST_F(NamespaceStoreTest, TenantsAreIsolated) {
  ASSERT_TRUE(store_->create("a", {}));
  ASSERT_TRUE(store_->create("b", {}));
  ASSERT_TRUE(run("a", "CREATE TABLE secret(x)"));
  ASSERT_TRUE(run("a", "INSERT INTO secret VALUES ('a only')"));
  auto r = run("b", "SELECT * FROM secret");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "SQLITE_ERROR");  // no such table
  auto again = store_->create("a", {});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind, NamespaceError::Kind::kExists);
}

TEST_F(NamespaceStoreTest, CreateFromADump) {
  ASSERT_TRUE(store_->create("dumped", {},
                             std::string("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);")));
  auto r = run("dumped", "SELECT count(*) FROM t");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rows[0][0], Value(std::int64_t{2}));
  // Built in memory, stored as a WAL database with 4 KiB pages that SQLite finds intact.
  EXPECT_EQ(run("dumped", "PRAGMA journal_mode")->rows[0][0], Value(std::string("wal")));
  EXPECT_EQ(run("dumped", "PRAGMA page_size")->rows[0][0], Value(std::int64_t{4096}));
  EXPECT_EQ(run("dumped", "PRAGMA integrity_check")->rows[0][0], Value(std::string("ok")));
  ASSERT_TRUE(run("dumped", "INSERT INTO t VALUES (3)"));
  EXPECT_EQ(run("dumped", "SELECT count(*) FROM t")->rows[0][0], Value(std::int64_t{3}));
  // A broken dump leaves nothing behind.
  auto bad =
      store_->create("broken", {}, std::string("CREATE TABLE t(x); INSERT INTO nope VALUES (1);"));
  ASSERT_FALSE(bad);
  EXPECT_FALSE(store_->exists("broken"));
}

TEST_F(NamespaceStoreTest, RemoveDeletesTheFilesButNotDefault) {
  ASSERT_TRUE(store_->create("gone", {}));
  ASSERT_TRUE(run("gone", "CREATE TABLE t(x)"));
  ASSERT_TRUE(store_->remove("gone"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "gone"));
  EXPECT_FALSE(store_->get("gone"));
  auto def = store_->remove("default");
  ASSERT_FALSE(def);
  EXPECT_EQ(def.error().kind, NamespaceError::Kind::kProtected);
  EXPECT_EQ(store_->remove("never").error().kind, NamespaceError::Kind::kNotFound);
}

TEST_F(NamespaceStoreTest, ForkCopiesDataAndConfig) {
  NamespaceConfig config;
  config.block_writes = true;
  ASSERT_TRUE(store_->create("src", config));
  ASSERT_TRUE(run("src", "CREATE TABLE t(x)"));
  ASSERT_TRUE(run("src", "INSERT INTO t VALUES (42)"));
  ASSERT_TRUE(store_->fork("src", "copy"));
  auto r = run("copy", "SELECT x FROM t");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rows[0][0], Value(std::int64_t{42}));
  EXPECT_TRUE(store_->config("copy")->block_writes);
  ASSERT_TRUE(run("copy", "INSERT INTO t VALUES (43)"));  // independent copies
  EXPECT_EQ(run("src", "SELECT count(*) FROM t")->rows[0][0], Value(std::int64_t{1}));
  EXPECT_EQ(store_->fork("src", "copy").error().kind, NamespaceError::Kind::kExists);
  EXPECT_EQ(store_->fork("nope", "x").error().kind, NamespaceError::Kind::kNotFound);
}

TEST_F(NamespaceStoreTest, IdleDatabasesCloseBeyondTheLimit) {
  for (int i = 0; i < 10; ++i) {
    const std::string ns = "t" + std::to_string(i);
    ASSERT_TRUE(store_->create(ns, {}));
    ASSERT_TRUE(run(ns, "CREATE TABLE t(x)"));
  }
  EXPECT_LE(store_->open_count(), 4u);
  // One in use stays open however many others are opened.
  auto held = store_->get("t0");
  ASSERT_TRUE(held);
  for (int i = 1; i < 10; ++i) ASSERT_TRUE(store_->get("t" + std::to_string(i)));
  EXPECT_LE(store_->open_count(), 5u);
  auto again = store_->get("t0");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->get(), held->get());
}

TEST_F(NamespaceStoreTest, ListShowsEveryNamespaceWithItsSize) {
  ASSERT_TRUE(store_->create("b", {}));
  ASSERT_TRUE(store_->create("a", {}));
  ASSERT_TRUE(run("a", "CREATE TABLE t(x)"));
  auto list = store_->list();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].name, "a");
  EXPECT_EQ(list[1].name, "b");
  EXPECT_EQ(list[2].name, "default");
  EXPECT_GT(list[0].size_bytes, 0u);
  EXPECT_TRUE(list[0].last_access.has_value());
  EXPECT_FALSE(list[1].last_access.has_value());
}

TEST_F(NamespaceStoreTest, MaxDbSizeFailsWritesCleanlyAndKeepsReadsAndDeletes) {
  NamespaceConfig config;
  config.max_db_size = 64 * 4096;
  ASSERT_TRUE(store_->create("small", config));
  ASSERT_TRUE(run("small", "CREATE TABLE t(x)"));
  Expected<StmtResult, ExecError> r = StmtResult{};
  for (int i = 0; i < 200 && r; ++i) r = run("small", "INSERT INTO t VALUES (zeroblob(4000))");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "SQLITE_FULL");
  EXPECT_TRUE(run("small", "SELECT count(*) FROM t"));
  EXPECT_TRUE(run("small", "DELETE FROM t"));
  EXPECT_TRUE(run("small", "INSERT INTO t VALUES (1)"));
}

TEST_F(NamespaceStoreTest, ConfigRoundTripsThroughJson) {
  NamespaceConfig c;
  c.block_reads = true;
  c.block_reason = "migrating";
  c.max_db_size = 1 << 20;
  c.txn_timeout_s = 2.5;
  c.allow_attach = true;
  auto back = namespace_config_from_json(to_json(c));
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->block_reads);
  EXPECT_EQ(back->block_reason, c.block_reason);
  EXPECT_EQ(back->max_db_size, c.max_db_size);
  EXPECT_EQ(back->txn_timeout_s, c.txn_timeout_s);
  EXPECT_TRUE(back->allow_attach);
  EXPECT_FALSE(namespace_config_from_json("{\"max_db_size\": \"big\"}"));
  EXPECT_FALSE(namespace_config_from_json("[]"));
}

TEST_F(NamespaceStoreTest, SurvivesARestart) {
  ASSERT_TRUE(store_->create("kept", {}));
  ASSERT_TRUE(run("kept", "CREATE TABLE t(x)"));
  store_.reset();
  store_ = open_store(4);
  EXPECT_TRUE(run("kept", "SELECT * FROM t"));
}

TEST_F(NamespaceStoreTest, ConcurrentCreatesOfOneNameLetExactlyOneWin) {
  for (int round = 0; round < 5; ++round) {
    const std::string name = "race" + std::to_string(round);
    std::atomic<int> won{0}, exists{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        auto r = t % 2 ? store_->create(name, {}) : store_->create(name, {}, "CREATE TABLE t(x);");
        if (r) {
          won.fetch_add(1);
        } else if (r.error().kind == NamespaceError::Kind::kExists) {
          exists.fetch_add(1);
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(won.load(), 1) << name;
    EXPECT_EQ(exists.load(), 7) << name;
    EXPECT_TRUE(run(name, "SELECT count(*) FROM sqlite_schema"));
  }
  // No scratch directories are left behind.
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    EXPECT_FALSE(entry.path().filename().string().starts_with(".")) << entry.path();
  }
}

TEST_F(NamespaceStoreTest, ManyCreatesInParallelAllSucceedAndOpenAsWalDatabases) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        auto r = store_->create("p" + std::to_string(t) + "_" + std::to_string(i), {});
        EXPECT_TRUE(r) << r.error().message;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(store_->list().size(), 101u);  // and default
  auto mode = run("p3_24", "PRAGMA journal_mode");
  ASSERT_TRUE(mode);
  EXPECT_EQ(mode->rows[0][0], Value(std::string("wal")));
  ASSERT_TRUE(run("p3_24", "CREATE TABLE t(x)"));
  ASSERT_TRUE(run("p3_24", "INSERT INTO t VALUES (1)"));
}

TEST_F(NamespaceStoreTest, AnOpenDatabaseThatIsOnlyReadCostsOneConnectionAndNoThread) {
  ASSERT_TRUE(store_->create("reader", {}, "CREATE TABLE t(x); INSERT INTO t VALUES (1);"));
  const auto before = BackgroundPool::shared().threads();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(run("reader", "SELECT x FROM t"));
  EXPECT_EQ(BackgroundPool::shared().threads(), before);
  // Writes start the lane on demand and still work.
  auto db = store_->get("reader");
  ASSERT_TRUE(db);
  auto done = (*db)->write_lane().submit(
      [](sqlite::Connection& conn) { (void)conn.exec("INSERT INTO t VALUES (2)"); });
  EXPECT_TRUE(done.get());
  auto count = run("reader", "SELECT count(*) FROM t");
  ASSERT_TRUE(count);
  EXPECT_EQ(count->rows[0][0], Value(std::int64_t{2}));
}

TEST_F(NamespaceStoreTest, ConcurrentOpensAndEvictionsKeepOneDatabasePerFileAndTheLogsExact) {
  store_ = open_store(2);  // constant eviction
  for (int n = 0; n < 6; ++n) {
    ASSERT_TRUE(store_->create("churn" + std::to_string(n), {}, std::string("CREATE TABLE t(x);")));
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 60; ++i) {
        const std::string ns = "churn" + std::to_string((t + i) % 6);
        auto db = store_->get(ns);
        if (!db) {
          failures.fetch_add(1);
          continue;
        }
        auto lease = (*db)->acquire();
        ResponseBudget budget{1 << 20};
        if (!lease ||
            !execute(**lease, Query{"INSERT INTO t VALUES (randomblob(500))", {}, {}, true},
                     budget)) {
          failures.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  store_->close_all();
  store_.reset();
  std::int64_t rows = 0;
  for (int n = 0; n < 6; ++n) {
    const auto dir = dir_ / ("churn" + std::to_string(n));
    auto log = log::ReplicationLog::open(dir / "log");
    ASSERT_TRUE(log) << log.error().message;
    auto built = log::materialize(**log, dir_ / "rebuilt");
    ASSERT_TRUE(built) << built.error().message;
    auto read = [](const std::filesystem::path& p) {
      std::ifstream in(p, std::ios::binary);
      return std::string(std::istreambuf_iterator<char>(in), {});
    };
    EXPECT_EQ(read(dir_ / "rebuilt"), read(dir / "data")) << "namespace churn" << n;
    EXPECT_FALSE(std::filesystem::exists(dir.string() + "/data-shm") &&
                 std::filesystem::file_size(dir.string() + "/data-wal") > 0);
  }
  store_ = open_store(2);
  for (int n = 0; n < 6; ++n) {
    auto r = run("churn" + std::to_string(n), "SELECT count(*) FROM t");
    ASSERT_TRUE(r);
    rows += std::get<std::int64_t>(r->rows[0][0]);
  }
  EXPECT_EQ(rows, 8 * 60);
}

}  // namespace
}  // namespace quire::engine
