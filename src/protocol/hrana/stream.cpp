#include "protocol/hrana/stream.h"

#include <algorithm>
#include <cctype>

#include "engine/executor.h"
#include "engine/write_lane.h"

namespace quire::hrana {

namespace {

// Outcome of each batch step, for condition evaluation.
constexpr int kSkipped = 0, kOk = 1, kFailed = 2;

Expected<const std::string*, ProtocolError> resolve_sql(const std::optional<std::string>& sql,
                                                        const std::optional<std::int32_t>& id,
                                                        const SqlStore& sqls) {
  if (sql) return &*sql;
  if (id) {
    if (const std::string* text = sqls.find(*id)) return text;
    return unexpected(ProtocolError{"SQL text with id " + std::to_string(*id) +
                                    " has not been stored (store_sql) or was closed"});
  }
  return unexpected(ProtocolError{"Neither 'sql' nor 'sql_id' was given"});
}

}  // namespace

Error to_error(const engine::ExecError& e) { return Error{e.message, e.code, e.extended_code}; }

Expected<std::optional<Error>, ProtocolError> SqlStore::store(std::int32_t id, std::string sql) {
  if (texts_.count(id)) {
    return unexpected(ProtocolError{"SQL text with id " + std::to_string(id) + " is already stored"});
  }
  if (texts_.size() >= limits_->max_stored_sql) {
    return std::optional<Error>(Error{"Too many stored SQL texts (the limit is " +
                                          std::to_string(limits_->max_stored_sql) + ")",
                                      "SQL_STORE_TOO_MANY", {}});
  }
  if (sql.size() > limits_->max_stored_sql_bytes) {
    return std::optional<Error>(Error{"The SQL text is too large to store (the limit is " +
                                          std::to_string(limits_->max_stored_sql_bytes) + " bytes)",
                                      "SQL_STORE_TOO_LARGE", {}});
  }
  if (sql.size() > limits_->max_stored_sql_total_bytes - std::min(bytes_, limits_->max_stored_sql_total_bytes)) {
    return std::optional<Error>(Error{"The stored SQL texts would take more than " +
                                          std::to_string(limits_->max_stored_sql_total_bytes) +
                                          " bytes together (close some with close_sql)",
                                      "SQL_STORE_TOO_LARGE", {}});
  }
  bytes_ += sql.size();
  texts_.emplace(id, std::move(sql));
  return std::optional<Error>();
}

Stream::Use::Use(Stream& s) : s_(s) {
  if (s_.uses_++ == 0) s_.conn_.unpark();
}

Stream::Use::~Use() {
  if (--s_.uses_ == 0) s_.conn_.park();
}

Stream::~Stream() = default;  // the lease rolls back and gives the gate up (Lease::release)

bool Stream::in_transaction() {
  Use use(*this);
  return concurrent_ || (conn_ && (conn_->in_transaction() || conn_->write_access()->aborted()));
}

bool Stream::holds_write_lock() const {
  return conn_ && sqlite3_txn_state(conn_->handle(), "main") == SQLITE_TXN_WRITE;
}

bool Stream::may_block(const Stmt& stmt, const SqlStore& sqls) {
  Use use(*this);
  if (concurrent_) return true;
  if (holds_write_lock()) return false;
  const std::string* sql = stmt.sql ? &*stmt.sql : (stmt.sql_id ? sqls.find(*stmt.sql_id) : nullptr);
  if (!sql) return false;  // fails before it runs
  // Known from its first keyword without a connection: preparing it on a pooled one here, per
  // request, had every in-flight write hold a pooled connection while it waited in the write
  // lane, and under load opened and closed connections by the thousand per second.
  if (engine::writes_by_keyword(*sql)) return true;
  auto conn = connection();
  if (!conn) return false;
  auto prepared = (*conn)->prepare_cached(*sql);
  if (!prepared || !(*prepared)->stmt) return false;  // fails before it runs
  return !sqlite3_stmt_readonly((*prepared)->stmt.get()) || engine::begins_write_transaction(*sql);
}

bool Stream::may_block(const Batch& batch, const SqlStore& sqls) {
  Use use(*this);
  if (concurrent_) return true;
  if (holds_write_lock()) return false;
  for (const auto& step : batch.steps) {
    if (may_block(step.stmt, sqls)) return true;
  }
  return false;
}

bool Stream::may_block(const StreamRequest& request, const SqlStore& sqls) {
  Use use(*this);
  if (concurrent_) return true;  // its statements run as write-lane tasks
  if (holds_write_lock()) return false;
  if (auto* e = std::get_if<ExecuteReq>(&request)) return may_block(e->stmt, sqls);
  if (auto* b = std::get_if<BatchReq>(&request)) return may_block(b->batch, sqls);
  return std::holds_alternative<SequenceReq>(request);  // a script may do anything
}

Expected<sqlite::Connection*, Error> Stream::connection() {
  closed_ = false;
  if (borrowed_) return borrowed_;
  if (!conn_) {
    auto lease = db_->acquire();
    if (!lease) return unexpected(to_error(engine::sqlite_error(lease.error())));
    conn_ = std::move(lease.value());
  }
  return &*conn_;
}

Expected<StreamResult, ProtocolError> Stream::run_on(sqlite::Connection& conn,
                                                     const StreamRequest& request, SqlStore& sqls,
                                                     engine::ResponseBudget& budget) {
  struct Restore {
    sqlite::Connection*& slot;
    ~Restore() { slot = nullptr; }
  } restore{borrowed_};
  borrowed_ = &conn;
  return run(request, sqls, budget);
}

bool Stream::groupable(const Stmt& stmt, const SqlStore& sqls) {
  Use use(*this);
  if (access_.read_only) return false;  // refused on its own connection, clearly
  if (in_transaction()) return false;
  // A stream whose connection has TEMP objects, changed PRAGMAs or attachments must run its
  // statements there: they may refer to that state.
  if (conn_ && conn_->has_session_state()) return false;
  const std::string* sql = stmt.sql ? &*stmt.sql : (stmt.sql_id ? sqls.find(*stmt.sql_id) : nullptr);
  return sql && engine::groupable_statement(*sql) && !engine::has_session_effect(*sql);
}

Expected<StmtResult, Error> Stream::execute(const Stmt& stmt, const std::string& sql,
                                            engine::ResponseBudget& budget) {
  if (concurrent_ && !borrowed_) return execute_concurrent(stmt, sql, budget);
  auto conn = connection();
  if (!conn) return unexpected(conn.error());
  if (!borrowed_ && engine::is_begin_concurrent(sql)) {
    if (in_transaction()) {
      return unexpected(Error{"SQLite error: cannot start a transaction within a transaction",
                              "SQLITE_ERROR", {}});
    }
    const auto words = engine::leading_keywords(sql, 4);
    if (words.size() > 3 || (words.size() == 3 && words[2] != "TRANSACTION") ||
        sqlite::is_blank_sql(sql) ) {
      return unexpected(Error{"SQLite error: near \"" + (words.size() > 2 ? words[2] : std::string()) +
                                  "\": syntax error",
                              "SQLITE_ERROR", {}});
    }
    if (access_.read_only) {
      return unexpected(Error{"Forbidden: writes to this database are not allowed (" +
                                  (access_.read_only_why.empty() ? std::string("read-only access")
                                                                 : access_.read_only_why) +
                                  ")",
                              "SQLITE_AUTH", "SQLITE_AUTH"});
    }
    concurrent_.emplace(db_, last_rowid_, last_changes_);
    return StmtResult{};
  }
  engine::Query q{sql, stmt.args, stmt.named_args, stmt.want_rows};
  carry_in(**conn);
  auto r = engine::execute(**conn, q, budget);
  carry_out(**conn);
  if (r) db_->stats().count(r->rows_read, r->rows_written);
  if (!r) return unexpected(to_error(r.error()));
  return std::move(r.value());
}

void Stream::carry_in(sqlite::Connection& conn) {
  conn.set_access(access_);
  sqlite3_set_last_insert_rowid(conn.handle(), last_rowid_);
  conn.set_changes(last_changes_);
}

void Stream::carry_out(sqlite::Connection& conn) {
  last_rowid_ = sqlite3_last_insert_rowid(conn.handle());
  last_changes_ = conn.changes();
}

Expected<StmtResult, Error> Stream::execute_concurrent(const Stmt& stmt, const std::string& sql,
                                                       engine::ResponseBudget& budget) {
  auto conn = connection();
  if (!conn) return unexpected(conn.error());
  const auto words = engine::leading_keywords(sql, 3);
  const std::string first = words.empty() ? std::string() : words[0];
  const bool to = (words.size() > 1 && words[1] == "TO") ||
                  (words.size() > 2 && words[1] == "TRANSACTION" && words[2] == "TO");
  if (first == "ROLLBACK" && !to) {
    concurrent_.reset();
    return StmtResult{};
  }
  if (first == "COMMIT" || first == "END") {
    auto committed = concurrent_->commit(**conn);
    if (!committed) return unexpected(to_error(committed.error()));
    concurrent_.reset();
    return StmtResult{};
  }
  if (concurrent_->failed()) return unexpected(to_error(concurrent_->failure()));
  if (first == "BEGIN" || first == "SAVEPOINT" || first == "RELEASE" || first == "ROLLBACK" ||
      first == "VACUUM" || engine::has_session_effect(sql)) {
    return unexpected(Error{"SQLite error: " + (first.empty() ? std::string("this statement") : first) +
                                " is not supported inside BEGIN CONCURRENT (nested transactions, "
                                "savepoints, PRAGMA, ATTACH, TEMP objects and VACUUM are not)",
                            "SQLITE_ERROR", {}});
  }
  engine::Query q{sql, stmt.args, stmt.named_args, stmt.want_rows};
  (*conn)->set_access(access_);
  auto r = concurrent_->execute(**conn, q, budget);
  if (!r) return unexpected(to_error(r.error()));
  return std::move(r.value());
}

StreamResult Stream::run_sequence_concurrent(sqlite::Connection&, std::string_view sql,
                                             engine::ResponseBudget& budget) {
  // Split at each ';' that completes a statement (sqlite3_complete knows about strings,
  // comments and triggers). Not by preparing: a statement may name a table that an earlier one
  // of the script creates, which exists only inside the transaction.
  std::size_t start = 0;
  for (std::size_t i = 0; i <= sql.size(); ++i) {
    if (i < sql.size() && sql[i] != ';') continue;
    std::string text(sql.substr(start, i - start + (i < sql.size() ? 1 : 0)));
    if (i < sql.size() && !sqlite3_complete(text.c_str())) continue;
    start = i + 1;
    if (sqlite::is_blank_sql(text)) continue;
    Stmt stmt;
    stmt.want_rows = false;
    auto r = execute_concurrent(stmt, text, budget);
    if (!r) return StreamResult(std::move(r.error()));
  }
  return StreamResult(StreamResponse(SequenceResp{}));
}

bool Stream::eval(const BatchCond& c, const std::vector<int>& outcome) {
  using K = BatchCond::Kind;
  switch (c.kind) {
    case K::kOk: return outcome[c.step] == kOk;
    case K::kError: return outcome[c.step] == kFailed;
    case K::kNot: return !eval(c.conds[0], outcome);
    case K::kAnd:
      for (const auto& sub : c.conds) {
        if (!eval(sub, outcome)) return false;
      }
      return true;
    case K::kOr:
      for (const auto& sub : c.conds) {
        if (eval(sub, outcome)) return true;
      }
      return false;
    case K::kIsAutocommit: return !in_transaction();
  }
  return false;
}

Expected<void, ProtocolError> Stream::for_each_step(
    const Batch& batch, const SqlStore& sqls, engine::ResponseBudget& budget,
    const std::function<void(std::uint32_t, Expected<StmtResult, Error>&&)>& on_step) {
  std::vector<int> outcome(batch.steps.size(), kSkipped);
  for (std::size_t i = 0; i < batch.steps.size(); ++i) {
    const BatchStep& step = batch.steps[i];
    if (step.condition && !eval(*step.condition, outcome)) continue;
    auto sql = resolve_sql(step.stmt.sql, step.stmt.sql_id, sqls);
    if (!sql) return unexpected(sql.error());
    auto r = execute(step.stmt, **sql, budget);
    outcome[i] = r ? kOk : kFailed;
    on_step(static_cast<std::uint32_t>(i), std::move(r));
  }
  return {};
}

Expected<BatchResult, ProtocolError> Stream::run_batch(const Batch& batch, const SqlStore& sqls,
                                                       engine::ResponseBudget& budget) {
  BatchResult result;
  result.step_results.resize(batch.steps.size());
  result.step_errors.resize(batch.steps.size());
  Use use(*this);
  auto ran = for_each_step(batch, sqls, budget, [&](std::uint32_t i, auto&& r) {
    if (r) {
      result.step_results[i] = std::move(r.value());
    } else {
      result.step_errors[i] = std::move(r.error());
    }
  });
  if (!ran) return unexpected(ran.error());
  return result;
}

Expected<void, ProtocolError> Stream::run_cursor(const Batch& batch, const SqlStore& sqls,
                                                 engine::ResponseBudget& budget,
                                                 const std::function<void(CursorEntry&&)>& sink) {
  Use use(*this);
  auto ran = for_each_step(batch, sqls, budget, [&](std::uint32_t i, auto&& r) {
    if (!r) {
      sink(StepErrorEntry{i, std::move(r.error())});
      return;
    }
    sink(StepBeginEntry{i, std::move(r->cols)});
    for (auto& row : r->rows) sink(RowEntry{std::move(row)});
    sink(StepEndEntry{r->affected_row_count, r->last_insert_rowid});
  });
  release_if_idle();
  return ran;
}

Expected<StreamResult, ProtocolError> Stream::run(const StreamRequest& request, SqlStore& sqls,
                                                  engine::ResponseBudget& budget) {
  Use use(*this);
  auto result = run_one(request, sqls, budget);
  release_if_idle();
  return result;
}

void Stream::release_if_idle() {
  // Between requests, a stream outside any transaction gives its connection back to the pool:
  // an idle stream (an open WebSocket, an HTTP baton) then costs no SQLite connection. A
  // connection with TEMP objects or changed PRAGMAs stays, since they belong to this stream.
  if (conn_ && !borrowed_ && !in_transaction() && !conn_->has_session_state()) {
    conn_ = engine::Lease();
  }
}

Expected<StreamResult, ProtocolError> Stream::run_one(const StreamRequest& request,
                                                      SqlStore& sqls,
                                                      engine::ResponseBudget& budget) {
  using R = Expected<StreamResult, ProtocolError>;
  return std::visit(
      [&](const auto& req) -> R {
        using T = std::decay_t<decltype(req)>;
        if constexpr (std::is_same_v<T, CloseReq>) {
          conn_ = engine::Lease();  // rolls back an open transaction
          concurrent_.reset();
          last_rowid_ = last_changes_ = 0;  // a stream reopened later starts afresh
          closed_ = true;
          return StreamResult(StreamResponse(CloseResp{}));
        } else if constexpr (std::is_same_v<T, ExecuteReq>) {
          auto sql = resolve_sql(req.stmt.sql, req.stmt.sql_id, sqls);
          if (!sql) return unexpected(sql.error());
          auto r = execute(req.stmt, **sql, budget);
          if (!r) return StreamResult(std::move(r.error()));
          return StreamResult(StreamResponse(ExecuteResp{std::move(r.value())}));
        } else if constexpr (std::is_same_v<T, BatchReq>) {
          auto r = run_batch(req.batch, sqls, budget);
          if (!r) return unexpected(r.error());
          return StreamResult(StreamResponse(BatchResp{std::move(r.value())}));
        } else if constexpr (std::is_same_v<T, SequenceReq>) {
          auto sql = resolve_sql(req.sql, req.sql_id, sqls);
          if (!sql) return unexpected(sql.error());
          auto conn = connection();
          if (!conn) return StreamResult(std::move(conn.error()));
          if (concurrent_ && !borrowed_) return run_sequence_concurrent(**conn, **sql, budget);
          carry_in(**conn);
          auto r = engine::execute_script(**conn, **sql);
          carry_out(**conn);
          if (!r) return StreamResult(to_error(r.error()));
          return StreamResult(StreamResponse(SequenceResp{}));
        } else if constexpr (std::is_same_v<T, DescribeReq>) {
          auto sql = resolve_sql(req.sql, req.sql_id, sqls);
          if (!sql) return unexpected(sql.error());
          auto conn = connection();
          if (!conn) return StreamResult(std::move(conn.error()));
          (*conn)->set_access(access_);
          auto r = engine::describe(**conn, **sql);
          if (!r) return StreamResult(to_error(r.error()));
          return StreamResult(StreamResponse(DescribeResp{std::move(r.value())}));
        } else if constexpr (std::is_same_v<T, StoreSqlReq>) {
          auto r = sqls.store(req.sql_id, req.sql);
          if (!r) return unexpected(r.error());
          if (*r) return StreamResult(std::move(**r));
          return StreamResult(StreamResponse(StoreSqlResp{}));
        } else if constexpr (std::is_same_v<T, CloseSqlReq>) {
          sqls.close(req.sql_id);
          return StreamResult(StreamResponse(CloseSqlResp{}));
        } else {
          return StreamResult(StreamResponse(GetAutocommitResp{!in_transaction()}));
        }
      },
      request);
}

}  // namespace quire::hrana
