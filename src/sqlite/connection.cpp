#include "sqlite/connection.h"

#include <cctype>
#include <string>

#include "sqlite/random.h"

namespace quire::sqlite {

namespace {

struct HookError {
  sqlite3* db = nullptr;
  int hook_rc = 0;
  Error reported;
};
thread_local HookError t_hook_error;

// The hook's error for `db` when SQLite's current one (code `rc`) is the one the hook caused.
std::optional<Error> take_hook_error(sqlite3* db, int rc) {
  if (t_hook_error.hook_rc == 0) return std::nullopt;
  HookError h = std::move(t_hook_error);
  t_hook_error = HookError{};
  if ((h.db != nullptr && h.db != db) || h.hook_rc != rc) return std::nullopt;
  return std::move(h.reported);
}

Error error_of(sqlite3* db) {
  Error e;
  e.rc = sqlite3_extended_errcode(db);
  if (auto hooked = take_hook_error(db, e.rc)) return std::move(*hooked);
  e.message = sqlite3_errmsg(db);
  e.offset = sqlite3_error_offset(db);
  return e;
}

}  // namespace

bool is_blank_sql(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c)) || c == ';') {
      ++i;
    } else if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {
      while (i < s.size() && s[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      auto end = s.find("*/", i + 2);
      if (end == std::string_view::npos) return true;  // unterminated comment: SQLite ignores it
      i = end + 2;
    } else {
      return false;
    }
  }
  return true;
}

Expected<std::unique_ptr<Connection>, Error> Connection::open(const std::string& path,
                                                              const OpenOptions& options) {
  int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
  flags |= options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  if (options.create && !options.read_only) flags |= SQLITE_OPEN_CREATE;
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags,
                           options.vfs.empty() ? nullptr : options.vfs.c_str());
  std::unique_ptr<Connection> conn(new Connection(raw));
  if (rc != SQLITE_OK) {
    Error e = raw ? error_of(raw) : Error{rc, sqlite3_errstr(rc)};
    return unexpected(std::move(e));
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, options.busy_timeout_ms);
  // The server owns checkpointing: SQLite must never checkpoint on its own.
  sqlite3_wal_autocheckpoint(raw, 0);
  if (int r = install_random_functions(raw); r != SQLITE_OK)
    return unexpected(Error{r, sqlite3_errstr(r)});
  // changes() as the connection's user sees it (see Connection::changes).
  int frc = sqlite3_create_function_v2(
      raw, "changes", 0, SQLITE_UTF8 | SQLITE_INNOCUOUS, conn.get(),
      [](sqlite3_context* ctx, int, sqlite3_value**) {
        sqlite3_result_int64(ctx, static_cast<Connection*>(sqlite3_user_data(ctx))->changes());
      },
      nullptr, nullptr, nullptr);
  if (frc != SQLITE_OK) return unexpected(Error{frc, sqlite3_errstr(frc)});

  std::string pragmas;
  if (!options.read_only) {
    // page_size only takes effect on a new, empty database; harmless otherwise.
    pragmas += "PRAGMA page_size=4096; PRAGMA journal_mode=WAL;";
  }
  pragmas += options.synchronous_full ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=NORMAL;";
  pragmas += "PRAGMA foreign_keys=ON; PRAGMA recursive_triggers=OFF; PRAGMA temp_store=MEMORY;";
  // When the WAL starts over, its file is cut back to this size (the checkpointer keeps it near
  // 4 MiB in normal operation; a burst may grow it further).
  pragmas += "PRAGMA journal_size_limit=67108864;";
  pragmas += "PRAGMA cache_size=-" + std::to_string(options.cache_size_kib) + ";";
  pragmas += "PRAGMA mmap_size=" + std::to_string(options.mmap_size) + ";";
  if (options.max_page_count > 0) {
    pragmas += "PRAGMA max_page_count=" + std::to_string(options.max_page_count) + ";";
  }
  if (auto r = conn->exec(pragmas.c_str()); !r) return unexpected(r.error());
  // After the server's own PRAGMAs: from here on the authorizer judges every statement.
  sqlite3_set_authorizer(raw, &Connection::authorize, conn.get());
  return conn;
}

int Connection::authorize(void* self, int action, const char* arg1, const char* arg2, const char*,
                          const char*) {
  const auto* conn = static_cast<Connection*>(self);
  const Access& access = conn->access_;
  switch (action) {
    case SQLITE_ATTACH:
      if (access.allow_attach) return SQLITE_OK;
      for (const auto& approved : conn->approved_attach_) {
        if (arg1 && approved == arg1) return SQLITE_OK;
      }
      return SQLITE_DENY;
    case SQLITE_DETACH:
      return access.allow_attach || access.attach ? SQLITE_OK : SQLITE_DENY;
    case SQLITE_INSERT:
    case SQLITE_UPDATE:
    case SQLITE_DELETE:
    case SQLITE_CREATE_INDEX:
    case SQLITE_CREATE_TABLE:
    case SQLITE_CREATE_TEMP_INDEX:
    case SQLITE_CREATE_TEMP_TABLE:
    case SQLITE_CREATE_TEMP_TRIGGER:
    case SQLITE_CREATE_TEMP_VIEW:
    case SQLITE_CREATE_TRIGGER:
    case SQLITE_CREATE_VIEW:
    case SQLITE_DROP_INDEX:
    case SQLITE_DROP_TABLE:
    case SQLITE_DROP_TEMP_INDEX:
    case SQLITE_DROP_TEMP_TABLE:
    case SQLITE_DROP_TEMP_TRIGGER:
    case SQLITE_DROP_TEMP_VIEW:
    case SQLITE_DROP_TRIGGER:
    case SQLITE_DROP_VIEW:
    case SQLITE_ALTER_TABLE:
    case SQLITE_REINDEX:
    case SQLITE_ANALYZE:
    case SQLITE_CREATE_VTABLE:
    case SQLITE_DROP_VTABLE:
    case SQLITE_PRAGMA:
      // The WAL and the server's own hook are what the replication log is built on: changing the
      // journal mode would commit outside the WAL, and wal_autocheckpoint replaces the hook.
      if (arg1 && arg2 &&
          (sqlite3_stricmp(arg1, "journal_mode") == 0 ||
           sqlite3_stricmp(arg1, "locking_mode") == 0 ||
           sqlite3_stricmp(arg1, "wal_autocheckpoint") == 0)) {
        return SQLITE_DENY;
      }
      // Checkpoints are the server's (each follows the log's capture); the admin API runs one.
      if (arg1 && sqlite3_stricmp(arg1, "wal_checkpoint") == 0) return SQLITE_DENY;
      // A read-only user may read the schema through pragma functions in SELECTs
      // (pragma_table_info...), which SQLite reports as SQLITE_READ, not SQLITE_PRAGMA.
      return access.read_only ? SQLITE_DENY : SQLITE_OK;
    default:
      return SQLITE_OK;
  }
}

Connection::~Connection() {
  clear_cache();
  sqlite3_close_v2(db_);
}

void set_hook_error(sqlite3* db, int hook_rc, Error reported) {
  t_hook_error = HookError{db, hook_rc, std::move(reported)};
}

Error Connection::last_error() const { return error_of(db_); }

Expected<void, Error> Connection::exec(const char* sql) {
  char* msg = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &msg);
  if (rc != SQLITE_OK) {
    Error e{sqlite3_extended_errcode(db_), msg ? msg : sqlite3_errstr(rc)};
    sqlite3_free(msg);
    if (auto hooked = take_hook_error(db_, e.rc)) return unexpected(std::move(*hooked));
    return unexpected(std::move(e));
  }
  return {};
}

Expected<Statement, Error> Connection::prepare(std::string_view sql, const char** tail) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), 0, &stmt, tail);
  if (rc != SQLITE_OK) return unexpected(error_of(db_));
  return Statement(stmt);
}

Expected<CachedStatement*, Error> Connection::prepare_cached(std::string_view sql) {
  if (auto it = index_.find(sql); it != index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return &it->second->second;
  }
  sqlite3_stmt* stmt = nullptr;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
  if (rc != SQLITE_OK) return unexpected(error_of(db_));
  CachedStatement cached{Statement(stmt), false};
  if (stmt && tail) {
    cached.has_tail = !is_blank_sql(std::string_view(tail, sql.data() + sql.size() - tail));
  }
  if (!stmt) {
    // Blank SQL: nothing to cache, but callers need a stable object to look at.
    static thread_local CachedStatement blank;
    return &blank;
  }
  if (lru_.size() >= kCacheCapacity) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  lru_.emplace_front(std::string(sql), std::move(cached));
  index_.emplace(lru_.front().first, lru_.begin());
  return &lru_.front().second;
}

void Connection::clear_cache() {
  index_.clear();
  lru_.clear();
}

}  // namespace quire::sqlite
