// RAII over one sqlite3 connection, opened with quire's production defaults, with a cache of
// prepared statements.
//
// Thread model: a Connection is used by one thread at a time (SQLITE_OPEN_NOMUTEX). The engine
// hands connections out of a pool; whoever holds one owns it exclusively.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <list>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/expected.h"
#include "sqlite/statement.h"

namespace quire::sqlite {

// A failed SQLite call: the extended result code and sqlite3_errmsg at the time.
struct Error {
  int rc = SQLITE_ERROR;
  std::string message;
  int offset = -1;  // byte offset of a syntax error in the SQL text, when SQLite reports one
};

// For a hook (sqlite3_commit_hook, sqlite3_wal_hook) that makes the statement running on
// connection `db` fail with `hook_rc` (what the statement then returns: the WAL hook's own
// return value, SQLITE_CONSTRAINT_COMMITHOOK for a commit hook): SQLite reports only its generic
// text for that code. Called from inside the hook, on the thread running the statement, it
// makes the error that statement's failure is reported with (Connection::last_error, exec) be
// `reported` instead. One per thread; it applies to the next error read on this thread for
// `db` (for any connection when `db` is null: a commit hook is not told which one runs it) if
// that error's code is `hook_rc`, and is dropped by any other.
void set_hook_error(sqlite3* db, int hook_rc, Error reported);

struct OpenOptions {
  bool read_only = false;
  bool create = true;
  int busy_timeout_ms = 5000;
  // Page cache per connection, in KiB (PRAGMA cache_size = -N).
  int cache_size_kib = 8 * 1024;
  std::int64_t mmap_size = 256LL << 20;
  // synchronous=FULL instead of NORMAL: every commit is fsynced (NORMAL: WAL is synced at
  // checkpoints; a power loss can drop the last transactions, a process crash cannot).
  bool synchronous_full = false;
  // PRAGMA max_page_count when positive: writes that would grow the file past it fail with
  // SQLITE_FULL (a per-namespace size quota); reads and deletes go on working.
  std::int64_t max_page_count = 0;
  // The SQLite VFS to open through (a read replica's overlay VFS); empty: the default one.
  std::string vfs;
};

// Why a connection may not write now (see WriteAccess).
struct AccessError {
  std::string code;  // e.g. "TRANSACTION_TIMEOUT", "SERVER_SHUTTING_DOWN"
  std::string message;
};

// The arbiter of writes on a connection, consulted by the executor (engine::WriteClaim is the
// server's): SQLite allows one writer per database file, and the server decides who it is
// before SQLite's own lock is ever contended, so no client sees SQLITE_BUSY for lock contention.
class WriteAccess {
 public:
  virtual ~WriteAccess() = default;
  // Called before a statement that writes (or BEGIN IMMEDIATE/EXCLUSIVE) runs; blocks until the
  // connection may write. Cheap when it may already.
  virtual Expected<void, AccessError> acquire() = 0;
  // Called after a statement ran: gives the write access up unless the connection is inside a
  // write transaction.
  virtual void release_if_idle() = 0;
  // True after the connection's transaction was rolled back behind its user's back (it held the
  // write lock too long while others waited). Cleared by clear_aborted().
  virtual bool aborted() const = 0;
  virtual void clear_aborted() = 0;
};

// One cached prepared statement. `single` is false when the SQL text held more than one
// statement (the cache keeps the first and remembers that there was a tail).
struct CachedStatement {
  Statement stmt;
  bool has_tail = false;
};

class Connection {
 public:
  // Opens (and, with options.create, creates) the database at `path` in WAL mode with
  // page_size 4096, foreign keys on, recursive triggers off and auto-checkpoint off:
  // the server owns checkpointing.
  static Expected<std::unique_ptr<Connection>, Error> open(const std::string& path,
                                                           const OpenOptions& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* handle() const { return db_; }

  // Runs SQL that returns no rows (pragmas, BEGIN/COMMIT).
  Expected<void, Error> exec(const char* sql);

  // Prepares `sql` or returns the cached statement for it. The statement stays owned by the
  // cache; the caller must Statement::reset() it before returning the connection. Returns a null
  // statement for SQL that is only whitespace and comments.
  Expected<CachedStatement*, Error> prepare_cached(std::string_view sql);

  // Prepares without caching (for one-off statements such as `sequence` steps).
  Expected<Statement, Error> prepare(std::string_view sql, const char** tail);

  // Drops every cached statement (before close, or after a schema-changing failure).
  void clear_cache();

  bool in_transaction() const { return sqlite3_get_autocommit(db_) == 0; }

  // Whether this connection carries state of its own that another user must not inherit, and
  // that a statement moved to another connection would not see: TEMP tables, triggers and views,
  // changed PRAGMAs, attached databases. Set by the executor; such a connection is closed rather
  // than pooled when its user lets go of it.
  bool has_session_state() const { return session_state_; }
  void mark_session_state() { session_state_ = true; }

  Error last_error() const;

  // What SQL's changes() reports: the rows changed by the last INSERT, UPDATE or DELETE. A
  // stream whose statements run on several connections (its own, the write lane's) carries the
  // value from one to the next with set_changes(); the executor clears it once a statement on
  // this connection changes rows itself. last_insert_rowid() is carried the same way, with
  // sqlite3_set_last_insert_rowid().
  std::int64_t changes() const { return changes_ ? *changes_ : sqlite3_changes64(db_); }

  // What the current user of the connection may do: set per request from its token. A
  // read-only user's statements are refused by SQLite's authorizer when they are prepared and,
  // for statements prepared earlier (the statement cache), by the executor when they would
  // write (sqlite3_stmt_readonly). ATTACH is refused unless `allow_attach` (any file: for the
  // server's own use, e.g. VACUUM INTO) or the file is one `attach` resolved (a namespace,
  // read-only: see engine::execute).
  struct Access {
    bool read_only = false;
    // Why `read_only`, for the error a refused write gets ("the token only allows reading",
    // "the namespace's writes are blocked: <reason>"); "" when not known.
    std::string read_only_why;
    bool allow_attach = false;
    // Namespace name -> the URI to attach (read-only), or why it may not be attached.
    using AttachResolver = std::function<Expected<std::string, std::string>(std::string_view name)>;
    std::shared_ptr<const AttachResolver> attach;
  };
  const Access& access() const { return access_; }
  void set_access(Access access) {
    access_ = std::move(access);
    approved_attach_.clear();
  }
  // Lets the authorizer accept ATTACH of exactly this filename (until the access changes).
  void approve_attach(std::string filename) { approved_attach_.push_back(std::move(filename)); }
  void set_changes(std::int64_t n) { changes_ = n; }
  void clear_changes() { changes_.reset(); }

  // The arbiter of this connection's writes; null for connections that arbitrate their own
  // (the write lane's, the checkpointer's). Owned by the connection.
  WriteAccess* write_access() const { return write_access_.get(); }
  void set_write_access(std::unique_ptr<WriteAccess> access) { write_access_ = std::move(access); }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}
  static int authorize(void* self, int action, const char* a, const char* b, const char* c, const char* d);

  static constexpr std::size_t kCacheCapacity = 128;
  sqlite3* db_ = nullptr;
  bool session_state_ = false;
  std::unique_ptr<WriteAccess> write_access_;
  std::optional<std::int64_t> changes_;
  Access access_;
  std::vector<std::string> approved_attach_;
  // LRU: most recently used at the front.
  std::list<std::pair<std::string, CachedStatement>> lru_;
  std::unordered_map<std::string_view, decltype(lru_)::iterator> index_;
};

// True when `s` holds only whitespace and SQL comments.
bool is_blank_sql(std::string_view s);

}  // namespace quire::sqlite
