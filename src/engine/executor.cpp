#include "engine/executor.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <optional>

#include "common/text.h"
#include "sqlite/error.h"

namespace quire::engine {

// The first `n` words of a statement, upper-cased, skipping whitespace and comments; stops at
// anything that is not a word.
std::vector<std::string> leading_keywords(std::string_view sql, std::size_t n) {
  std::vector<std::string> words;
  std::size_t i = 0;
  while (words.size() < n) {
    while (i < sql.size()) {
      if (std::isspace(static_cast<unsigned char>(sql[i]))) {
        ++i;
      } else if (sql.substr(i, 2) == "--") {
        while (i < sql.size() && sql[i] != '\n') ++i;
      } else if (sql.substr(i, 2) == "/*") {
        auto end = sql.find("*/", i + 2);
        i = end == std::string_view::npos ? sql.size() : end + 2;
      } else {
        break;
      }
    }
    std::string kw;
    while (i < sql.size() && std::isalpha(static_cast<unsigned char>(sql[i])) && kw.size() < 16) {
      kw += static_cast<char>(std::toupper(static_cast<unsigned char>(sql[i])));
      ++i;
    }
    if (kw.empty()) break;
    words.push_back(std::move(kw));
  }
  return words;
}

namespace {

std::string first_keyword(std::string_view sql) {
  auto words = leading_keywords(sql, 1);
  return words.empty() ? std::string() : std::move(words[0]);
}

// True when `sql` mentions the word TEMP or TEMPORARY (in any case), e.g. CREATE TEMP TABLE or
// CREATE TABLE temp.x: conservative on purpose.
bool mentions_temp(std::string_view sql) {
  for (std::size_t i = 0; i + 4 <= sql.size(); ++i) {
    if ((sql[i] | 0x20) != 't' || (sql[i + 1] | 0x20) != 'e' || (sql[i + 2] | 0x20) != 'm' ||
        (sql[i + 3] | 0x20) != 'p') {
      continue;
    }
    const bool start =
        i == 0 || !(std::isalnum(static_cast<unsigned char>(sql[i - 1])) || sql[i - 1] == '_');
    std::size_t end = i + 4;
    if (sql.substr(i, 9).size() == 9) {
      std::string word(sql.substr(i, 9));
      for (auto& c : word) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (word == "temporary") end = i + 9;
    }
    const bool stop = end == sql.size() ||
                      !(std::isalnum(static_cast<unsigned char>(sql[end])) || sql[end] == '_');
    if (start && stop) return true;
  }
  return false;
}

// The statement kinds that matter to a transaction rolled back behind its user's back.
enum class TxnControl { kOther, kCommit, kRollback };

TxnControl txn_control(std::string_view sql) {
  const auto w = leading_keywords(sql, 3);
  if (w.empty()) return TxnControl::kOther;
  if (w[0] == "COMMIT" || w[0] == "END") return TxnControl::kCommit;
  if (w[0] != "ROLLBACK") return TxnControl::kOther;
  // ROLLBACK [TRANSACTION] TO <savepoint> does not end the transaction.
  const bool to =
      (w.size() > 1 && w[1] == "TO") || (w.size() > 2 && w[1] == "TRANSACTION" && w[2] == "TO");
  return to ? TxnControl::kOther : TxnControl::kRollback;
}

ExecError timeout_error() {
  return {"TRANSACTION_TIMEOUT",
          "Transaction timed out: it held the database's write lock between requests for longer "
          "than the transaction timeout while other writers waited, so it was rolled back. "
          "Send ROLLBACK and retry the transaction.",
          {}};
}

// Before a statement runs: a connection whose transaction was rolled back behind its user's back
// fails every statement until the user ends the transaction (ROLLBACK succeeds, COMMIT reports
// the timeout), so no statement meant for the lost transaction runs in autocommit mode. Returns
// the outcome to report instead of running the statement, if any.
std::optional<Expected<StmtResult, ExecError>> check_aborted(sqlite::Connection& conn,
                                                             std::string_view sql) {
  sqlite::WriteAccess* access = conn.write_access();
  if (!access || !access->aborted()) return std::nullopt;
  switch (txn_control(sql)) {
    case TxnControl::kRollback:
      access->clear_aborted();
      return Expected<StmtResult, ExecError>(StmtResult{});
    case TxnControl::kCommit:
      access->clear_aborted();
      return Expected<StmtResult, ExecError>(unexpected(timeout_error()));
    case TxnControl::kOther:
      break;
  }
  return Expected<StmtResult, ExecError>(unexpected(timeout_error()));
}

ExecError forbidden(const sqlite::Connection::Access& access) {
  const std::string why = access.read_only_why.empty()
                              ? "a read-only token, or the namespace's writes are blocked"
                              : access.read_only_why;
  return {"SQLITE_AUTH",
          "Forbidden: writes to this database are not allowed (" + why +
              ") and the statement would write",
          "SQLITE_AUTH"};
}

// Takes the connection's write access before a statement that writes.
Expected<void, ExecError> before_write(sqlite::Connection& conn, sqlite3_stmt* stmt,
                                       std::string_view sql) {
  if (conn.access().read_only && (!sqlite3_stmt_readonly(stmt) || begins_write_transaction(sql))) {
    return unexpected(forbidden(conn.access()));
  }
  sqlite::WriteAccess* access = conn.write_access();
  if (!access) return {};
  if (sqlite3_stmt_readonly(stmt) && !begins_write_transaction(sql)) return {};
  if (auto ok = access->acquire(); !ok) {
    return unexpected(ExecError{ok.error().code, ok.error().message, {}});
  }
  return {};
}

ExecError prepare_error(const sqlite::Connection& conn, const sqlite::Error& e) {
  ExecError err = sqlite_error(e);
  if (e.offset >= 0) err.message += " (at offset " + std::to_string(e.offset) + ")";
  // The authorizer refuses a read-only user's writes when they are prepared: say why.
  if ((e.rc & 0xff) == SQLITE_AUTH && conn.access().read_only &&
      !conn.access().read_only_why.empty())
    err.message += " (writes to this database are not allowed: " + conn.access().read_only_why + ")";
  return err;
}

Value column_value(sqlite3_stmt* stmt, int i) {
  switch (sqlite3_column_type(stmt, i)) {
    case SQLITE_INTEGER:
      return static_cast<std::int64_t>(sqlite3_column_int64(stmt, i));
    case SQLITE_FLOAT:
      return sqlite3_column_double(stmt, i);
    case SQLITE_TEXT: {
      auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
      return std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt, i)));
    }
    case SQLITE_BLOB: {
      auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt, i));
      return Blob(p, p + sqlite3_column_bytes(stmt, i));
    }
    default:
      return std::monostate{};
  }
}

// Approximate wire size of a value, for the response budget.
std::size_t value_size(const Value& v) {
  if (auto* s = std::get_if<std::string>(&v)) return s->size() + 16;
  if (auto* b = std::get_if<Blob>(&v)) return b->size() * 4 / 3 + 16;
  return 24;
}

int bind_value(sqlite3_stmt* stmt, int index, const Value& v) {
  switch (v.index()) {
    case 0:
      return sqlite3_bind_null(stmt, index);
    case 1:
      return sqlite3_bind_int64(stmt, index, std::get<1>(v));
    case 2:
      return sqlite3_bind_double(stmt, index, std::get<2>(v));
    case 3: {
      const auto& s = std::get<3>(v);
      return sqlite3_bind_text64(stmt, index, s.data(), s.size(), SQLITE_STATIC, SQLITE_UTF8);
    }
    default: {
      const auto& b = std::get<4>(v);
      if (b.empty()) return sqlite3_bind_zeroblob(stmt, index, 0);
      return sqlite3_bind_blob64(stmt, index, b.data(), b.size(), SQLITE_STATIC);
    }
  }
}

Expected<void, ExecError> bind_args(sqlite3_stmt* stmt, const Query& q) {
  const int count = sqlite3_bind_parameter_count(stmt);
  if (q.args.size() > static_cast<std::size_t>(count)) {
    return unexpected(ExecError{"ARGS_INVALID",
                                "The statement has " + std::to_string(count) + " parameters but " +
                                    std::to_string(q.args.size()) +
                                    " positional arguments were given",
                                {}});
  }
  for (std::size_t i = 0; i < q.args.size(); ++i) {
    if (int rc = bind_value(stmt, static_cast<int>(i) + 1, q.args[i]); rc != SQLITE_OK) {
      return unexpected(ExecError{"ARGS_INVALID", sqlite3_errstr(rc), {}});
    }
  }
  for (const auto& arg : q.named_args) {
    int index = 0;
    if (!arg.name.empty() &&
        (arg.name[0] == ':' || arg.name[0] == '@' || arg.name[0] == '$' || arg.name[0] == '?')) {
      index = sqlite3_bind_parameter_index(stmt, arg.name.c_str());
    } else {
      for (char prefix : {':', '@', '$'}) {
        std::string full = prefix + arg.name;
        index = sqlite3_bind_parameter_index(stmt, full.c_str());
        if (index) break;
      }
    }
    if (index == 0) {
      return unexpected(
          ExecError{"ARGS_INVALID", "The statement has no parameter named '" + arg.name + "'", {}});
    }
    if (int rc = bind_value(stmt, index, arg.value); rc != SQLITE_OK) {
      return unexpected(ExecError{"ARGS_INVALID", sqlite3_errstr(rc), {}});
    }
  }
  return {};
}

std::vector<Column> columns_of(sqlite3_stmt* stmt) {
  std::vector<Column> cols;
  const int n = sqlite3_column_count(stmt);
  cols.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    Column c;
    if (const char* name = sqlite3_column_name(stmt, i)) c.name = name;
    if (const char* decl = sqlite3_column_decltype(stmt, i)) c.decltype_ = decl;
    cols.push_back(std::move(c));
  }
  return cols;
}

// Resets the statement (and clears bindings) on every exit path: it goes back to the cache.
struct ResetGuard {
  sqlite::Statement& stmt;
  ~ResetGuard() { stmt.reset(); }
};

ExecError no_statement() {
  return {"SQL_NO_STATEMENT", "The SQL text is empty: it contains no statement", {}};
}

// Reads one SQL token of ATTACH's simple form: a '...' string, a "..." / [...] / `...` quoted
// identifier, or a bare word. Empty optional on anything else.
std::optional<std::string> attach_token(std::string_view sql, std::size_t& i) {
  while (i < sql.size() && std::isspace(static_cast<unsigned char>(sql[i]))) ++i;
  if (i >= sql.size()) return std::nullopt;
  const char open = sql[i];
  const char close = open == '[' ? ']' : open;
  if (open == '\'' || open == '"' || open == '`' || open == '[') {
    std::string out;
    for (++i; i < sql.size(); ++i) {
      if (sql[i] == close) {
        if (close != ']' && i + 1 < sql.size() && sql[i + 1] == close) {
          out += close;
          ++i;
          continue;
        }
        ++i;
        return out;
      }
      out += sql[i];
    }
    return std::nullopt;
  }
  std::string out;
  while (i < sql.size() &&
         (std::isalnum(static_cast<unsigned char>(sql[i])) || sql[i] == '_' || sql[i] == '-')) {
    out += sql[i++];
  }
  if (out.empty()) return std::nullopt;
  return out;
}

std::string quoted(std::string_view text, char q) {
  std::string out(1, q);
  for (char c : text) {
    out += c;
    if (c == q) out += q;
  }
  out += q;
  return out;
}

// `ATTACH [DATABASE] <namespace> AS <alias>`, rewritten to attach that namespace's database
// read-only, if the connection's access resolves the name (see Connection::Access::attach).
Expected<std::string, ExecError> rewrite_attach(sqlite::Connection& conn, std::string_view sql) {
  auto refuse = [](std::string message) {
    return unexpected(ExecError{"SQLITE_AUTH", std::move(message), "SQLITE_AUTH"});
  };
  std::size_t i = 0;
  auto word = attach_token(sql, i);  // ATTACH
  auto target = attach_token(sql, i);
  if (target && iequals(*target, "DATABASE")) target = attach_token(sql, i);
  auto as = attach_token(sql, i);
  auto alias = attach_token(sql, i);
  while (i < sql.size() && (std::isspace(static_cast<unsigned char>(sql[i])) || sql[i] == ';')) ++i;
  if (!word || !target || !as || !iequals(*as, "AS") || !alias || alias->empty() ||
      i != sql.size()) {
    return refuse("ATTACH takes a namespace name and an alias: ATTACH 'namespace' AS alias");
  }
  auto uri = (*conn.access().attach)(*target);
  if (!uri) return refuse("ATTACH refused: " + uri.error());
  conn.approve_attach(*uri);
  return "ATTACH DATABASE " + quoted(*uri, '\'') + " AS " + quoted(*alias, '"');
}

}  // namespace

void note_session_state(sqlite::Connection& conn, std::string_view keyword, std::string_view sql) {
  if (keyword == "PRAGMA" || keyword == "ATTACH" || keyword == "DETACH" ||
      ((keyword == "CREATE" || keyword == "DROP" || keyword == "ALTER") && mentions_temp(sql))) {
    conn.mark_session_state();
  }
}

bool has_session_effect(std::string_view sql) {
  const std::string kw = first_keyword(sql);
  return kw == "PRAGMA" || kw == "ATTACH" || kw == "DETACH" || mentions_temp(sql);
}

ExecError sqlite_error(const sqlite::Error& e) {
  return ExecError{sqlite::primary_code_name(e.rc), "SQLite error: " + e.message,
                   sqlite::extended_code_name(e.rc)};
}

bool begins_write_transaction(std::string_view sql) {
  const auto w = leading_keywords(sql, 2);
  return w.size() == 2 && w[0] == "BEGIN" && (w[1] == "IMMEDIATE" || w[1] == "EXCLUSIVE");
}

Expected<StmtResult, ExecError> execute(sqlite::Connection& conn, const Query& query,
                                        ResponseBudget& budget) {
  if (auto aborted = check_aborted(conn, query.sql)) return std::move(*aborted);
  const auto started = std::chrono::steady_clock::now();
  std::string attach_sql;
  if (conn.access().attach && !conn.access().allow_attach && first_keyword(query.sql) == "ATTACH") {
    auto rewritten = rewrite_attach(conn, query.sql);
    if (!rewritten) return unexpected(rewritten.error());
    attach_sql = std::move(rewritten.value());
  }
  auto prepared =
      conn.prepare_cached(attach_sql.empty() ? query.sql : std::string_view(attach_sql));
  if (!prepared) return unexpected(prepare_error(conn, prepared.error()));
  sqlite::CachedStatement& cached = **prepared;
  if (!cached.stmt) return unexpected(no_statement());
  if (cached.has_tail) {
    return unexpected(ExecError{"SQL_MANY_STATEMENTS",
                                "The SQL text contains more than one statement; use a batch or "
                                "a sequence for several statements",
                                {}});
  }
  ResetGuard guard{cached.stmt};
  sqlite3_stmt* stmt = cached.stmt.get();
  if (auto bound = bind_args(stmt, query); !bound) return unexpected(bound.error());
  if (auto ok = before_write(conn, stmt, query.sql); !ok) return unexpected(ok.error());

  sqlite3* db = conn.handle();
  const auto changes_before = sqlite3_total_changes64(db);
  const auto rowid_before = sqlite3_last_insert_rowid(db);

  StmtResult result;
  result.cols = columns_of(stmt);
  const int ncols = static_cast<int>(result.cols.size());
  std::uint64_t rows_seen = 0;
  while (true) {
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) {
      auto err = sqlite_error(conn.last_error());
      if (auto* access = conn.write_access()) access->release_if_idle();
      return unexpected(std::move(err));
    }
    ++rows_seen;
    if (!query.want_rows) continue;
    std::vector<Value> row;
    row.reserve(static_cast<std::size_t>(ncols));
    std::size_t bytes = 8;
    for (int i = 0; i < ncols; ++i) {
      row.push_back(column_value(stmt, i));
      bytes += value_size(row.back());
    }
    if (!budget.charge(bytes)) {
      return unexpected(ExecError{"RESPONSE_TOO_LARGE",
                                  "The response is larger than the server's limit "
                                  "(--max-response-size); fetch fewer rows at a time",
                                  {}});
    }
    result.rows.push_back(std::move(row));
  }

  if (auto* access = conn.write_access()) access->release_if_idle();
  const auto changed = sqlite3_total_changes64(db) - changes_before;
  if (changed > 0) {
    // sqlite3_changes counts only the rows of this statement, not those of its triggers.
    result.affected_row_count = static_cast<std::uint64_t>(sqlite3_changes64(db));
    result.rows_written = static_cast<std::uint64_t>(changed);
  }
  const std::string kw = first_keyword(query.sql);
  if (changed > 0 || kw == "INSERT" || kw == "REPLACE" || kw == "UPDATE" || kw == "DELETE") {
    conn.clear_changes();  // SQLite's own count is this statement's
  }
  note_session_state(conn, kw, query.sql);
  const auto rowid_after = sqlite3_last_insert_rowid(db);
  if (kw == "INSERT" || kw == "REPLACE" || (rowid_after != rowid_before && kw == "WITH")) {
    result.last_insert_rowid = rowid_after;
  }
  result.rows_read = rows_seen + static_cast<std::uint64_t>(
                                     sqlite3_stmt_status(stmt, SQLITE_STMTSTATUS_FULLSCAN_STEP, 1));
  result.query_duration_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  return result;
}

Expected<DescribeResult, ExecError> describe(sqlite::Connection& conn, std::string_view sql) {
  auto prepared = conn.prepare_cached(sql);
  if (!prepared) return unexpected(prepare_error(conn, prepared.error()));
  sqlite::CachedStatement& cached = **prepared;
  if (!cached.stmt) return unexpected(no_statement());
  if (cached.has_tail) {
    return unexpected(
        ExecError{"SQL_MANY_STATEMENTS", "The SQL text contains more than one statement", {}});
  }
  sqlite3_stmt* stmt = cached.stmt.get();
  DescribeResult r;
  const int nparams = sqlite3_bind_parameter_count(stmt);
  for (int i = 1; i <= nparams; ++i) {
    DescribeParam p;
    if (const char* name = sqlite3_bind_parameter_name(stmt, i)) p.name = name;
    r.params.push_back(std::move(p));
  }
  r.cols = columns_of(stmt);
  r.is_explain = sqlite3_stmt_isexplain(stmt) != 0;
  r.is_readonly = sqlite3_stmt_readonly(stmt) != 0;
  return r;
}

Expected<void, ExecError> execute_script(sqlite::Connection& conn, std::string_view sql) {
  // A script may do anything; judge it as a whole, conservatively.
  if (has_session_effect(sql) || sql.find("PRAGMA") != std::string_view::npos ||
      sql.find("pragma") != std::string_view::npos ||
      sql.find("ATTACH") != std::string_view::npos ||
      sql.find("attach") != std::string_view::npos) {
    conn.mark_session_state();
  }
  if (auto aborted = check_aborted(conn, sql); aborted && !*aborted) {
    return unexpected(aborted->error());
  }
  while (!sqlite::is_blank_sql(sql)) {
    const char* tail = nullptr;
    auto stmt = conn.prepare(sql, &tail);
    if (!stmt) return unexpected(prepare_error(conn, stmt.error()));
    if (*stmt) {
      const std::string_view text(sql.data(),
                                  tail ? static_cast<std::size_t>(tail - sql.data()) : sql.size());
      const auto total_before = sqlite3_total_changes64(conn.handle());
      if (auto ok = before_write(conn, stmt->get(), text); !ok) return unexpected(ok.error());
      int rc;
      while ((rc = sqlite3_step(stmt->get())) == SQLITE_ROW) {
      }
      if (auto* access = conn.write_access()) access->release_if_idle();
      if (sqlite3_total_changes64(conn.handle()) != total_before) conn.clear_changes();
      if (rc != SQLITE_DONE) return unexpected(sqlite_error(conn.last_error()));
    }
    if (!tail) break;
    sql = std::string_view(tail, static_cast<std::size_t>(sql.data() + sql.size() - tail));
  }
  return {};
}

}  // namespace quire::engine
