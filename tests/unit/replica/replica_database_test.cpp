// ReplicaDatabase against a real WAL-mode primary: content after every transaction, snapshot
// isolation of reader connections under a concurrent applier, folding, reopen, torn overlay
// tails, kill -9 mid-apply, and reset from a snapshot.
#include "replica/replica_database.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "replica_test_util.h"

namespace quire::replica {
namespace {

using namespace quire::replica::testing;

std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class ReplicaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = scratch_dir("db");
    primary_ = std::make_unique<Primary>(dir_);
    replica_path_ = dir_ / "replica.db";
  }
  void TearDown() override {
    primary_.reset();
    std::filesystem::remove_all(dir_);
  }

  // A replica seeded with the primary's file as it is now (just after journal_mode=WAL).
  std::unique_ptr<ReplicaDatabase> open_seeded() {
    auto r = ReplicaDatabase::open(replica_path_);
    EXPECT_TRUE(r) << (r ? "" : r.error());
    auto base = log::FilePageSource::open(primary_->path());
    EXPECT_TRUE(base);
    auto reset = r.value()->reset_from_snapshot(*base, primary_->frame());
    EXPECT_TRUE(reset) << (reset ? "" : reset.error());
    return std::move(r).value();
  }

  void apply_all(ReplicaDatabase& r, const std::vector<Captured>& txns) {
    for (const Captured& c : txns) {
      auto a = r.apply(c.txn, c.frame);
      ASSERT_TRUE(a) << a.error();
    }
  }

  std::filesystem::path dir_;
  std::filesystem::path replica_path_;
  std::unique_ptr<Primary> primary_;
};

TEST_F(ReplicaTest, ContentMatchesPrimaryAfterEachTransaction) {
  auto replica = open_seeded();
  sqlite3* warm = open_reader(*replica);
  const std::vector<std::string> steps = {
      "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB)",
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<20000) "
      "INSERT INTO t SELECT i, 'v'||i, randomblob(20) FROM n",
      "UPDATE t SET v = v||'x' WHERE id % 3 = 0",
      "UPDATE t SET v = 'one' WHERE id = 777",
      "CREATE INDEX t_v ON t(v)",
      "DELETE FROM t WHERE id % 5 != 0",
      "VACUUM",
      "CREATE TABLE blobs(b BLOB)",
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<50) "
      "INSERT INTO blobs SELECT randomblob(3000) FROM n",
      "DROP TABLE blobs",
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<5000) "
      "INSERT INTO t(v) SELECT 'new'||i FROM n",
      "DELETE FROM t WHERE id > 200",
      "VACUUM",
      "UPDATE t SET v = 'last' WHERE id = 5",
  };
  int step = 0;
  for (const std::string& sql : steps) {
    SCOPED_TRACE(sql);
    auto txns = primary_->commit(sql);
    ASSERT_FALSE(txns.empty());
    apply_all(*replica, txns);
    EXPECT_EQ(replica->applied_frame(), txns.back().frame);
    if (++step % 2 == 0) {
      ASSERT_TRUE(replica->checkpoint());
    }
    EXPECT_EQ(dump(warm), dump(primary_->db()));
    EXPECT_EQ(query_text(warm, "PRAGMA integrity_check"), "ok");
    EXPECT_EQ(query_int(warm, "PRAGMA page_count"), txns.back().txn.db_size);
    sqlite3* fresh = open_reader(*replica);
    EXPECT_EQ(dump(fresh), dump(primary_->db()));
    sqlite3_close(fresh);
  }
  sqlite3_close(warm);
  auto folded = replica->checkpoint();
  ASSERT_TRUE(folded);
  EXPECT_EQ(replica->stats().overlay_versions, 0u);
  EXPECT_EQ(replica->stats().base_frame, replica->applied_frame());
  primary_->checkpoint_truncate();
  EXPECT_EQ(file_bytes(replica->path()), file_bytes(primary_->path()));
}

TEST_F(ReplicaTest, ReaderHoldingOldSnapshotKeepsItAndBlocksFolding) {
  auto replica = open_seeded();
  apply_all(*replica, primary_->commit("CREATE TABLE t(id INTEGER PRIMARY KEY, v)"));
  apply_all(*replica, primary_->commit("INSERT INTO t VALUES(1, 10), (2, 20)"));
  ASSERT_TRUE(replica->checkpoint());

  sqlite3* old_reader = open_reader(*replica);
  exec(old_reader, "BEGIN");
  EXPECT_EQ(query_int(old_reader, "SELECT sum(v) FROM t"), 30);
  sqlite3_stmt* mid = nullptr;  // a statement paused mid-iteration also holds the snapshot
  sqlite3* paused = open_reader(*replica);
  ASSERT_EQ(sqlite3_prepare_v2(paused, "SELECT v FROM t ORDER BY id", -1, &mid, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(mid), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(mid, 0), 10);

  for (int i = 0; i < 5; ++i) {
    apply_all(*replica, primary_->commit("UPDATE t SET v = v + 1 WHERE id = 2"));
    apply_all(*replica, primary_->commit("UPDATE t SET v = v + 100 WHERE id = 1"));
  }
  apply_all(*replica, primary_->commit("VACUUM"));
  auto folded = replica->checkpoint();
  ASSERT_TRUE(folded);
  EXPECT_EQ(*folded, 0u);  // the base version is pinned
  EXPECT_EQ(replica->stats().pinned_readers, 2u);

  EXPECT_EQ(query_int(old_reader, "SELECT sum(v) FROM t"), 30);
  EXPECT_EQ(query_text(old_reader, "PRAGMA quick_check"), "ok");
  ASSERT_EQ(sqlite3_step(mid), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(mid, 0), 20);
  EXPECT_EQ(sqlite3_step(mid), SQLITE_DONE);
  sqlite3_finalize(mid);
  sqlite3_close(paused);

  sqlite3* fresh = open_reader(*replica);
  EXPECT_EQ(query_int(fresh, "SELECT sum(v) FROM t"), 30 + 5 + 500);
  exec(old_reader, "COMMIT");
  EXPECT_EQ(query_int(old_reader, "SELECT sum(v) FROM t"), 30 + 5 + 500);

  folded = replica->checkpoint();
  ASSERT_TRUE(folded);
  EXPECT_EQ(*folded, 11u);
  EXPECT_EQ(replica->stats().overlay_versions, 0u);
  EXPECT_EQ(dump(fresh), dump(primary_->db()));
  EXPECT_EQ(dump(old_reader), dump(primary_->db()));
  sqlite3_close(fresh);
  sqlite3_close(old_reader);
}

// Bank transfers keep sum(bal) constant; meta.ver counts transactions and log holds a known
// number of rows per version. Readers in other threads must only ever see whole transactions.
TEST_F(ReplicaTest, ConcurrentReadersNeverSeeTornState) {
  constexpr int kAccounts = 2000;
  constexpr int kTxns = 2000;
  constexpr std::int64_t kTotal = std::int64_t{kAccounts} * 100;
  primary_->commit(
      "CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER);"
      "CREATE TABLE meta(ver INTEGER); INSERT INTO meta VALUES(0);"
      "CREATE TABLE log(ver INTEGER PRIMARY KEY, pad BLOB)");
  auto seed = primary_->commit(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<2000) "
      "INSERT INTO acct SELECT i, 100 FROM n");
  primary_->checkpoint_truncate();
  auto replica = ReplicaDatabase::open(replica_path_).value();
  {
    auto base = log::FilePageSource::open(primary_->path());
    ASSERT_TRUE(base);
    ASSERT_TRUE(replica->reset_from_snapshot(*base, primary_->frame()));
  }

  std::mt19937 rng(42);
  std::vector<Captured> txns;
  std::vector<std::int64_t> log_rows(kTxns + 1, 0);  // rows in log as of each ver
  std::int64_t rows = 0;
  for (int ver = 1; ver <= kTxns; ++ver) {
    const int a = 1 + static_cast<int>(rng() % kAccounts);
    const int b = 1 + static_cast<int>(rng() % kAccounts);
    const int x = static_cast<int>(rng() % 50);
    std::string sql = "BEGIN; UPDATE acct SET bal = bal - " + std::to_string(x) +
                      " WHERE id = " + std::to_string(a) + "; UPDATE acct SET bal = bal + " +
                      std::to_string(x) + " WHERE id = " + std::to_string(b) +
                      "; UPDATE meta SET ver = " + std::to_string(ver) +
                      "; INSERT INTO log VALUES(" + std::to_string(ver) + ", randomblob(" +
                      std::to_string(rng() % 8000) + "));";
    ++rows;
    if (ver % 25 == 0) {
      sql += "DELETE FROM log WHERE ver <= " + std::to_string(ver - 10) + ";";
      rows = std::min<std::int64_t>(rows, 10);
    }
    sql += "COMMIT";
    for (auto& c : primary_->commit(sql)) txns.push_back(std::move(c));
    if (ver % 50 == 0) {
      for (auto& c : primary_->commit("VACUUM")) txns.push_back(std::move(c));
    }
    if (ver % 200 == 0) primary_->checkpoint_truncate();
    log_rows[ver] = rows;
  }
  ASSERT_EQ(query_int(primary_->db(), "SELECT count(*) FROM log"), rows);

  std::atomic<bool> done{false};
  std::atomic<int> errors{0};
  std::atomic<std::int64_t> observed{0};
  auto reader = [&](int id) {
    sqlite3* db = open_reader(*replica);
    std::int64_t last_ver = -1;
    for (int iter = 0; !done.load() || iter < 20; ++iter) {
      if (exec(db, "BEGIN") != SQLITE_OK) ++errors;
      const std::int64_t ver = query_int(db, "SELECT ver FROM meta");
      const std::int64_t sum = query_int(db, "SELECT sum(bal) FROM acct");
      const std::int64_t n = query_int(db, "SELECT count(*) FROM log");
      if (id == 0) std::this_thread::sleep_for(std::chrono::microseconds(500));
      const std::int64_t ver2 = query_int(db, "SELECT ver FROM meta");
      const std::int64_t sum2 = query_int(db, "SELECT sum(bal) FROM acct");
      if (exec(db, "COMMIT") != SQLITE_OK) ++errors;
      const bool ok = sum == kTotal && sum2 == kTotal && ver == ver2 && ver >= last_ver &&
                      ver >= 0 && ver <= kTxns && n == log_rows[static_cast<std::size_t>(ver)];
      if (!ok) {
        ADD_FAILURE() << "reader " << id << " ver " << ver << "/" << ver2 << " sum " << sum << "/"
                      << sum2 << " log " << n;
        ++errors;
      }
      if (ver != last_ver) ++observed;
      last_ver = ver;
      if (iter % 40 == 0 && query_text(db, "PRAGMA quick_check") != "ok") ++errors;
    }
    sqlite3_close(db);
  };
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i) readers.emplace_back(reader, i);
  std::size_t folded = 0;
  for (std::size_t i = 0; i < txns.size(); ++i) {
    auto a = replica->apply(txns[i].txn, txns[i].frame);
    ASSERT_TRUE(a) << a.error();
    if (rng() % 2 == 0) {
      auto f = replica->checkpoint();
      ASSERT_TRUE(f) << f.error();
      folded += *f;
    }
  }
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_GT(observed.load(), 10);
  EXPECT_GT(folded, txns.size() / 4);
  ASSERT_TRUE(replica->checkpoint());
  EXPECT_EQ(replica->stats().overlay_versions, 0u);
  sqlite3* db = open_reader(*replica);
  EXPECT_EQ(dump(db), dump(primary_->db()));
  sqlite3_close(db);
  std::printf("[ replica  ] %zu transactions, %zu folded, %lld versions observed\n", txns.size(),
              folded, static_cast<long long>(observed.load()));
}

TEST_F(ReplicaTest, ReopenResumesFromAppliedFrameAndCutsTornTail) {
  auto replica = open_seeded();
  apply_all(*replica, primary_->commit("CREATE TABLE t(id INTEGER PRIMARY KEY, v)"));
  apply_all(*replica, primary_->commit("INSERT INTO t VALUES(1, 'a')"));
  ASSERT_TRUE(replica->checkpoint());
  apply_all(*replica, primary_->commit("INSERT INTO t VALUES(2, 'b')"));
  const std::string at_b = dump(primary_->db());
  const std::uint64_t frame_b = replica->applied_frame();
  auto last = primary_->commit("INSERT INTO t VALUES(3, 'c')");
  apply_all(*replica, last);
  replica.reset();

  // A crash mid-append leaves part of the last record: reopening drops exactly that record.
  const auto overlay = std::filesystem::path(replica_path_.string() + "-overlay");
  std::filesystem::resize_file(overlay, std::filesystem::file_size(overlay) - 100);
  replica = ReplicaDatabase::open(replica_path_).value();
  EXPECT_EQ(replica->applied_frame(), frame_b);
  sqlite3* db = open_reader(*replica);
  EXPECT_EQ(dump(db), at_b);
  // Resume: re-apply the lost transaction; an already applied frame is refused.
  EXPECT_FALSE(replica->apply(last[0].txn, frame_b));
  apply_all(*replica, last);
  EXPECT_EQ(dump(db), dump(primary_->db()));
  sqlite3_close(db);
  replica.reset();
  replica = ReplicaDatabase::open(replica_path_).value();
  EXPECT_EQ(replica->applied_frame(), last.back().frame);
  db = open_reader(*replica);
  EXPECT_EQ(dump(db), dump(primary_->db()));
  EXPECT_EQ(query_text(db, "PRAGMA integrity_check"), "ok");
  sqlite3_close(db);
}

TEST_F(ReplicaTest, RejectsMalformedTransactions) {
  auto replica = open_seeded();
  const std::uint64_t f = replica->applied_frame();
  log::Transaction t;
  t.db_size = 2;
  std::vector<std::byte> page(log::kPageSize);
  EXPECT_FALSE(replica->apply(t, f + 1));  // no pages
  t.add_page(3, page);
  EXPECT_FALSE(replica->apply(t, f + 1));  // beyond db_size
  t = {};
  t.db_size = 2;
  t.add_page(2, page);
  t.add_page(2, page);
  EXPECT_FALSE(replica->apply(t, f + 1));  // repeated page
  t.pgnos[1] = 0;
  EXPECT_FALSE(replica->apply(t, f + 1));  // page 0
  t.pgnos[1] = 1;
  EXPECT_FALSE(replica->apply(t, f));  // not after the applied frame
  EXPECT_EQ(replica->applied_frame(), f);
  EXPECT_EQ(replica->stats().overlay_versions, 0u);
}

TEST_F(ReplicaTest, ResetFromSnapshotKeepsPinnedReadersAndPersists) {
  auto replica = open_seeded();
  apply_all(*replica, primary_->commit("CREATE TABLE t(id INTEGER PRIMARY KEY, v)"));
  apply_all(*replica, primary_->commit("INSERT INTO t VALUES(1, 1)"));
  sqlite3* pinned = open_reader(*replica);
  exec(pinned, "BEGIN");
  EXPECT_EQ(query_int(pinned, "SELECT sum(v) FROM t"), 1);

  // The replica misses a stretch of the log and catches up from a snapshot.
  primary_->commit(
      "WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i+1 FROM n WHERE i<3000) "
      "INSERT INTO t SELECT i, i FROM n");
  primary_->commit("DELETE FROM t WHERE id % 2 = 0");
  primary_->checkpoint_truncate();
  auto snap = log::FilePageSource::open(primary_->path());
  ASSERT_TRUE(snap);
  auto r = replica->reset_from_snapshot(*snap, primary_->frame());
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(replica->applied_frame(), primary_->frame());

  EXPECT_EQ(query_int(pinned, "SELECT sum(v) FROM t"), 1);
  exec(pinned, "COMMIT");
  EXPECT_EQ(dump(pinned), dump(primary_->db()));
  apply_all(*replica, primary_->commit("UPDATE t SET v = -1 WHERE id = 1"));
  EXPECT_EQ(dump(pinned), dump(primary_->db()));
  sqlite3_close(pinned);

  replica.reset();
  replica = ReplicaDatabase::open(replica_path_).value();
  EXPECT_EQ(replica->applied_frame(), primary_->frame());
  sqlite3* db = open_reader(*replica);
  EXPECT_EQ(dump(db), dump(primary_->db()));
  EXPECT_EQ(query_text(db, "PRAGMA integrity_check"), "ok");
  sqlite3_close(db);
}

TEST_F(ReplicaTest, ReaderOnEmptyReplicaSeesEmptyDatabaseThenFirstVersion) {
  auto replica = ReplicaDatabase::open(replica_path_).value();
  EXPECT_EQ(replica->applied_frame(), 0u);
  sqlite3* db = open_reader(*replica);
  EXPECT_EQ(query_int(db, "SELECT count(*) FROM sqlite_master"), 0);
  auto base = log::FilePageSource::open(primary_->path());
  ASSERT_TRUE(base);
  auto txns = primary_->commit("CREATE TABLE t(x); INSERT INTO t VALUES(7)");
  // The primary's base image (page 1 after the switch to WAL) as the first transaction.
  log::Transaction first;
  std::vector<std::byte> page(log::kPageSize);
  for (std::uint32_t p = 1; p <= base->page_count(); ++p) {
    ASSERT_TRUE(base->read_page(p, page));
    first.add_page(p, page);
  }
  first.db_size = base->page_count();
  ASSERT_TRUE(replica->apply(first, base->page_count()));
  apply_all(*replica, txns);
  EXPECT_EQ(query_int(db, "SELECT x FROM t"), 7);
  EXPECT_EQ(query_text(db, "PRAGMA integrity_check"), "ok");
  sqlite3_close(db);
}

// A child applies (and folds) in a loop and is killed with SIGKILL at random moments; every
// reopen must hold exactly the primary's content as of its applied frame.
TEST_F(ReplicaTest, KillDuringApplyRecoversToLastAppliedTransaction) {
  std::vector<Captured> txns;
  std::map<std::uint64_t, std::string> content;  // frame -> primary dump
  auto add = [&](const std::string& sql) {
    auto c = primary_->commit(sql);
    ASSERT_EQ(c.size(), 1u);
    content[c[0].frame] = dump(primary_->db());
    txns.push_back(std::move(c[0]));
  };
  const std::uint64_t seed_frame = primary_->frame();
  content[seed_frame] = dump(primary_->db());
  {
    auto r = open_seeded();  // seeds the replica at seed_frame
    ASSERT_EQ(r->applied_frame(), seed_frame);
  }
  add("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
  std::mt19937 rng(7);
  for (int i = 0; i < 400; ++i) {
    if (i % 60 == 59) {
      add("VACUUM");
    } else if (i % 20 == 19) {
      add("DELETE FROM t WHERE id % 3 = " + std::to_string(i % 3));
    } else {
      add("INSERT INTO t(v) SELECT randomblob(" + std::to_string(100 + rng() % 6000) +
          ") FROM (SELECT 1 UNION ALL SELECT 2)");
    }
  }
  const std::string final_content = dump(primary_->db());
  primary_.reset();  // no SQLite handles across fork

  auto run_child = [&](unsigned child_seed) {
    std::mt19937 crng(child_seed);
    auto r = ReplicaDatabase::open(replica_path_);
    if (!r) ::_exit(2);
    for (const Captured& c : txns) {
      if (c.frame <= r.value()->applied_frame()) continue;
      if (!r.value()->apply(c.txn, c.frame)) ::_exit(3);
      if (crng() % 3 == 0 && !r.value()->checkpoint()) ::_exit(4);
    }
    ::_exit(0);
  };
  int kills = 0;
  std::set<std::uint64_t> frames_seen;
  for (int round = 0; round < 20; ++round) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) run_child(static_cast<unsigned>(round));
    std::this_thread::sleep_for(std::chrono::microseconds(2000 + rng() % 40000));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) {
      ++kills;
    } else {
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    }
    auto r = ReplicaDatabase::open(replica_path_);
    ASSERT_TRUE(r) << r.error();
    const std::uint64_t frame = r.value()->applied_frame();
    ASSERT_TRUE(content.count(frame)) << "applied frame " << frame << " is no commit frame";
    sqlite3* db = open_reader(*r.value());
    EXPECT_EQ(query_text(db, "PRAGMA integrity_check"), "ok") << "round " << round;
    EXPECT_EQ(dump(db), content[frame]) << "round " << round << " frame " << frame;
    sqlite3_close(db);
    frames_seen.insert(frame);
  }
  std::printf("[ replica  ] %d kills, %zu distinct recovered frames of %zu transactions\n", kills,
              frames_seen.size(), txns.size());
  EXPECT_GT(kills, 0);
  // Finish in-process.
  auto r = ReplicaDatabase::open(replica_path_).value();
  for (const Captured& c : txns) {
    if (c.frame > r->applied_frame()) {
      ASSERT_TRUE(r->apply(c.txn, c.frame));
    }
  }
  sqlite3* db = open_reader(*r);
  EXPECT_EQ(dump(db), final_content);
  sqlite3_close(db);
}

}  // namespace
}  // namespace quire::replica
