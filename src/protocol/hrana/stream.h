// A Hrana stream: one database connection that lives across requests (so an interactive
// transaction can span them), and the execution of every stream request on it. Shared by HTTP
// pipelines and WebSocket sessions; the transport decides where SQL texts are stored.
//
// Thread model: a Stream is used by one thread at a time (HTTP: whoever checked it out of the
// StreamRegistry; WebSocket: the connection's strand).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "engine/concurrent_txn.h"
#include "engine/database.h"
#include "protocol/hrana/model.h"
#include "protocol/limits.h"

namespace quire::hrana {

// SQL texts stored by store_sql, by id.
class SqlStore {
 public:
  explicit SqlStore(const protocol::Limits& limits) : limits_(&limits) {}

  // Stores `sql` under `id`. Too many or too large texts are request errors
  // (SQL_STORE_TOO_MANY / SQL_STORE_TOO_LARGE); reusing a live id is a protocol error.
  Expected<std::optional<Error>, ProtocolError> store(std::int32_t id, std::string sql);
  void close(std::int32_t id) {
    if (auto it = texts_.find(id); it != texts_.end()) {
      bytes_ -= it->second.size();
      texts_.erase(it);
    }
  }
  const std::string* find(std::int32_t id) const {
    auto it = texts_.find(id);
    return it == texts_.end() ? nullptr : &it->second;
  }

 private:
  const protocol::Limits* limits_;
  std::unordered_map<std::int32_t, std::string> texts_;
  std::size_t bytes_ = 0;  // of all texts_
};

class Stream {
 public:
  explicit Stream(std::shared_ptr<engine::Database> db) : db_(std::move(db)) {}
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Runs one request. A request that fails on its own returns an Error result (and the stream
  // goes on); a protocol error is returned as such and the caller drops the stream.
  Expected<StreamResult, ProtocolError> run(const StreamRequest& request, SqlStore& sqls,
                                            engine::ResponseBudget& budget);

  // Runs `request` on `conn` instead of the stream's own connection: the write lane's, inside
  // its group transaction.
  Expected<StreamResult, ProtocolError> run_on(sqlite::Connection& conn,
                                               const StreamRequest& request, SqlStore& sqls,
                                               engine::ResponseBudget& budget);

  // What requests leave on the stream besides their results: last_insert_rowid(), changes(),
  // and whether it was closed. The write lane may run a task twice (when a later task of its
  // group ended the transaction, the first run was rolled back): a task takes this before it is
  // submitted and restores it at the start of every run, so the run that counts starts from
  // the state the request was sent in, not from the undone run's.
  struct Carried {
    std::int64_t last_rowid = 0;
    std::int64_t last_changes = 0;
    bool closed = false;
  };
  Carried carried() const { return {last_rowid_, last_changes_, closed_}; }
  void restore(const Carried& c) {
    last_rowid_ = c.last_rowid;
    last_changes_ = c.last_changes;
    closed_ = c.closed;
  }

  // True when `request` is a single autocommit write that may join a group commit: this stream
  // is not inside a transaction and the statement is plain DML/DDL.
  bool groupable(const Stmt& stmt, const SqlStore& sqls);

  // Runs a batch. Steps whose condition is false are skipped (null result and null error).
  Expected<BatchResult, ProtocolError> run_batch(const Batch& batch, const SqlStore& sqls,
                                                 engine::ResponseBudget& budget);

  // Runs a batch for a cursor, handing each entry to `sink` as it is produced.
  Expected<void, ProtocolError> run_cursor(const Batch& batch, const SqlStore& sqls,
                                           engine::ResponseBudget& budget,
                                           const std::function<void(CursorEntry&&)>& sink);

  // True when running `request` may have to wait for the database's write lock: it writes, or
  // begins an IMMEDIATE/EXCLUSIVE transaction, and this stream does not hold the lock already.
  // Such requests run on the blocking pool so that waiting never stalls an I/O thread; all
  // others (reads, and everything inside a write transaction this stream holds) run inline.
  bool may_block(const StreamRequest& request, const SqlStore& sqls);
  bool may_block(const Batch& batch, const SqlStore& sqls);
  bool may_block(const Stmt& stmt, const SqlStore& sqls);

  // True after a `close` request, until a later request reopens the stream.
  bool closed() const { return closed_; }
  engine::Database& database() const { return *db_; }

  // What the client of the current request may do (from its token); applies to every statement
  // until changed.
  void set_access(sqlite::Connection::Access access) { access_ = access; }
  // Inside a transaction, as the client sees it: also after the server rolled the transaction
  // back (TRANSACTION_TIMEOUT) until the client ends it.
  bool in_transaction();

 private:
  // Marks the stream's connection in use for its lifetime. Between uses the connection is
  // parked: a write transaction left open across requests may then be rolled back by a writer
  // that waited too long (engine::WriteGate). Nests.
  class Use {
   public:
    explicit Use(Stream& s);
    ~Use();
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;

   private:
    Stream& s_;
  };

  Expected<StreamResult, ProtocolError> run_one(const StreamRequest& request, SqlStore& sqls,
                                                engine::ResponseBudget& budget);
  Expected<sqlite::Connection*, Error> connection();
  void release_if_idle();
  Expected<StmtResult, Error> execute(const Stmt& stmt, const std::string& sql,
                                      engine::ResponseBudget& budget);
  // A sequence (script) inside BEGIN CONCURRENT: its statements one by one.
  StreamResult run_sequence_concurrent(sqlite::Connection& conn, std::string_view sql,
                                       engine::ResponseBudget& budget);
  // A statement inside BEGIN CONCURRENT.
  Expected<StmtResult, Error> execute_concurrent(const Stmt& stmt, const std::string& sql,
                                                 engine::ResponseBudget& budget);
  bool eval(const BatchCond& cond, const std::vector<int>& outcome);
  // Runs the steps of `batch` whose condition holds, handing each result to `on_step`.
  Expected<void, ProtocolError> for_each_step(
      const Batch& batch, const SqlStore& sqls, engine::ResponseBudget& budget,
      const std::function<void(std::uint32_t, Expected<StmtResult, Error>&&)>& on_step);
  bool holds_write_lock() const;

  std::shared_ptr<engine::Database> db_;
  engine::Lease conn_;
  sqlite::Connection* borrowed_ = nullptr;  // set while run_on() runs
  bool closed_ = false;
  int uses_ = 0;
  std::optional<engine::ConcurrentTxn> concurrent_;  // inside BEGIN CONCURRENT
  // What last_insert_rowid() and changes() say on this stream, carried across the connections
  // its statements run on (its own, the write lane's): as on a connection of its own.
  sqlite::Connection::Access access_;
  std::int64_t last_rowid_ = 0;
  std::int64_t last_changes_ = 0;
  // Before and after a statement on `conn`.
  void carry_in(sqlite::Connection& conn);
  void carry_out(sqlite::Connection& conn);
};

// The error value for an engine failure.
Error to_error(const engine::ExecError& e);

}  // namespace quire::hrana
