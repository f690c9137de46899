// The write lane of one database: autocommit writes from many clients, executed in arrival order
// on one connection and committed together (group commit).
//
// Each task runs inside the lane's current group transaction (BEGIN IMMEDIATE ... COMMIT). A
// statement is atomic on its own inside a transaction (SQLite undoes a failed statement), so a
// task that fails leaves the others untouched, and every task sees exactly the results serial
// autocommit execution would have given it: the same order, the same rowids and change counts.
// One COMMIT (one fsync with synchronous=FULL) covers the whole group. A task is acknowledged
// only after its group committed.
//
// A task whose statement ends the transaction itself (the ROLLBACK conflict-resolution
// algorithm, RAISE(ROLLBACK), an I/O error) undoes the earlier tasks of its group: they are run
// again at the head of the next group, their first results discarded (nothing had been
// acknowledged).
//
// Thread model: submit() from any thread. The lane has no thread of its own: while tasks are
// queued, one job on the shared BackgroundPool runs groups until the queue is empty, so an open
// database nobody writes to costs no thread. Its connection is opened by the first group.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>

#include "common/expected.h"
#include "engine/write_gate.h"
#include "sqlite/connection.h"

namespace quire::engine {

struct WriteLaneOptions {
  // Tasks waiting beyond this are refused with an overload error instead of queueing without
  // bound.
  std::size_t max_queue = 10'000;
  // Tasks per group transaction.
  std::size_t max_group = 512;
};

class WriteLane {
 public:
  // Runs its statements on `conn`. Must be idempotent up to its results: it may run twice (see
  // above), and only the last run counts.
  using Task = std::function<void(sqlite::Connection& conn)>;

  // How a task ended: committed, or failed as a whole (the group's BEGIN or COMMIT failed, or
  // the lane is overloaded or stopping): then none of its writes happened, except when the
  // COMMIT took effect but the replication log could not record it (the failure's message says
  // so: the commit stays in the WAL and reaches the log later, unacknowledged).
  struct Failure {
    std::string code;  // "SQLITE_BUSY", "SQLITE_FULL", "TRANSACTION_BUSY"...
    std::string message;
    int rc = 0;
  };

  using ConnectionFactory =
      std::function<Expected<std::unique_ptr<sqlite::Connection>, sqlite::Error>()>;

  // Each group transaction first takes `gate` (so it queues fairly behind interactive writers
  // instead of meeting SQLITE_BUSY); the gate must outlive the lane. `open` makes the lane's
  // connection when the first group runs (and again after a failure to open).
  WriteLane(ConnectionFactory open, WriteGate& gate, WriteLaneOptions options);
  WriteLane(std::unique_ptr<sqlite::Connection> conn, WriteGate& gate, WriteLaneOptions options);
  ~WriteLane();

  // How a task's end is reported: called once, on the lane's thread after its group committed
  // or failed (or at once, on the caller's thread, when the task is refused), never under the
  // lane's lock. It must not block: hand the result on (asio::post, a promise).
  using Done = std::function<void(Expected<void, Failure>)>;

  // Queues `task`; `done` hears how it ended. A task that throws fails alone with an
  // INTERNAL_ERROR failure carrying the exception's message.
  void submit(Task task, Done done);
  // The same, as a future that is ready once its group committed (or failed).
  std::future<Expected<void, Failure>> submit(Task task);

  // Finishes the queued tasks; later submits are refused.
  void stop();

  // Group transactions committed, and tasks acknowledged in them, since start.
  std::uint64_t groups_committed() const { return groups_.load(std::memory_order_relaxed); }
  std::uint64_t tasks_committed() const { return tasks_.load(std::memory_order_relaxed); }

 private:
  struct Item {
    Task task;
    Done done;
  };
  void drain();
  void run_group(std::deque<Item>& group);
  // Drops the item's task, then calls its `done` with `result`.
  static void report(Item& item, Expected<void, Failure> result);
  // Task i threw: it fails alone, and the group's transaction is rolled back.
  void fail_alone(std::deque<Item>& group, std::size_t i, const std::string& what);

  ConnectionFactory open_;
  // Only the draining job touches these two.
  std::unique_ptr<sqlite::Connection> conn_;
  std::unique_ptr<WriteClaim> claim_;  // never parked: held only while a group runs
  WriteGate& gate_;
  const WriteLaneOptions options_;
  std::mutex mu_;
  std::condition_variable idle_cv_;
  std::deque<Item> queue_;  // guarded by mu_
  bool draining_ = false;   // guarded by mu_: a job runs groups
  bool stop_ = false;       // guarded by mu_
  std::atomic<std::uint64_t> groups_{0};
  std::atomic<std::uint64_t> tasks_{0};
};

// True for a statement that may join a group transaction: plain DML and DDL (INSERT, REPLACE,
// UPDATE, DELETE, CREATE, DROP, ALTER, WITH ...). Transaction control, PRAGMA (several are no-ops
// inside a transaction), VACUUM, ATTACH and the like run on their own.
bool groupable_statement(std::string_view sql);

// True for a statement whose first keyword makes it a write (INSERT, REPLACE, UPDATE, DELETE,
// CREATE, DROP, ALTER), so that it needs the write lock, if it runs at all, whatever else it
// says: known without preparing it. (WITH may start a plain SELECT.)
bool writes_by_keyword(std::string_view sql);

}  // namespace quire::engine
