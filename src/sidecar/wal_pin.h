// Holds the application's WAL still while the sidecar reads it: SQLite connections of the
// sidecar's own on a database that another program writes, with a read transaction always open
// (Litestream's technique), and the sidecar's checkpoint under the write lock.
//
// Why a read transaction pins the WAL (SQLite 3.x wal.c): a checkpoint copies frames into the
// database file only up to the oldest reader's mark, and a writer restarts the WAL (overwrites it
// from frame 1) only when every frame was copied and no reader is using the WAL. So while a read
// transaction that began before the sidecar's last capture is open, every committed frame the
// sidecar has not captured yet stays in the WAL. The invariant this class keeps: from the first
// hold() on, some read transaction is open at every instant, and each new one begins before the
// previous one ends (two connections take turns: refresh()). Then a restart (or a TRUNCATE
// checkpoint) can only happen when the sidecar had captured everything: a reader that began with
// the WAL fully copied (read mark 0) blocks all copying, so no frame added after it can ever be
// copied, and without copying there is no restart.
//
// checkpoint() is the sidecar's own: the held read transaction also keeps the application's
// auto-checkpoint from ever letting the WAL start over, so the sidecar does it. It takes the write
// lock (BEGIN IMMEDIATE: application writers wait in their busy handler meanwhile), captures
// everything through the caller's callback, lets go of its read transaction, runs a PASSIVE
// checkpoint, takes a read transaction again (with the WAL fully copied it reads the file only,
// mark 0, which lets the application's next writer restart the WAL), and releases the lock.
//
// The database file stays open on a descriptor of this class for its whole life: closing any
// descriptor of a file drops every POSIX lock the process holds on it, SQLite's included, so the
// sidecar reads the database file only through db_file().
//
// Thread model: one thread at a time (the sidecar's loop).
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "common/expected.h"
#include "log/file.h"

namespace quire::sidecar {

// What the database file's header says (read from the file, no SQLite connection).
struct DatabaseHeader {
  std::uint32_t page_size = 0;
  bool wal = false;  // file format read/write versions (bytes 18, 19) both 2
};

// Reads the first 100 bytes of `db_path`. Errors name the path: missing, empty, not SQLite.
Expected<DatabaseHeader, std::string> read_database_header(const std::filesystem::path& db_path);

// PRAGMA journal_mode=WAL on `db_path` (needs no other connection in a rollback-journal mode).
Expected<void, std::string> enable_wal(const std::filesystem::path& db_path);

struct CheckpointResult {
  bool locked = false;  // false: the write lock was busy; nothing was done
  int wal_frames = 0;   // frames in the WAL (sqlite3_wal_checkpoint_v2's pnLog)
  int backfilled = 0;   // frames copied into the database file (pnCkpt)
};

class WalPin {
 public:
  struct Options {
    // How long BEGIN IMMEDIATE waits for the application's write transaction (checkpoint()).
    std::chrono::milliseconds lock_timeout{200};
    // How long beginning a read transaction may wait on a transient SQLITE_BUSY.
    std::chrono::milliseconds read_timeout{2000};
  };

  // Opens the database file and three connections (two readers that take turns, one for the
  // write lock), with SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE: closing them never checkpoints or deletes
  // the WAL. Holds nothing yet.
  static Expected<std::unique_ptr<WalPin>, std::string> open(const std::filesystem::path& db_path,
                                                             const Options& options);
  ~WalPin();
  WalPin(const WalPin&) = delete;
  WalPin& operator=(const WalPin&) = delete;

  // Begins a read transaction unless one is held.
  Expected<void, std::string> hold();
  // Begins a read transaction on the other connection, then ends the held one: the read mark
  // moves forward (the application's checkpoints may copy up to it) and the invariant holds
  // throughout. On failure the old transaction stays held.
  Expected<void, std::string> refresh();
  // Ends every read transaction: the invariant no longer holds (before a new lineage, at exit).
  void release();
  bool held() const { return held_ != nullptr; }

  // The sidecar's checkpoint (see the top of this file). `capture_all` runs under the write lock
  // and must take every committed transaction into the log (and make it durable); when it fails,
  // nothing else is done and its error is returned.
  Expected<CheckpointResult, std::string> checkpoint(
      const std::function<Expected<void, std::string>()>& capture_all);
  // A TRUNCATE checkpoint that waits for nothing (best effort, before a new base image, so the
  // WAL to fold into it is short). Requires !held().
  void try_truncate();

  // True when the path now names another file than the one opened (the database was replaced).
  bool file_replaced() const;
  const log::File& db_file() const { return db_file_; }
  const std::filesystem::path& db_path() const { return db_path_; }

 private:
  struct Db {
    sqlite3* handle = nullptr;
    ~Db();
  };
  WalPin(std::filesystem::path db_path, const Options& options)
      : db_path_(std::move(db_path)), options_(options) {}
  Expected<void, std::string> begin_read(Db& db);
  void end_read(Db& db);
  std::string error_of(const Db& db, const std::string& what) const;

  std::filesystem::path db_path_;
  Options options_;
  log::File db_file_;  // declared before the connections: closed after them
  Db readers_[2];
  Db writer_;
  Db* held_ = nullptr;  // the reader with an open read transaction, or null
};

}  // namespace quire::sidecar
