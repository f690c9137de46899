#include "sidecar/wal_pin.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cassert>
#include <cstring>

namespace quire::sidecar {

namespace fs = std::filesystem;

namespace {

std::string sqlite_message(sqlite3* db, int rc) {
  return db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
}

// Runs SQL that returns no rows; the SQLite result code.
int exec(sqlite3* db, const char* sql) { return sqlite3_exec(db, sql, nullptr, nullptr, nullptr); }

}  // namespace

Expected<DatabaseHeader, std::string> read_database_header(const fs::path& db_path) {
  auto file = log::File::open(db_path, O_RDONLY);
  if (!file) {
    if (file.error().code == log::LogErrc::kNotFound) {
      return unexpected(db_path.string() + " does not exist");
    }
    return unexpected(file.error().message);
  }
  unsigned char h[100];
  auto got = file->read_at(h, sizeof h, 0);
  if (!got) return unexpected(got.error().message);
  if (*got == 0) {
    return unexpected(db_path.string() +
                      " is empty: create its schema (in WAL mode) before replicating it");
  }
  if (*got < sizeof h || std::memcmp(h, "SQLite format 3", 16) != 0) {
    return unexpected(db_path.string() + " is not an SQLite database");
  }
  DatabaseHeader out;
  const std::uint32_t ps = (std::uint32_t{h[16]} << 8) | h[17];
  out.page_size = ps == 1 ? 65536 : ps;
  out.wal = h[18] == 2 && h[19] == 2;
  return out;
}

Expected<void, std::string> enable_wal(const fs::path& db_path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  std::string mode;
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt* st = nullptr;
    rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, nullptr);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
      const auto* text = sqlite3_column_text(st, 0);
      mode = text != nullptr ? reinterpret_cast<const char*>(text) : "";
      rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
  }
  std::string err = rc == SQLITE_OK ? "" : sqlite_message(db, rc);
  sqlite3_close_v2(db);
  if (!err.empty()) return unexpected("switching " + db_path.string() + " to WAL: " + err);
  if (mode != "wal") {
    return unexpected("switching " + db_path.string() + " to WAL: SQLite kept journal_mode=" +
                      mode + " (another connection has it open?)");
  }
  return {};
}

WalPin::Db::~Db() { sqlite3_close_v2(handle); }

Expected<std::unique_ptr<WalPin>, std::string> WalPin::open(const fs::path& db_path,
                                                            const Options& options) {
  std::unique_ptr<WalPin> pin(new WalPin(db_path, options));
  auto file = log::File::open(db_path, O_RDONLY);
  if (!file) return unexpected(file.error().message);
  pin->db_file_ = std::move(file.value());
  Db* all[] = {&pin->readers_[0], &pin->readers_[1], &pin->writer_};
  for (Db* db : all) {
    const int rc = sqlite3_open_v2(db_path.c_str(), &db->handle,
                                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      return unexpected("opening " + db_path.string() + ": " + sqlite_message(db->handle, rc));
    }
    // Closing our connections must never checkpoint the WAL or delete it behind the log.
    sqlite3_db_config(db->handle, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    sqlite3_busy_timeout(db->handle, static_cast<int>(options.read_timeout.count()));
  }
  return pin;
}

WalPin::~WalPin() { release(); }

std::string WalPin::error_of(const Db& db, const std::string& what) const {
  return what + " on " + db_path_.string() + ": " + sqlite3_errmsg(db.handle);
}

Expected<void, std::string> WalPin::begin_read(Db& db) {
  assert(sqlite3_get_autocommit(db.handle) != 0);
  if (exec(db.handle, "BEGIN") != SQLITE_OK) return unexpected(error_of(db, "BEGIN"));
  // A deferred transaction reads (and takes its WAL read mark) at its first SELECT.
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db.handle, "SELECT count(*) FROM sqlite_schema", -1, &st, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW) {
    std::string err = error_of(db, "beginning a read transaction");
    exec(db.handle, "ROLLBACK");
    return unexpected(std::move(err));
  }
  return {};
}

void WalPin::end_read(Db& db) {
  if (sqlite3_get_autocommit(db.handle) != 0) return;
  if (exec(db.handle, "COMMIT") != SQLITE_OK) exec(db.handle, "ROLLBACK");
}

Expected<void, std::string> WalPin::hold() {
  if (held_ != nullptr) return {};
  if (auto r = begin_read(readers_[0]); !r) return r;
  held_ = &readers_[0];
  return {};
}

Expected<void, std::string> WalPin::refresh() {
  if (held_ == nullptr) return hold();
  Db& next = held_ == &readers_[0] ? readers_[1] : readers_[0];
  if (auto r = begin_read(next); !r) return r;
  end_read(*held_);
  held_ = &next;
  return {};
}

void WalPin::release() {
  for (Db& db : readers_) {
    if (db.handle != nullptr) end_read(db);
  }
  held_ = nullptr;
}

Expected<CheckpointResult, std::string> WalPin::checkpoint(
    const std::function<Expected<void, std::string>()>& capture_all) {
  CheckpointResult out;
  sqlite3_busy_timeout(writer_.handle, static_cast<int>(options_.lock_timeout.count()));
  const int rc = exec(writer_.handle, "BEGIN IMMEDIATE");
  sqlite3_busy_timeout(writer_.handle, static_cast<int>(options_.read_timeout.count()));
  if ((rc & 0xff) == SQLITE_BUSY) return out;
  if (rc != SQLITE_OK) return unexpected(error_of(writer_, "BEGIN IMMEDIATE"));
  out.locked = true;
  // From here until ROLLBACK no transaction can commit: whatever capture_all() reads is all.
  if (auto r = capture_all(); !r) {
    exec(writer_.handle, "ROLLBACK");
    return unexpected(std::move(r).error());
  }
  Db& idle = held_ != nullptr ? *held_ : readers_[0];
  end_read(idle);
  held_ = nullptr;
  sqlite3_wal_checkpoint_v2(idle.handle, "main", SQLITE_CHECKPOINT_PASSIVE, &out.wal_frames,
                            &out.backfilled);
  auto again = begin_read(idle);
  if (again) held_ = &idle;
  exec(writer_.handle, "ROLLBACK");
  if (!again) return unexpected(std::move(again).error());
  return out;
}

void WalPin::try_truncate() {
  assert(held_ == nullptr);
  sqlite3* db = readers_[0].handle;
  sqlite3_busy_timeout(db, 0);
  sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
  sqlite3_busy_timeout(db, static_cast<int>(options_.read_timeout.count()));
}

bool WalPin::file_replaced() const {
  struct stat now, ours;
  if (::stat(db_path_.c_str(), &now) != 0) return true;
  if (::fstat(db_file_.fd(), &ours) != 0) return true;
  return now.st_dev != ours.st_dev || now.st_ino != ours.st_ino || ours.st_nlink == 0;
}

}  // namespace quire::sidecar
