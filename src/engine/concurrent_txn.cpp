#include "engine/concurrent_txn.h"

#include <limits>
#include <random>

#include "sqlite/random.h"

namespace quire::engine {

namespace {

// Replays and speculative runs happen inside the lane's group transaction, under this savepoint.
constexpr const char* kSavepoint = "SAVEPOINT quire_concurrent";
constexpr const char* kRollbackTo = "ROLLBACK TO quire_concurrent";
constexpr const char* kRelease = "RELEASE quire_concurrent";

// What the client saw of a statement: everything but timings and read counters.
bool same_outcome(const Expected<StmtResult, ExecError>& a,
                  const Expected<StmtResult, ExecError>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a)
    return a.error().code == b.error().code && a.error().extended_code == b.error().extended_code;
  if (a->cols.size() != b->cols.size()) return false;
  for (std::size_t i = 0; i < a->cols.size(); ++i) {
    if (a->cols[i].name != b->cols[i].name || a->cols[i].decltype_ != b->cols[i].decltype_)
      return false;
  }
  return a->rows == b->rows && a->affected_row_count == b->affected_row_count &&
         a->last_insert_rowid == b->last_insert_rowid;
}

std::uint64_t fresh_seed() {
  static thread_local std::mt19937_64 seeds{std::random_device{}()};
  return seeds();
}

// Statements are replayed with no response limit of their own: the first run already charged
// the client's budget.
constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();

}  // namespace

bool is_begin_concurrent(std::string_view sql) {
  const auto w = leading_keywords(sql, 3);
  return w.size() >= 2 && w[0] == "BEGIN" && w[1] == "CONCURRENT";
}

ExecError concurrent_conflict_error() {
  return {"SQLITE_BUSY",
          "SQLite error: the BEGIN CONCURRENT transaction conflicts with a transaction that "
          "committed after it read (a statement no longer returns what it returned); it was not "
          "committed. Send ROLLBACK and retry the transaction.",
          "SQLITE_BUSY_SNAPSHOT"};
}

void ConcurrentTxn::fail(ExecError error) { failed_ = std::move(error); }

Expected<StmtResult, ExecError> ConcurrentTxn::run(sqlite::Connection& conn, const Entry& entry,
                                                   ResponseBudget& budget) {
  sqlite::SeededRandom random(entry.seed);
  Query q{entry.sql, entry.args, entry.named_args, entry.want_rows};
  auto r = engine::execute(conn, q, budget);
  return r;
}

void ConcurrentTxn::start_from_base(sqlite::Connection& conn) const {
  sqlite3_set_last_insert_rowid(conn.handle(), base_rowid_);
  conn.set_changes(base_changes_);
}

bool ConcurrentTxn::replay(sqlite::Connection& conn) const {
  start_from_base(conn);
  for (const Entry& entry : log_) {
    ResponseBudget budget{kUnlimited};
    if (!same_outcome(run(conn, entry, budget), entry.outcome)) return false;
    if (!conn.in_transaction()) return false;  // the statement ended the transaction
  }
  return true;
}

Expected<StmtResult, ExecError> ConcurrentTxn::execute(sqlite::Connection& own, const Query& query,
                                                       ResponseBudget& budget) {
  if (failed_) return unexpected(*failed_);
  if (log_.size() >= kMaxStatements) {
    return unexpected(ExecError{"SQLITE_FULL",
                                "A BEGIN CONCURRENT transaction may run at most " +
                                    std::to_string(kMaxStatements) + " statements",
                                {}});
  }
  Entry entry{std::string(query.sql), query.args,   query.named_args,
              query.want_rows,        fresh_seed(), StmtResult{}};

  bool read_only = false;
  if (!wrote_) {
    auto prepared = own.prepare_cached(entry.sql);
    read_only = prepared && (*prepared)->stmt && sqlite3_stmt_readonly((*prepared)->stmt.get()) &&
                !begins_write_transaction(entry.sql);
  }
  if (read_only) {
    // Before the first write the transaction's own view is the database's: read it lock-free.
    start_from_base(own);
    entry.outcome = run(own, entry, budget);
  } else {
    // Run it after the logged statements, under the write lock, then undo it all.
    bool diverged = false;
    bool ended = false;
    const std::size_t budget_before = budget.remaining;
    auto done = db_->write_lane()
                    .submit([&](sqlite::Connection& conn) {
                      // May run twice (see WriteLane): start from scratch each time.
                      diverged = ended = false;
                      budget.remaining = budget_before;
                      if (auto s = conn.exec(kSavepoint); !s) {
                        entry.outcome = unexpected(sqlite_error(s.error()));
                        return;
                      }
                      if (!replay(conn)) {
                        diverged = true;
                      } else {
                        entry.outcome = run(conn, entry, budget);
                      }
                      if (!conn.in_transaction()) {
                        ended = true;  // a statement rolled the group back: nothing to undo
                        return;
                      }
                      (void)conn.exec(kRollbackTo);
                      (void)conn.exec(kRelease);
                    })
                    .get();
    if (!done) return unexpected(ExecError{done.error().code, done.error().message, {}});
    if (diverged) {
      fail(concurrent_conflict_error());
      return unexpected(*failed_);
    }
    if (ended) {
      // ON CONFLICT ROLLBACK or RAISE(ROLLBACK): as in SQLite, the transaction is over.
      fail(entry.outcome ? concurrent_conflict_error() : entry.outcome.error());
      return unexpected(*failed_);
    }
    wrote_ = true;
  }
  Expected<StmtResult, ExecError> reply = entry.outcome;
  log_.push_back(std::move(entry));
  return reply;
}

Expected<void, ExecError> ConcurrentTxn::commit(sqlite::Connection& own) {
  if (failed_) return unexpected(*failed_);
  bool valid = false;
  if (!wrote_) {
    // Only reads: valid if they all hold in one snapshot, taken now. No lock needed.
    if (auto b = own.exec("BEGIN"); !b) return unexpected(sqlite_error(b.error()));
    valid = replay(own);
    if (own.in_transaction()) (void)own.exec("COMMIT");
  } else {
    auto done = db_->write_lane()
                    .submit([&](sqlite::Connection& conn) {
                      valid = false;
                      if (!conn.exec(kSavepoint)) return;
                      valid = replay(conn);
                      if (!conn.in_transaction()) {
                        valid = false;
                        return;
                      }
                      if (!valid) (void)conn.exec(kRollbackTo);
                      (void)conn.exec(kRelease);  // keeps the changes in the group transaction
                    })
                    .get();
    if (!done) {
      // The group did not commit: nothing of this transaction was written.
      fail(ExecError{done.error().code, done.error().message, {}});
      return unexpected(*failed_);
    }
  }
  if (!valid) {
    fail(concurrent_conflict_error());
    return unexpected(*failed_);
  }
  return {};
}

}  // namespace quire::engine
