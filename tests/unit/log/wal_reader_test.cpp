// The WAL reader against real -wal files written by SQLite, and the whole capture path of
// mechanism A (wal hook -> WalReader -> ReplicationLog -> materialize) checked byte for byte
// against SQLite's own recovery of a copy of the database.
#include "log/wal_reader.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <random>
#include <set>

#include "common/write_mirror.h"
#include "log/materialize.h"
#include "log_test_util.h"
#include "sqlite/mirror_vfs.h"

namespace quire::log {
namespace {

using namespace quire::log::testing;

// Owns a WAL-mode database whose commits are captured into a replication log from the wal hook.
// `mirrored`: opened through the quire-mirror VFS, with the reader taking frames from the
// mirror of the -wal (as the server does).
class Capture {
 public:
  explicit Capture(const std::filesystem::path& dir, bool mirrored = false)
      : dir_(dir), wal_(dir / "db-wal") {
    db_path_ = dir / "db";
    if (mirrored) {
      auto key = sqlite::wal_mirror_path(db_path_.string());
      EXPECT_TRUE(key);
      mirror_ = WriteMirror::acquire(*key);
      reader_.attach_mirror(mirror_);
    }
    EXPECT_EQ(sqlite3_open_v2(db_path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                              mirrored ? sqlite::mirror_vfs_name() : nullptr),
              SQLITE_OK);
    sqlite3_db_config(db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    exec("PRAGMA page_size=4096");
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA wal_autocheckpoint=0");
    // Gotcha 1: journal_mode=WAL wrote page 1 outside the WAL; the log starts from it.
    auto base = FilePageSource::open(db_path_);
    EXPECT_TRUE(base);
    auto log = ReplicationLog::create(dir / "log", {}, &*base, 1);
    EXPECT_TRUE(log) << (log ? "" : log.error().message);
    log_ = std::move(log.value());
    sqlite3_wal_hook(db_, &Capture::hook, this);
  }
  ~Capture() { sqlite3_close(db_); }

  void exec(const std::string& sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (err ? err : "");
    sqlite3_free(err);
  }

  // Mechanism A's read: everything committed after the cursor, appended to the log.
  void capture(std::uint32_t max_frame) {
    auto batch = reader_.read_committed(cursor_, max_frame);
    ASSERT_TRUE(batch) << batch.error().message;
    if (batch->state == WalState::kRestarted) ++restarts_;
    ASSERT_NE(batch->state, WalState::kBehindCursor);
    for (Transaction& t : batch->transactions) {
      t.commit_time_us = ++clock_;
      auto f = log_->append(t);
      ASSERT_TRUE(f) << f.error().message;
      ++commits_;
    }
    cursor_ = batch->end;
  }

  // Checkpoints go through here: capture first (gotcha 9).
  void checkpoint(int mode) {
    capture(0);
    sqlite3_wal_checkpoint_v2(db_, "main", mode, nullptr, nullptr);
  }

  // SQLite's view: copy db and -wal (not -shm), let SQLite recover and checkpoint the copy.
  std::string reference() {
    const auto ref = dir_ / "ref";
    std::filesystem::remove_all(ref);
    std::filesystem::create_directories(ref);
    std::filesystem::copy_file(db_path_, ref / "db");
    if (std::filesystem::exists(wal_)) std::filesystem::copy_file(wal_, ref / "db-wal");
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open((ref / "db").c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
    return read_bytes(ref / "db");
  }

  std::string replay() {
    auto r = materialize(*log_, dir_ / "replay");
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    return read_bytes(dir_ / "replay");
  }

  sqlite3* db() { return db_; }
  ReplicationLog& log() { return *log_; }
  const std::filesystem::path& wal_path() const { return wal_; }
  int restarts() const { return restarts_; }
  int commits() const { return commits_; }
  int hooks() const { return hooks_; }
  WriteMirror* mirror() { return mirror_.get(); }

 private:
  static int hook(void* self, sqlite3*, const char*, int frames) {
    auto* c = static_cast<Capture*>(self);
    ++c->hooks_;
    c->capture(static_cast<std::uint32_t>(frames));
    return SQLITE_OK;
  }

  std::filesystem::path dir_;
  std::filesystem::path db_path_;
  std::filesystem::path wal_;
  sqlite3* db_ = nullptr;
  std::unique_ptr<ReplicationLog> log_;
  std::shared_ptr<WriteMirror> mirror_;
  WalReader reader_{wal_};
  WalPosition cursor_;
  std::int64_t clock_ = 1;
  int restarts_ = 0, commits_ = 0, hooks_ = 0;
};

class WalReaderTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = scratch_dir("wal"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(WalReaderTest, MissingWalIsReportedAsNoWal) {
  WalReader reader(dir_ / "nothing-wal");
  auto batch = reader.read_committed({});
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->state, WalState::kNoWal);
  EXPECT_TRUE(batch->transactions.empty());
}

TEST_F(WalReaderTest, ReadsCommittedTransactionsWithDedupedPagesAndWalPositions) {
  Capture c(dir_);
  sqlite3_wal_hook(c.db(), nullptr, nullptr);  // read by hand here
  c.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
  c.exec("PRAGMA cache_size=5");
  // A transaction that spills, then rewrites the same pages: the WAL holds a page twice.
  c.exec(
      "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<300) "
      "INSERT INTO t SELECT i, randomblob(500) FROM n; UPDATE t SET v=randomblob(500); COMMIT");
  c.exec("INSERT INTO t VALUES(1000, 'x')");
  WalReader reader(c.wal_path());
  auto batch = reader.read_committed({});
  ASSERT_TRUE(batch) << batch.error().message;
  EXPECT_EQ(batch->state, WalState::kContinues);
  ASSERT_EQ(batch->transactions.size(), 3u);
  for (const Transaction& t : batch->transactions) {
    std::set<std::uint32_t> unique(t.pgnos.begin(), t.pgnos.end());
    EXPECT_EQ(unique.size(), t.pgnos.size());
    ASSERT_TRUE(t.wal);
    EXPECT_GE(t.db_size, *std::max_element(t.pgnos.begin(), t.pgnos.end()));
  }
  const auto wal_frames = (std::filesystem::file_size(c.wal_path()) - 32) / (24 + kPageSize);
  EXPECT_GT(wal_frames, batch->transactions[1].page_count() + 2) << "expected in-WAL rewrites";
  EXPECT_EQ(batch->end, *batch->transactions.back().wal);
  // Nothing new after the end; reading again from an earlier cursor gives the rest.
  auto again = reader.read_committed(batch->end);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->state, WalState::kContinues);
  EXPECT_TRUE(again->transactions.empty());
  auto rest = reader.read_committed(*batch->transactions[0].wal);
  ASSERT_TRUE(rest);
  EXPECT_EQ(rest->transactions.size(), 2u);
  // max_frame stops at the hook's nFrame.
  auto first = reader.read_committed({}, batch->transactions[0].wal->frame);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->transactions.size(), 1u);
}

TEST_F(WalReaderTest, RestartAfterCheckpointStartsAgainAtFrameOne) {
  Capture c(dir_);
  sqlite3_wal_hook(c.db(), nullptr, nullptr);
  c.exec("CREATE TABLE t(x)");
  c.exec("INSERT INTO t VALUES(1)");
  WalReader reader(c.wal_path());
  auto batch = reader.read_committed({});
  ASSERT_TRUE(batch);
  ASSERT_EQ(batch->transactions.size(), 2u);
  ASSERT_EQ(sqlite3_wal_checkpoint_v2(c.db(), "main", SQLITE_CHECKPOINT_RESTART, nullptr, nullptr),
            SQLITE_OK);
  c.exec("INSERT INTO t VALUES(2)");  // rewrites the header with new salts; old frames remain
  auto after = reader.read_committed(batch->end);
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_EQ(after->state, WalState::kRestarted);
  ASSERT_EQ(after->transactions.size(), 1u);
  EXPECT_EQ(after->transactions[0].wal->frame, after->transactions[0].page_count());
  EXPECT_NE(after->end.salt1, batch->end.salt1);
}

TEST_F(WalReaderTest, CursorPastTheCommittedEndIsReported) {
  Capture c(dir_);
  sqlite3_wal_hook(c.db(), nullptr, nullptr);
  c.exec("CREATE TABLE t(x)");
  c.exec("INSERT INTO t VALUES(1)");
  WalReader reader(c.wal_path());
  auto batch = reader.read_committed({});
  ASSERT_TRUE(batch);
  ASSERT_EQ(batch->transactions.size(), 2u);
  // Copy the WAL and cut its last transaction: the log "is ahead" of this WAL (rule 3c).
  const auto copy = dir_ / "copy-wal";
  std::filesystem::copy_file(c.wal_path(), copy);
  const std::uint32_t keep = batch->transactions[0].wal->frame;
  std::filesystem::resize_file(copy, 32 + keep * (24 + kPageSize) + 100);
  WalReader short_reader(copy);
  auto behind = short_reader.read_committed(batch->end);
  ASSERT_TRUE(behind) << behind.error().message;
  EXPECT_EQ(behind->state, WalState::kBehindCursor);
  EXPECT_EQ(behind->end, *batch->transactions[0].wal);
  // A cursor whose checksum disagrees with a valid frame is not this WAL's history.
  WalPosition forged = batch->end;
  forged.checksum1 ^= 1;
  auto bad = reader.read_committed(forged);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, LogErrc::kCorrupt);
}

TEST_F(WalReaderTest, DamagedFrameEndsTheCommittedPrefix) {
  Capture c(dir_);
  sqlite3_wal_hook(c.db(), nullptr, nullptr);
  c.exec("CREATE TABLE t(x)");
  c.exec("INSERT INTO t VALUES(1)");
  c.exec("INSERT INTO t VALUES(2)");
  const auto copy = dir_ / "copy-wal";
  std::filesystem::copy_file(c.wal_path(), copy);
  WalReader reader(copy);
  auto all = reader.read_committed({});
  ASSERT_TRUE(all);
  ASSERT_EQ(all->transactions.size(), 3u);
  const std::uint32_t damaged = all->transactions[1].wal->frame;  // commit frame of txn 2
  std::string bytes = read_bytes(copy);
  bytes[32 + (damaged - 1) * (24 + kPageSize) + 24 + 10] ^= 1;
  std::ofstream(copy, std::ios::binary | std::ios::trunc).write(bytes.data(), bytes.size());
  WalReader damaged_reader(copy);
  auto some = damaged_reader.read_committed({});
  ASSERT_TRUE(some);
  EXPECT_EQ(some->transactions.size(), 1u);
}

TEST_F(WalReaderTest, ReopensTheWalAfterItWasDeleted) {
  const auto db_path = dir_ / "db";
  auto open_db = [&] {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0", nullptr,
                           nullptr, nullptr),
              SQLITE_OK);
    return db;
  };
  sqlite3* db = open_db();
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr), SQLITE_OK);
  WalReader reader(dir_ / "db-wal");
  auto batch = reader.read_committed({});
  ASSERT_TRUE(batch);
  ASSERT_EQ(batch->transactions.size(), 1u);
  sqlite3_close(db);  // the last connection checkpoints and deletes the -wal
  ASSERT_FALSE(std::filesystem::exists(dir_ / "db-wal"));
  auto none = reader.read_committed(batch->end);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->state, WalState::kNoWal);
  EXPECT_EQ(none->end, batch->end);
  db = open_db();
  ASSERT_EQ(sqlite3_exec(db, "INSERT INTO t VALUES(1)", nullptr, nullptr, nullptr), SQLITE_OK);
  auto fresh = reader.read_committed(batch->end);
  ASSERT_TRUE(fresh) << fresh.error().message;
  EXPECT_EQ(fresh->state, WalState::kRestarted);
  EXPECT_EQ(fresh->transactions.size(), 1u);
  sqlite3_close(db);
}

// Records the wal hook's nFrame, for tests that call the reader by hand.
int record_frames(void* out, sqlite3*, const char*, int frames) {
  *static_cast<std::uint32_t*>(out) = static_cast<std::uint32_t>(frames);
  return SQLITE_OK;
}

// The same transactions, byte for byte, and the same cursor (the states may differ: a read from
// {} and one from a cursor of an older generation see a restarted WAL differently).
void expect_same(const WalBatch& got, const WalBatch& want) {
  EXPECT_EQ(got.end, want.end);
  ASSERT_EQ(got.transactions.size(), want.transactions.size());
  for (std::size_t i = 0; i < got.transactions.size(); ++i) {
    const Transaction& a = got.transactions[i];
    const Transaction& b = want.transactions[i];
    EXPECT_EQ(a.pgnos, b.pgnos) << "transaction " << i;
    EXPECT_TRUE(a.pages == b.pages) << "transaction " << i << ": pages differ";
    EXPECT_EQ(a.db_size, b.db_size);
    EXPECT_EQ(a.wal, b.wal);
  }
}

// The commit path (the reader's own cursor, up to the hook's nFrame) takes the frames' stored
// checksums instead of recomputing them; what it returns must be exactly what a full
// verification from frame 1 returns: the same pages byte for byte and the same cursors.
TEST_F(WalReaderTest, CommitPathReturnsWhatFullVerificationReturns) {
  Capture c(dir_);
  std::uint32_t frames = 0;
  sqlite3_wal_hook(c.db(), &record_frames, &frames);
  c.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
  WalReader reader(c.wal_path());
  auto start = reader.read_committed({});
  ASSERT_TRUE(start) << start.error().message;
  WalPosition cursor = start->end;
  for (int i = 0; i < 20; ++i) {
    const WalPosition before = cursor;
    c.exec("INSERT INTO t(v) VALUES (randomblob(" + std::to_string(100 + i * 700) + "))");
    if (i % 5 == 4) c.exec("UPDATE t SET v = randomblob(300) WHERE id % 2 = 0");
    auto fast = reader.read_committed(before, frames);
    ASSERT_TRUE(fast) << fast.error().message;
    EXPECT_EQ(fast->state, WalState::kContinues);
    ASSERT_FALSE(fast->transactions.empty());
    EXPECT_EQ(fast->end.frame, frames);
    WalReader fresh(c.wal_path());  // a cursor it did not hand out: verified from frame 1
    auto verified = fresh.read_committed(before, frames);
    ASSERT_TRUE(verified) << verified.error().message;
    expect_same(*fast, *verified);
    cursor = fast->end;
  }
}

// A restarted WAL's frames carry new salts, so the commit path stops at the first of them and
// the full read takes over, even when the new generation already reaches past the old cursor.
TEST_F(WalReaderTest, CommitPathNoticesARestartedWalByItsSalts) {
  Capture c(dir_);
  std::uint32_t frames = 0;
  sqlite3_wal_hook(c.db(), &record_frames, &frames);
  c.exec("CREATE TABLE t(x)");
  WalReader reader(c.wal_path());
  auto first = reader.read_committed({}, frames);
  ASSERT_TRUE(first) << first.error().message;
  const WalPosition old = first->end;
  ASSERT_EQ(sqlite3_wal_checkpoint_v2(c.db(), "main", SQLITE_CHECKPOINT_RESTART, nullptr, nullptr),
            SQLITE_OK);
  // One transaction of many pages: the new generation ends far past the old cursor's frame.
  c.exec(
      "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<200) "
      "INSERT INTO t SELECT randomblob(1000) FROM n; COMMIT");
  ASSERT_GT(frames, old.frame + 10);
  auto after = reader.read_committed(old, frames);
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_EQ(after->state, WalState::kRestarted);
  ASSERT_EQ(after->transactions.size(), 1u);
  EXPECT_NE(after->end.salt1, old.salt1);
  EXPECT_EQ(after->end.frame, frames);
  WalReader fresh(c.wal_path());
  auto verified = fresh.read_committed({});
  ASSERT_TRUE(verified) << verified.error().message;
  expect_same(*after, *verified);
}

// The commit path trusts a committed frame's bytes as SQLite itself does; damage to the -wal
// on disk is still caught where it can matter, by the full verification of the recovery rule
// at startup: the damaged commit is not part of the WAL any more, so a log holding it is ahead.
TEST_F(WalReaderTest, RecoveryStillVerifiesWhatTheCommitPathTrusted) {
  Capture c(dir_);
  std::uint32_t frames = 0;
  sqlite3_wal_hook(c.db(), &record_frames, &frames);
  c.exec("CREATE TABLE t(x)");
  WalReader reader(c.wal_path());
  auto first = reader.read_committed({}, frames);
  ASSERT_TRUE(first);
  c.exec("INSERT INTO t VALUES (randomblob(100))");
  // Damage the new commit frame's page after SQLite wrote it, before the capture.
  {
    std::string bytes = read_bytes(c.wal_path());
    bytes[32 + (frames - 1) * (24 + kPageSize) + 24 + 4000] ^= 1;
    std::ofstream(c.wal_path(), std::ios::binary | std::ios::in | std::ios::out)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  auto fast = reader.read_committed(first->end, frames);
  ASSERT_TRUE(fast) << fast.error().message;
  ASSERT_EQ(fast->transactions.size(), 1u);
  WalReader at_startup(c.wal_path());
  auto recovered = at_startup.read_committed(fast->end);
  ASSERT_TRUE(recovered) << recovered.error().message;
  EXPECT_EQ(recovered->state, WalState::kBehindCursor);
  EXPECT_EQ(recovered->end, first->end);
}

// The prototype's harness: a random workload with spills, in-place rewrites, rollbacks,
// savepoints, VACUUM, DDL and checkpoints of every kind; after every step the log replays to the
// same bytes as SQLite's recovery of a copy.
// A random workload with every shape of WAL write the capture must survive: spills and in-place
// rewrites, rolled-back spills, savepoints, VACUUM, DDL, checkpoints of every mode (restarts and
// truncations). The replayed log must equal SQLite's own recovery of the database throughout.
void replay_matches_sqlite_under_a_random_workload(const std::filesystem::path& dir,
                                                   bool mirrored) {
  Capture c(dir, mirrored);
  c.exec("CREATE TABLE a(id INTEGER PRIMARY KEY, v BLOB)");
  c.exec("CREATE TABLE b(k TEXT PRIMARY KEY, v) WITHOUT ROWID");
  c.exec("CREATE TABLE c(x, y); CREATE INDEX c_x ON c(x)");
  std::mt19937 rng(1);
  int next_id = 1;
  int comparisons = 0;
  for (int step = 0; step < 160; ++step) {
    const int op = static_cast<int>(rng() % 100);
    if (op < 30) {
      c.exec("INSERT INTO a VALUES(" + std::to_string(next_id++) + ", randomblob(300))");
    } else if (op < 45) {
      c.exec(
          "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<40) "
          "INSERT INTO b SELECT hex(randomblob(8)), randomblob(100) FROM n; "
          "INSERT INTO c SELECT random(), randomblob(50) FROM b LIMIT 20; COMMIT");
    } else if (op < 55) {
      // Spills with a tiny cache, then rewrites the spilled pages in place.
      c.exec("PRAGMA cache_size=30");
      c.exec(
          "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<800) "
          "INSERT INTO c SELECT i, randomblob(200) FROM n; UPDATE c SET y=randomblob(200) "
          "WHERE rowid % 3 = 0; COMMIT");
      c.exec("PRAGMA cache_size=-2000");
    } else if (op < 62) {
      // A spilled transaction that rolls back: its frames stay in the WAL, uncommitted.
      c.exec("PRAGMA cache_size=30");
      c.exec(
          "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<800) "
          "INSERT INTO c SELECT i, randomblob(200) FROM n; ROLLBACK");
      c.exec("PRAGMA cache_size=-2000");
    } else if (op < 68) {
      c.exec("BEGIN; INSERT INTO a VALUES(" + std::to_string(next_id++) +
             ", randomblob(3000)); SAVEPOINT s; DELETE FROM c WHERE rowid % 2 = 0; ROLLBACK TO s; "
             "UPDATE a SET v = randomblob(100) WHERE id % 5 = 0; COMMIT");
    } else if (op < 76) {
      c.exec("DELETE FROM c WHERE rowid IN (SELECT rowid FROM c ORDER BY random() LIMIT 300)");
    } else if (op < 80) {
      c.exec("VACUUM");
    } else if (op < 84) {
      c.exec("CREATE TABLE IF NOT EXISTS d(z); INSERT INTO d VALUES(randomblob(5000))");
      if (rng() % 2) c.exec("DROP TABLE d");
    } else if (op < 92) {
      static const int modes[] = {SQLITE_CHECKPOINT_PASSIVE, SQLITE_CHECKPOINT_FULL,
                                  SQLITE_CHECKPOINT_RESTART, SQLITE_CHECKPOINT_TRUNCATE};
      c.checkpoint(modes[rng() % 4]);
    } else {
      c.exec("UPDATE a SET v = randomblob(" + std::to_string(100 + rng() % 2000) +
             ") WHERE id % 7 = " + std::to_string(rng() % 7));
    }
    if (step % 4 == 0 || op >= 76) {
      ASSERT_EQ(c.replay(), c.reference()) << "step " << step << " op " << op;
      ++comparisons;
    }
  }
  c.capture(0);
  EXPECT_EQ(c.replay(), c.reference());
  EXPECT_GT(c.restarts(), 3);
  EXPECT_GT(comparisons, 40);
  // Every commit the hook saw produced exactly one logged transaction (plus the base image).
  auto all = read_all(c.log());
  EXPECT_EQ(static_cast<int>(all.size()), c.commits() + 1);
  if (mirrored) {
    // Most commits were read from memory (the others: reads past the end at checkpoints, and
    // transactions that spilled more than the mirror holds).
    EXPECT_GT(c.mirror()->stats().reads_served, static_cast<std::uint64_t>(c.commits() / 2));
  }
}

TEST_F(WalReaderTest, CapturedLogReplaysByteIdenticalToSqlite) {
  replay_matches_sqlite_under_a_random_workload(dir_, /*mirrored=*/false);
}

TEST_F(WalReaderTest, CapturedLogReplaysByteIdenticalToSqliteWhenReadFromTheWalMirror) {
  replay_matches_sqlite_under_a_random_workload(dir_, /*mirrored=*/true);
}

}  // namespace
}  // namespace quire::log
