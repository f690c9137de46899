// Executes statements on a connection and shapes their results the way libSQL's protocols report
// them. Everything here is synchronous and protocol-neutral: Hrana, the legacy HTTP API and
// (later) the replication proxy all run SQL through these functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/expected.h"
#include "common/value.h"
#include "sqlite/connection.h"

namespace quire::engine {

// A failure of one statement. `code` is what the protocols put on the wire: an SQLite primary
// code name ("SQLITE_CONSTRAINT") or one of Hrana's own codes ("ARGS_INVALID",
// "SQL_MANY_STATEMENTS", "RESPONSE_TOO_LARGE"...). `extended_code` is the SQLite extended code
// name when there is one ("SQLITE_CONSTRAINT_PRIMARYKEY").
struct ExecError {
  std::string code;
  std::string message;
  std::string extended_code;
};

struct NamedArg {
  std::string name;  // with or without its prefix (':', '@', '$')
  Value value;
};

struct Query {
  std::string_view sql;
  std::vector<Value> args;
  std::vector<NamedArg> named_args;
  bool want_rows = true;
};

struct Column {
  std::string name;
  std::optional<std::string> decltype_;
};

struct StmtResult {
  std::vector<Column> cols;
  std::vector<std::vector<Value>> rows;
  std::uint64_t affected_row_count = 0;
  std::optional<std::int64_t> last_insert_rowid;
  std::uint64_t rows_read = 0;
  std::uint64_t rows_written = 0;
  double query_duration_ms = 0;
};

struct DescribeParam {
  std::optional<std::string> name;
};

struct DescribeResult {
  std::vector<DescribeParam> params;
  std::vector<Column> cols;
  bool is_explain = false;
  bool is_readonly = false;
};

// Bytes of result data a request may still produce. Shared by every statement of a request so
// a pipeline of many statements is bounded as a whole.
struct ResponseBudget {
  std::size_t remaining;
  bool charge(std::size_t bytes) {
    if (bytes > remaining) return false;
    remaining -= bytes;
    return true;
  }
};

// Runs exactly one statement. SQL with more than one statement fails with SQL_MANY_STATEMENTS,
// blank SQL with SQL_NO_STATEMENT. Positional args bind to parameters 1..n; a named arg binds to
// the parameter with exactly its name, or, given without a prefix, to ':name', '@name' or
// '$name' in that order.
Expected<StmtResult, ExecError> execute(sqlite::Connection& conn, const Query& query,
                                        ResponseBudget& budget);

// Describes one statement without running it.
Expected<DescribeResult, ExecError> describe(sqlite::Connection& conn, std::string_view sql);

// Runs every statement of a semicolon-separated script, discarding rows, stopping at the
// first error.
Expected<void, ExecError> execute_script(sqlite::Connection& conn, std::string_view sql);

// Marks `conn` as carrying session state (see Connection::has_session_state) when the statement
// `sql`, whose first keyword is `keyword`, may have left some: PRAGMA, ATTACH, DETACH, and DDL
// that mentions TEMP.
void note_session_state(sqlite::Connection& conn, std::string_view keyword, std::string_view sql);

// True when running `sql` could read or leave connection-local state, so it must run on its own
// stream's connection (never moved to the write lane).
bool has_session_effect(std::string_view sql);

// The first `n` words of a statement, upper-cased, skipping whitespace and comments.
std::vector<std::string> leading_keywords(std::string_view sql, std::size_t n);

// True for BEGIN IMMEDIATE and BEGIN EXCLUSIVE, which take the write lock though SQLite calls
// every transaction-control statement read-only.
bool begins_write_transaction(std::string_view sql);

// The error for a failed SQLite call.
ExecError sqlite_error(const sqlite::Error& e);

}  // namespace quire::engine
