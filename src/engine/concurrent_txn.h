// BEGIN CONCURRENT: interactive write transactions that never hold the write lock across a
// network round trip, and commit only if they are serializable.
//
// Mainline SQLite has no BEGIN CONCURRENT (it lives on a branch), so the server provides it on
// top of the write lane. A concurrent transaction is a log of the statements its client ran and
// of exactly what each returned (rows, columns, change count, rowid, or error):
//
//  - A read before the transaction's first write runs on the stream's own connection, outside any
//    transaction, without any lock.
//  - A write (and anything after one, so that it sees the transaction's own writes) runs as a
//    task of the write lane, inside a savepoint: the logged statements are replayed, the new one
//    runs, its result is recorded, and the savepoint is rolled back. The write lock is held for
//    that task only, never while the client thinks.
//  - COMMIT replays the whole log once more inside the lane's group transaction and keeps the
//    changes only if every statement returned exactly what the client was told; otherwise the
//    savepoint is rolled back and COMMIT fails with SQLITE_BUSY (extended SQLITE_BUSY_SNAPSHOT),
//    retryable, leaving no trace. A replay that diverges earlier (at a later statement) fails
//    the transaction at that statement.
//
// Why this is serializable: the client's decisions (which statements to send, with which
// arguments) depend only on the results it saw. At commit the same statements, run serially at
// the commit point with the write lock held, produced the same results, so the committed
// changes are exactly those of the same client running alone at that moment. Transactions
// therefore serialize in commit order. Nothing is written unless validation succeeds.
//
// Non-determinism: results the client never saw (the value random() wrote into a row, which
// rowid an INSERT chose when the client did not look) may differ between the first run and the
// commit; the committed values are those of the commit-time run, which is a valid serial
// execution. random() and randomblob() are replayed with the same seed, so a transaction that
// reads them back does not conflict needlessly. An observed difference in anything else (a
// rowid returned by INSERT, a timestamp with sub-second precision) is a conflict: never a wrong
// result, at worst a retry.
//
// Thread model: one transaction is used by one thread at a time (its stream's). Blocks while
// its lane tasks run: call from the blocking pool.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/database.h"
#include "engine/executor.h"

namespace quire::engine {

// True for BEGIN CONCURRENT [TRANSACTION].
bool is_begin_concurrent(std::string_view sql);

class ConcurrentTxn {
 public:
  // `last_rowid` and `changes` are what last_insert_rowid() and changes() said when the
  // transaction began; every run of its statements starts from them.
  ConcurrentTxn(std::shared_ptr<Database> db, std::int64_t last_rowid, std::int64_t changes)
      : db_(std::move(db)), base_rowid_(last_rowid), base_changes_(changes) {}

  // Runs one statement of the transaction (not COMMIT or ROLLBACK: the caller ends the
  // transaction). `own` is the stream's connection, outside any transaction.
  Expected<StmtResult, ExecError> execute(sqlite::Connection& own, const Query& query,
                                          ResponseBudget& budget);

  // Validates the transaction and commits it with the lane's next group. On a conflict the
  // transaction stays failed (see failed()); the caller must still end it.
  Expected<void, ExecError> commit(sqlite::Connection& own);

  // After a conflict: every statement but ROLLBACK fails with conflict_error().
  bool failed() const { return failed_.has_value(); }
  const ExecError& failure() const { return *failed_; }

  // The most statements one concurrent transaction may run.
  static constexpr std::size_t kMaxStatements = 10'000;

 private:
  struct Entry {
    std::string sql;
    std::vector<Value> args;
    std::vector<NamedArg> named_args;
    bool want_rows = true;
    std::uint64_t seed = 0;  // for random() and randomblob(), the same in every run
    Expected<StmtResult, ExecError> outcome = StmtResult{};
  };

  // Runs the logged statements on `conn`; true when each returned what was recorded.
  bool replay(sqlite::Connection& conn) const;
  void start_from_base(sqlite::Connection& conn) const;
  static Expected<StmtResult, ExecError> run(sqlite::Connection& conn, const Entry& entry,
                                             ResponseBudget& budget);
  void fail(ExecError error);

  std::shared_ptr<Database> db_;
  std::vector<Entry> log_;
  std::int64_t base_rowid_;
  std::int64_t base_changes_;
  bool wrote_ = false;
  std::optional<ExecError> failed_;
};

// The retryable error of a concurrent transaction that lost a conflict.
ExecError concurrent_conflict_error();

}  // namespace quire::engine
