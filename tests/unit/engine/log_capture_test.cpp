#include "engine/log_capture.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "engine/database.h"
#include "engine/executor.h"
#include "common/write_mirror.h"
#include "log/materialize.h"
#include "sqlite/mirror_vfs.h"

namespace quire::engine {
namespace {

namespace fs = std::filesystem;

class LogCaptureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("quire-capture-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    db_.reset();
    fs::remove_all(dir_);
  }

  void open(std::uint64_t segment_bytes = 64ull << 20, std::uint64_t snapshot_every = 16384) {
    DatabaseOptions options;
    options.log_dir = dir_ / "log";
    options.log_segment_bytes = segment_bytes;
    options.log_snapshot_every_frames = snapshot_every;
    auto db = Database::open((dir_ / "data").string(), options);
    ASSERT_TRUE(db) << db.error().message;
    db_ = std::move(db.value());
  }

  Expected<StmtResult, ExecError> run(std::string_view sql) {
    auto lease = db_->acquire();
    EXPECT_TRUE(lease);
    ResponseBudget budget{1 << 20};
    return execute(**lease, Query{sql, {}, {}, true}, budget);
  }

  static std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  // Closes the database (which folds the WAL into the file) and checks that the log alone
  // rebuilds the file byte for byte.
  void close_and_compare() {
    db_->close();
    db_.reset();
    auto log = log::ReplicationLog::open(dir_ / "log");
    ASSERT_TRUE(log) << log.error().message;
    auto built = log::materialize(**log, dir_ / "rebuilt");
    ASSERT_TRUE(built) << built.error().message;
    EXPECT_EQ(read_file(dir_ / "rebuilt"), read_file(dir_ / "data"));
  }

  fs::path dir_;
  std::shared_ptr<Database> db_;
};

TEST_F(LogCaptureTest, EveryCommitIsInTheLogWhenTheStatementReturns) {
  open();
  auto* log = db_->replication_log();
  ASSERT_NE(log, nullptr);
  const auto base = log->last_frame();
  EXPECT_GE(base, 1u);  // the base image
  ASSERT_TRUE(run("CREATE TABLE t(x)"));
  const auto after_create = log->last_frame();
  EXPECT_GT(after_create, base);
  ASSERT_TRUE(run("INSERT INTO t VALUES (randomblob(10000))"));
  EXPECT_GT(log->last_frame(), after_create);
  // A group commit through the write lane too.
  auto done = db_->write_lane().submit(
      [](sqlite::Connection& conn) { (void)conn.exec("INSERT INTO t VALUES (1)"); });
  ASSERT_TRUE(done.get());
  EXPECT_GT(log->last_frame(), after_create + 1);
  close_and_compare();
}

TEST_F(LogCaptureTest, CommitsAreReadFromTheWalMirrorNotTheFile) {
  open();
  auto key = sqlite::wal_mirror_path((dir_ / "data").string());
  ASSERT_TRUE(key) << key.error();
  auto mirror = WriteMirror::find(*key);
  ASSERT_NE(mirror, nullptr) << "the database holds a mirror of its -wal";
  ASSERT_TRUE(run("CREATE TABLE t(x)"));
  const auto before = mirror->stats();
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(run("INSERT INTO t VALUES (randomblob(100))"));
    EXPECT_EQ(mirror->held(), 0u) << "taken frames are forgotten";
  }
  const auto after = mirror->stats();
  EXPECT_EQ(after.reads_served - before.reads_served, 20u);
  EXPECT_EQ(after.reads_missed, before.reads_missed);
  // A transaction larger than the mirror holds is read from the file, and logged all the same.
  ASSERT_TRUE(run("INSERT INTO t SELECT randomblob(3000) FROM t, t AS u, t AS v LIMIT 4000"));
  EXPECT_GT(mirror->stats().reads_missed, after.reads_missed);
  ASSERT_TRUE(run("INSERT INTO t VALUES (1)"));
  close_and_compare();
}

TEST_F(LogCaptureTest, ACommitTheLogMissedIsTakenBeforeTheWalStartsOver) {
  open();
  ASSERT_TRUE(run("CREATE TABLE t(x)"));
  ASSERT_TRUE(run("INSERT INTO t VALUES (1)"));
  // Another connection of this process commits without the server's hook (as a commit whose
  // capture failed), then a PASSIVE checkpoint copies every frame into the database file, so
  // the next writer starts the WAL over from its first frame.
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "data").string().c_str(), &raw), SQLITE_OK);
    sqlite3_db_config(raw, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    sqlite3_wal_autocheckpoint(raw, 0);
    ASSERT_EQ(sqlite3_exec(raw, "INSERT INTO t VALUES (2)", nullptr, nullptr, nullptr), SQLITE_OK);
    int log = -1, done = -1;
    ASSERT_EQ(sqlite3_wal_checkpoint_v2(raw, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &done),
              SQLITE_OK);
    ASSERT_EQ(log, done) << "every frame copied: the next writer restarts the WAL";
    sqlite3_close(raw);
  }
  auto* log = db_->replication_log();
  const auto before = log->last_frame();
  const auto guarded = db_->log_capture()->wal_restarts_guarded();
  const auto skipped = db_->log_capture()->wal_restart_syncs_skipped();
  ASSERT_TRUE(run("INSERT INTO t VALUES (3)"));
  // The new WAL header was written only after the old generation's missed commit was appended
  // (and the log synced); the commit that restarted the WAL came after it.
  EXPECT_GE(log->last_frame(), before + 2);
  EXPECT_EQ(db_->log_capture()->wal_restarts_guarded(), guarded + 1);
  EXPECT_EQ(db_->log_capture()->wal_restart_syncs_skipped(), skipped) << "the missed commit is synced";
  EXPECT_GE(log->synced_frame(), before + 1);
  auto count = run("SELECT count(*) FROM t");
  ASSERT_TRUE(count);
  EXPECT_EQ(count->rows[0][0], Value(std::int64_t{3}));
  close_and_compare();
}

TEST_F(LogCaptureTest, AWalRestartAfterACheckpointDoesNotSyncTheLogAgain) {
  open();
  ASSERT_TRUE(run("CREATE TABLE t(x)"));
  ASSERT_TRUE(run("INSERT INTO t VALUES (1)"));
  auto* capture = db_->log_capture();
  auto* log = db_->replication_log();
  EXPECT_LT(log->synced_frame(), log->last_frame());
  // The server's checkpoint: the log captured and synced up to its end, then every frame
  // copied into the database file, so the next writer starts the WAL over.
  ASSERT_TRUE(db_->checkpoint(SQLITE_CHECKPOINT_PASSIVE));
  EXPECT_EQ(log->synced_frame(), log->last_frame());
  const auto guarded = capture->wal_restarts_guarded();
  const auto skipped = capture->wal_restart_syncs_skipped();
  ASSERT_TRUE(run("INSERT INTO t VALUES (2)"));
  EXPECT_EQ(capture->wal_restarts_guarded(), guarded + 1);
  EXPECT_EQ(capture->wal_restart_syncs_skipped(), skipped + 1);
  close_and_compare();
}

TEST_F(LogCaptureTest, CommitsTheLogMissedAreAppendedAtOpen) {
  open();
  ASSERT_TRUE(run("CREATE TABLE t(x)"));
  ASSERT_TRUE(run("INSERT INTO t VALUES (1)"));
  db_->close();
  db_.reset();
  // Another writer commits to the WAL without the server's hook (as if the server died between
  // commits and their capture), and leaves its frames in the WAL.
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "data").string().c_str(), &raw), SQLITE_OK);
    sqlite3_db_config(raw, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    sqlite3_wal_autocheckpoint(raw, 0);
    ASSERT_EQ(sqlite3_exec(raw, "INSERT INTO t VALUES (2); INSERT INTO t SELECT x + 10 FROM t;",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(raw);
  }
  ASSERT_GT(fs::file_size(dir_ / "data-wal"), 0u);
  open();
  auto count = run("SELECT count(*) FROM t");
  ASSERT_TRUE(count);
  EXPECT_EQ(count->rows[0][0], Value(std::int64_t{4}));
  close_and_compare();
}

TEST_F(LogCaptureTest, SnapshotsAndCompactionKeepTheLogSmallAndComplete) {
  open(/*segment_bytes=*/256 * 1024, /*snapshot_every=*/40);
  ASSERT_TRUE(run("CREATE TABLE t(x)"));
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(run("INSERT INTO t VALUES (randomblob(3000))"));
  auto* log = db_->replication_log();
  for (int i = 0; i < 200 && log->first_available_frame() == 1; ++i) {
    std::this_thread::sleep_for(
        std::chrono::milliseconds(10));  // the snapshot job runs in the background
  }
  EXPECT_FALSE(log->snapshots().empty());
  EXPECT_GT(log->first_available_frame(), 1u)
      << "sealed segments covered by a snapshot are deleted";
  close_and_compare();
}

TEST_F(LogCaptureTest, StatementsThatWouldBypassTheLogAreRefused) {
  open();
  for (const char* sql : {"PRAGMA journal_mode=DELETE", "PRAGMA journal_mode = MEMORY",
                          "PRAGMA wal_autocheckpoint=100", "PRAGMA locking_mode=EXCLUSIVE",
                          "PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA wal_checkpoint"}) {
    auto r = run(sql);
    ASSERT_FALSE(r) << sql;
    EXPECT_EQ(r.error().code, "SQLITE_AUTH") << sql;
  }
  auto mode = run("PRAGMA journal_mode");  // reading it is fine
  ASSERT_TRUE(mode);
  EXPECT_EQ(mode->rows[0][0], Value(std::string("wal")));
}

}  // namespace
}  // namespace quire::engine
