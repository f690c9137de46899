// The sidecar (src/sidecar/): an application connection writes with plain SQLite in WAL mode
// while the sidecar captures its WAL into a log and ships it; restores are compared with the
// live database. Covers: only committed transactions are captured; WAL restarts while running
// continue the lineage; a restart, truncation or replacement while stopped starts a new lineage
// (the old log is still shipped); resume after a stop has no gap and no duplicate; a store that
// is down delays shipping only; the refusals (not WAL, second sidecar).
#include "sidecar/sidecar.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "backup/backup.h"
#include "backup/encryption.h"
#include "storage/file_object_store.h"

namespace quire::sidecar {
namespace {

namespace fs = std::filesystem;

fs::path scratch() {
  auto dir =
      fs::temp_directory_path() / ("quire-sidecar-" + std::to_string(::getpid()) + "-" +
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A plain SQLite connection: the application.
class App {
 public:
  explicit App(const fs::path& path, bool wal = true) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
    if (wal) exec("PRAGMA journal_mode=WAL");
  }
  ~App() { sqlite3_close_v2(db_); }
  void exec(const std::string& sql) {
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK)
        << sql << ": " << (err ? err : "");
  }
  // Returns the checkpoint's result code.
  int checkpoint(int mode) {
    return sqlite3_wal_checkpoint_v2(db_, "main", mode, nullptr, nullptr);
  }
  void insert(int from, int to) {
    for (int i = from; i <= to; ++i) {
      exec("INSERT INTO t VALUES (" + std::to_string(i) + ", 'row-" + std::to_string(i) +
           "', randomblob(300))");
    }
  }
  sqlite3* handle() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

// Every row of t as "id:name:hex(body)", in id order.
std::vector<std::string> rows(const fs::path& path) {
  sqlite3* db = nullptr;
  std::vector<std::string> out;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(
      sqlite3_prepare_v2(db, "SELECT id || ':' || name || ':' || hex(body) FROM t ORDER BY id", -1,
                         &st, nullptr),
      SQLITE_OK)
      << sqlite3_errmsg(db);
  while (sqlite3_step(st) == SQLITE_ROW) {
    out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
  }
  sqlite3_finalize(st);
  sqlite3_close_v2(db);
  return out;
}

std::string integrity(const fs::path& path) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  } else {
    out = sqlite3_errmsg(db);
  }
  sqlite3_finalize(st);
  sqlite3_close_v2(db);
  return out;
}

// Counts the transactions of a log (whole log, from its first available frame).
std::size_t txn_count(log::ReplicationLog& l) {
  auto r = l.read_from(l.first_available_frame());
  EXPECT_TRUE(r.has_value());
  std::size_t n = 0;
  for (;;) {
    auto t = r->next();
    EXPECT_TRUE(t.has_value());
    if (!t || !*t) break;
    ++n;
  }
  return n;
}

// A store that fails every call while `down`.
class SwitchableStore final : public storage::ObjectStore {
 public:
  explicit SwitchableStore(std::unique_ptr<storage::ObjectStore> inner)
      : inner_(std::move(inner)) {}
  std::atomic<bool> down{false};

  storage::StorageResult<void> put(std::string_view k, std::string_view b) override {
    if (down) return fail();
    return inner_->put(k, b);
  }
  storage::StorageResult<std::string> get(std::string_view k) override {
    if (down) return fail();
    return inner_->get(k);
  }
  storage::StorageResult<std::string> get_range(std::string_view k, std::uint64_t o,
                                                std::uint64_t n) override {
    if (down) return fail();
    return inner_->get_range(k, o, n);
  }
  storage::StorageResult<storage::ObjectInfo> head(std::string_view k) override {
    if (down) return fail();
    return inner_->head(k);
  }
  storage::StorageResult<std::vector<storage::ObjectInfo>> list(std::string_view p) override {
    if (down) return fail();
    return inner_->list(p);
  }
  storage::StorageResult<void> remove(std::string_view k) override {
    if (down) return fail();
    return inner_->remove(k);
  }
  storage::StorageResult<void> remove_many(std::span<const std::string> k) override {
    if (down) return fail();
    return inner_->remove_many(k);
  }
  storage::StorageResult<std::unique_ptr<storage::MultipartWriter>> open_writer(
      std::string_view k) override {
    if (down) return fail();
    return inner_->open_writer(k);
  }
  std::string describe() const override { return inner_->describe(); }
  std::size_t part_size() const override { return inner_->part_size(); }

 private:
  static Unexpected<storage::StorageError> fail() {
    return unexpected(storage::storage_error(storage::StorageErrc::kTransient, "store is down"));
  }
  std::unique_ptr<storage::ObjectStore> inner_;
};

struct Fixture {
  fs::path dir = scratch();
  fs::path db = dir / "app.db";
  std::unique_ptr<storage::ObjectStore> store =
      std::move(storage::FileObjectStore::open(dir / "store").value());
  SidecarOptions options() const {
    SidecarOptions o;
    o.db_path = db;
    o.ship_interval = std::chrono::milliseconds(0);
    o.shutdown_timeout = std::chrono::milliseconds(2000);
    return o;
  }
  // The backup restored (latest) to a new file.
  fs::path restore(const std::string& name = "restored.db", const std::string& prefix = "app.db") {
    const fs::path out = dir / name;
    auto r = backup::restore(*store, prefix, backup::RestoreTarget::latest(), out);
    EXPECT_TRUE(r.has_value()) << r.error().message;
    return out;
  }
  std::size_t lineages() {
    auto reader = backup::BackupReader::open(*store, "app.db");
    EXPECT_TRUE(reader.has_value());
    return reader ? reader->lineages().size() : 0;
  }
};

void create_table(App& app) {
  app.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body BLOB)");
}

TEST(Sidecar, CapturesOnlyCommittedTransactions) {
  Fixture fx;
  App app(fx.db);
  create_table(app);
  app.exec("PRAGMA cache_size=5");  // big transactions spill uncommitted pages into the WAL
  auto sc = Sidecar::open(fx.options(), *fx.store);
  ASSERT_TRUE(sc.has_value()) << sc.error();
  auto& s = *sc.value();
  EXPECT_EQ(s.lineages_started(), 1u);

  app.exec("BEGIN");
  app.insert(1, 400);
  auto during = s.capture();
  ASSERT_TRUE(during.has_value()) << during.error();
  EXPECT_EQ(during->txns, 0u) << "an open transaction's spilled frames were captured";
  app.exec("COMMIT");
  auto after = s.capture();
  ASSERT_TRUE(after.has_value()) << after.error();
  EXPECT_EQ(after->txns, 1u);

  app.exec("BEGIN");
  app.insert(1000, 1400);
  app.exec("ROLLBACK");
  auto rolled = s.capture();
  ASSERT_TRUE(rolled.has_value());
  EXPECT_EQ(rolled->txns, 0u) << "a rolled-back transaction was captured";

  app.insert(401, 405);
  auto five = s.capture();
  ASSERT_TRUE(five.has_value());
  EXPECT_EQ(five->txns, 5u);
  auto shipped = s.ship();
  ASSERT_TRUE(shipped.has_value()) << shipped.error().message;
  EXPECT_TRUE(shipped->up_to_date);
  const auto out = fx.restore();
  EXPECT_EQ(integrity(out), "ok");
  EXPECT_EQ(rows(out), rows(fx.db));
  EXPECT_EQ(rows(out).size(), 405u);
}

TEST(Sidecar, NewLineageFoldsTheExistingWalIntoItsBase) {
  Fixture fx;
  App app(fx.db);
  app.exec("PRAGMA wal_autocheckpoint=0");
  create_table(app);
  app.insert(1, 30);
  // Another reader of the application's keeps the sidecar's TRUNCATE from emptying the WAL (and
  // lets it copy only rows 1..30 into the file): the base must take the rest from the WAL.
  App other(fx.db);
  other.exec("BEGIN");
  other.exec("SELECT count(*) FROM t");
  app.insert(31, 50);
  auto sc = Sidecar::open(fx.options(), *fx.store);
  ASSERT_TRUE(sc.has_value()) << sc.error();
  auto& s = *sc.value();
  // The WAL's last commit is recorded after the base, so a restart can resume from it.
  EXPECT_TRUE(s.log().last_wal_position().has_value());
  other.exec("COMMIT");
  app.insert(51, 60);
  ASSERT_TRUE(s.capture().has_value());
  ASSERT_TRUE(s.ship().has_value());
  EXPECT_EQ(rows(fx.restore()), rows(fx.db));
}

TEST(Sidecar, WalRestartsWhileRunningContinueTheLineage) {
  Fixture fx;
  App app(fx.db);
  create_table(app);
  auto o = fx.options();
  o.checkpoint_frames = 20;
  auto sc = Sidecar::open(o, *fx.store);
  ASSERT_TRUE(sc.has_value()) << sc.error();
  auto& s = *sc.value();
  const auto id = s.log().log_id();
  int next = 1;
  int checkpoints = 0;
  std::uint32_t restarts = 0;
  std::uint32_t salt = s.cursor().salt1;
  for (int round = 0; round < 8; ++round) {
    app.insert(next, next + 29);
    next += 30;
    ASSERT_TRUE(s.capture().has_value());
    auto k = s.checkpoint_if_due();
    ASSERT_TRUE(k.has_value()) << k.error();
    checkpoints += *k ? 1 : 0;
    if (round % 3 == 2) {
      // The application's own TRUNCATE: allowed only when everything was captured.
      app.checkpoint(SQLITE_CHECKPOINT_TRUNCATE);
    }
    if (s.cursor().salt1 != salt) ++restarts;
    salt = s.cursor().salt1;
  }
  app.insert(next, next + 5);
  ASSERT_TRUE(s.capture().has_value());
  EXPECT_GE(checkpoints, 3);
  EXPECT_GE(restarts, 3u) << "the WAL never started over";
  EXPECT_EQ(s.lineages_started(), 1u);
  EXPECT_EQ(s.log().log_id(), id);
  ASSERT_TRUE(s.ship().has_value());
  const auto out = fx.restore();
  EXPECT_EQ(integrity(out), "ok");
  EXPECT_EQ(rows(out), rows(fx.db));
  EXPECT_EQ(fx.lineages(), 1u);
}

TEST(Sidecar, ApplicationCannotTruncateUncapturedFrames) {
  Fixture fx;
  App app(fx.db);
  create_table(app);
  auto sc = Sidecar::open(fx.options(), *fx.store);
  ASSERT_TRUE(sc.has_value()) << sc.error();
  auto& s = *sc.value();
  app.insert(1, 10);
  ASSERT_TRUE(s.capture().has_value());
  app.insert(11, 20);  // not captured yet
  sqlite3_busy_timeout(app.handle(), 0);
  EXPECT_EQ(app.checkpoint(SQLITE_CHECKPOINT_TRUNCATE) & 0xff, SQLITE_BUSY);
  sqlite3_busy_timeout(app.handle(), 5000);
  app.insert(21, 25);
  auto c = s.capture();
  ASSERT_TRUE(c.has_value());
  EXPECT_FALSE(c->new_lineage);
  EXPECT_EQ(c->txns, 15u);
  ASSERT_TRUE(s.ship().has_value());
  EXPECT_EQ(rows(fx.restore()), rows(fx.db));
}

TEST(Sidecar, ResumesAfterRestartWithoutGapOrDuplicate) {
  Fixture fx;
  App app(fx.db);
  app.exec("PRAGMA wal_autocheckpoint=0");
  create_table(app);
  ASSERT_EQ(app.checkpoint(SQLITE_CHECKPOINT_TRUNCATE), SQLITE_OK);  // base: no WAL to fold in
  log::LogId id{};
  {
    auto sc = Sidecar::open(fx.options(), *fx.store);
    ASSERT_TRUE(sc.has_value()) << sc.error();
    auto& s = *sc.value();
    id = s.log().log_id();
    app.insert(1, 20);
    auto c = s.capture();
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(c->txns, 20u);
    ASSERT_TRUE(s.ship().has_value());
    app.insert(21, 30);
    ASSERT_TRUE(s.capture().has_value());  // captured, not shipped: the sidecar "crashes"
  }
  app.insert(31, 45);  // while no sidecar runs
  auto sc = Sidecar::open(fx.options(), *fx.store);
  ASSERT_TRUE(sc.has_value()) << sc.error();
  auto& s = *sc.value();
  EXPECT_EQ(s.lineages_started(), 0u);
  EXPECT_EQ(s.log().log_id(), id);
  EXPECT_EQ(s.retired_logs(), 0u);
  // base + 45 commits, each exactly once.
  EXPECT_EQ(txn_count(s.log()), 1u + 45u);
  app.insert(46, 50);
  auto c = s.capture();
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->txns, 5u);
  EXPECT_EQ(txn_count(s.log()), 1u + 50u);
  auto shipped = s.ship();
  ASSERT_TRUE(shipped.has_value()) << shipped.error().message;
  EXPECT_EQ(shipped->txns, 30u);
  const auto out = fx.restore();
  EXPECT_EQ(integrity(out), "ok");
  EXPECT_EQ(rows(out), rows(fx.db));
  EXPECT_EQ(fx.lineages(), 1u);
}

TEST(Sidecar, TruncateWhileStoppedStartsANewLineageAndShipsTheOldLog) {
  Fixture fx;
  App app(fx.db);
  create_table(app);
  log::LogId first{};
  {
    auto sc = Sidecar::open(fx.options(), *fx.store);
    ASSERT_TRUE(sc.has_value()) << sc.error();
    first = sc.value()->log().log_id();
    app.insert(1, 10);
    ASSERT_TRUE(sc.value()->capture().has_value());
    ASSERT_TRUE(sc.value()->ship().has_value());
    app.insert(11, 20);
    ASSERT_TRUE(sc.value()->capture().has_value());  // not shipped
  }
  app.insert(21, 30);  // lost from the WAL by the truncation below: only the new base has them
  ASSERT_EQ(app.checkpoint(SQLITE_CHECKPOINT_TRUNCATE), SQLITE_OK);
  app.insert(31, 35);
  auto sc = Sidecar::open(fx.options(), *fx.store);
  ASSERT_TRUE(sc.has_value()) << sc.error();
  auto& s = *sc.value();
  EXPECT_EQ(s.lineages_started(), 1u);
  EXPECT_NE(s.log().log_id(), first);
  EXPECT_EQ(s.retired_logs(), 1u);
  auto shipped = s.ship();
  ASSERT_TRUE(shipped.has_value()) << shipped.error().message;
  EXPECT_EQ(shipped->retired_shipped, 1u);
  EXPECT_EQ(s.retired_logs(), 0u);
  EXPECT_EQ(fx.lineages(), 2u);
  auto reader = backup::BackupReader::open(*fx.store, "app.db");
  ASSERT_TRUE(reader.has_value());
  EXPECT_EQ(reader->lineages().front().log_id, first);
  // The old lineage holds rows 1..20 (everything that sidecar captured).
  const fs::path old = fx.dir / "old.db";
  auto target = backup::RestoreTarget::latest();
  target.log_id = first;
  ASSERT_TRUE(reader->restore(target, old).has_value());
  EXPECT_EQ(rows(old).size(), 20u);
  const auto out = fx.restore();
  EXPECT_EQ(integrity(out), "ok");
  EXPECT_EQ(rows(out), rows(fx.db));
}

TEST(Sidecar, WalRestartWhileStoppedStartsANewLineage) {
  Fixture fx;
  App app(fx.db);
  create_table(app);
  {
    auto sc = Sidecar::open(fx.options(), *fx.store);
    ASSERT_TRUE(sc.has_value()) << sc.error();
    app.insert(1, 10);
    ASSERT_TRUE(sc.value()->capture().has_value());
    ASSERT_TRUE(sc.value()->ship().has_value());
  }
  app.insert(11, 20);
  ASSERT_EQ(app.checkpoint(SQLITE_CHECKPOINT_RESTART), SQLITE_OK);
  app.insert(21, 22);  // the writer starts the WAL over: frames 11..20 are overwritten
  auto sc = Sidecar::open(fx.options(), *fx.store);
  ASSERT_TRUE(sc.has_value()) << sc.error();
  EXPECT_EQ(sc.value()->lineages_started(), 1u);
  ASSERT_TRUE(sc.value()->ship().has_value());
  EXPECT_EQ(fx.lineages(), 2u);
  EXPECT_EQ(rows(fx.restore()), rows(fx.db));
}

TEST(Sidecar, ReplacedDatabaseFileStartsANewLineage) {
  Fixture fx;
  {
    App app(fx.db);
    create_table(app);
    app.insert(1, 5);
  }
  auto sc = Sidecar::open(fx.options(), *fx.store);
  ASSERT_TRUE(sc.has_value()) << sc.error();
  auto& s = *sc.value();
  const fs::path other = fx.dir / "other.db";
  {
    App app(other);
    create_table(app);
    app.insert(100, 103);
    app.checkpoint(SQLITE_CHECKPOINT_TRUNCATE);
  }
  fs::remove(fx.db.string() + "-wal");
  fs::remove(fx.db.string() + "-shm");
  fs::rename(other, fx.db);
  auto c = s.capture();
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_TRUE(c->new_lineage);
  ASSERT_TRUE(s.ship().has_value());
  const auto out = fx.restore();
  EXPECT_EQ(rows(out).size(), 4u);
  EXPECT_EQ(rows(out), rows(fx.db));
}

TEST(Sidecar, StoreDownKeepsCapturingAndCatchesUp) {
  Fixture fx;
  App app(fx.db);
  create_table(app);
  auto switchable = std::make_unique<SwitchableStore>(std::move(fx.store));
  SwitchableStore& store = *switchable;
  fx.store = std::move(switchable);
  auto sc = Sidecar::open(fx.options(), *fx.store);
  ASSERT_TRUE(sc.has_value()) << sc.error();
  auto& s = *sc.value();
  app.insert(1, 10);
  ASSERT_TRUE(s.capture().has_value());
  ASSERT_TRUE(s.ship().has_value());
  store.down = true;
  for (int i = 0; i < 5; ++i) {
    app.insert(11 + i * 10, 20 + i * 10);
    auto c = s.capture();
    ASSERT_TRUE(c.has_value()) << c.error();
    EXPECT_EQ(c->txns, 10u);
    auto shipped = s.ship();
    ASSERT_FALSE(shipped.has_value());
    EXPECT_EQ(shipped.error().kind, backup::BackupErrc::kStorage);
    EXPECT_NE(shipped.error().message.find("app.db/"), std::string::npos)
        << "the error names no object key: " << shipped.error().message;
  }
  store.down = false;
  auto shipped = s.ship();
  ASSERT_TRUE(shipped.has_value()) << shipped.error().message;
  EXPECT_EQ(shipped->txns, 50u);
  EXPECT_TRUE(shipped->up_to_date);
  EXPECT_EQ(rows(fx.restore()), rows(fx.db));
}

TEST(Sidecar, RunStopsWithEverythingShipped) {
  Fixture fx;
  App app(fx.db);
  create_table(app);
  auto o = fx.options();
  o.ship_interval = std::chrono::milliseconds(50);
  o.capture_interval = std::chrono::milliseconds(10);
  auto sc = Sidecar::open(o, *fx.store);
  ASSERT_TRUE(sc.has_value()) << sc.error();
  auto& s = *sc.value();
  Expected<void, std::string> result = unexpected(std::string("not run"));
  std::thread loop([&] { result = s.run(); });
  app.insert(1, 200);
  s.stop();
  loop.join();
  ASSERT_TRUE(result.has_value()) << result.error();
  EXPECT_EQ(rows(fx.restore()), rows(fx.db));
  EXPECT_EQ(rows(fx.db).size(), 200u);
}

TEST(Sidecar, EncryptsWithTheGivenKey) {
  Fixture fx;
  App app(fx.db);
  create_table(app);
  auto key = backup::parse_encryption_key(std::string(64, 'a'), "test key");
  ASSERT_TRUE(key.has_value());
  auto o = fx.options();
  o.encryption_key = *key;
  o.retention = std::chrono::hours(1);
  {
    auto sc = Sidecar::open(o, *fx.store);
    ASSERT_TRUE(sc.has_value()) << sc.error();
    app.insert(1, 30);
    ASSERT_TRUE(sc.value()->capture().has_value());
    auto shipped = sc.value()->ship();
    ASSERT_TRUE(shipped.has_value()) << shipped.error().message;
  }
  const fs::path out = fx.dir / "plain.db";
  EXPECT_FALSE(
      backup::restore(*fx.store, "app.db", backup::RestoreTarget::latest(), out).has_value());
  auto r = backup::restore(*fx.store, "app.db", backup::RestoreTarget::latest(), out, &*key);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(rows(out), rows(fx.db));
}

TEST(Sidecar, RefusesADatabaseNotInWalMode) {
  Fixture fx;
  {
    App app(fx.db, /*wal=*/false);
    create_table(app);
  }
  auto sc = Sidecar::open(fx.options(), *fx.store);
  ASSERT_FALSE(sc.has_value());
  EXPECT_NE(sc.error().find("not in WAL mode"), std::string::npos) << sc.error();
  ASSERT_TRUE(enable_wal(fx.db).has_value());
  auto again = Sidecar::open(fx.options(), *fx.store);
  EXPECT_TRUE(again.has_value()) << again.error();
}

TEST(Sidecar, RefusesASecondSidecarOnTheSameStateDirectory) {
  Fixture fx;
  App app(fx.db);
  create_table(app);
  auto first = Sidecar::open(fx.options(), *fx.store);
  ASSERT_TRUE(first.has_value()) << first.error();
  auto second = Sidecar::open(fx.options(), *fx.store);
  ASSERT_FALSE(second.has_value());
  EXPECT_NE(second.error().find("another `quire replicate`"), std::string::npos) << second.error();
}

TEST(Sidecar, RefusesMissingAndNonSqliteFiles) {
  Fixture fx;
  auto missing = Sidecar::open(fx.options(), *fx.store);
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().find("does not exist"), std::string::npos) << missing.error();
  {
    std::FILE* f = std::fopen(fx.db.c_str(), "w");
    std::fputs(
        "hello, this is not a database at all; it is plain text of some length......."
        "..........................................",
        f);
    std::fclose(f);
  }
  auto text = Sidecar::open(fx.options(), *fx.store);
  ASSERT_FALSE(text.has_value());
  EXPECT_NE(text.error().find("not an SQLite database"), std::string::npos) << text.error();
}

}  // namespace
}  // namespace quire::sidecar
