// Who may write to one database, decided before SQLite's own lock is ever contended.
//
// SQLite lets one connection at a time hold a database's write lock; a second writer gets
// SQLITE_BUSY, or sleeps in its busy handler and then gets it. The server owns every connection
// to its databases, so it arbitrates instead: every writer (the write lane for a group commit, a
// stream's interactive write transaction, an autocommit write on a stream's own connection)
// first takes the database's WriteGate, in arrival order, and only then SQLite's lock, which is
// therefore always free. Readers never touch the gate (WAL snapshots).
//
// A holder may keep the gate across network round trips (BEGIN IMMEDIATE, or a deferred
// transaction that has written). It must not stall the tenant: once a waiter has waited longer
// than the transaction timeout while the holder sits between requests ("parked"), the waiter
// rolls the holder's transaction back and takes the gate ("lock stealing", as sqld does). The
// holder's next statement then fails with TRANSACTION_TIMEOUT (see WriteClaim::aborted). A holder
// in the middle of a request is never stolen from; the waiter keeps waiting until it parks.
//
// Thread model: everything is thread-safe. Lock order: the gate's mutex, then a claim's mutex;
// a claim's owner never holds its claim's mutex while it takes the gate.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>

#include "sqlite/connection.h"

namespace quire::engine {

class WriteClaim;

class WriteGate {
 public:
  using Clock = std::chrono::steady_clock;

  explicit WriteGate(std::chrono::milliseconds transaction_timeout)
      : timeout_(transaction_timeout) {}

  // Blocks until `claim` holds the gate (at once if it does already). Fails only once the gate
  // is closed.
  Expected<void, sqlite::AccessError> acquire(WriteClaim& claim);

  // Gives the gate up if `claim` holds it.
  void release(WriteClaim& claim);

  // Refuses every later acquire (shutdown); current holders keep the gate until they release.
  void close();

  // Transactions rolled back because they kept others waiting too long.
  std::uint64_t steals() const;

  std::chrono::milliseconds transaction_timeout() const { return timeout_; }

 private:
  struct Waiter {
    WriteClaim* claim;
    Clock::time_point since;
  };

  const std::chrono::milliseconds timeout_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  WriteClaim* holder_ = nullptr;  // guarded by mu_
  std::deque<Waiter> waiters_;    // guarded by mu_; FIFO
  std::uint64_t steals_ = 0;      // guarded by mu_
  bool closed_ = false;           // guarded by mu_
};

// One connection's standing with the gate, installed as the connection's WriteAccess. Its owner
// parks it between requests, which makes its transaction stealable, and unparks it before it
// touches the connection again.
class WriteClaim final : public sqlite::WriteAccess {
 public:
  // `conn` is the connection this claim belongs to (a stealer rolls it back).
  WriteClaim(WriteGate& gate, sqlite::Connection& conn) : gate_(gate), conn_(conn) {}
  ~WriteClaim() override { gate_.release(*this); }

  Expected<void, sqlite::AccessError> acquire() override { return gate_.acquire(*this); }
  bool aborted() const override;
  void clear_aborted() override;

  // Between requests: a stealer may roll the connection's transaction back now. Gives the gate
  // up at once if the connection holds no write transaction any more.
  void park();
  // Before the owner uses the connection again; waits for a steal in progress to finish.
  void unpark();

  // Gives the gate up unless the connection is inside a write transaction.
  void release_if_idle() override;

 private:
  friend class WriteGate;
  // Called by a waiter, with the gate's mutex held, on the current holder: rolls its transaction
  // back if it is parked. True when it did.
  bool steal();

  WriteGate& gate_;
  sqlite::Connection& conn_;
  mutable std::mutex mu_;
  bool parked_ = false;   // guarded by mu_
  bool aborted_ = false;  // guarded by mu_
};

}  // namespace quire::engine
