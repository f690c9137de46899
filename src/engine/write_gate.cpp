#include "engine/write_gate.h"

#include <algorithm>

namespace quire::engine {

namespace {

bool holds_write_transaction(sqlite::Connection& conn) {
  return sqlite3_txn_state(conn.handle(), nullptr) == SQLITE_TXN_WRITE;
}

// How often a waiter looks again whether the holder has parked, once stealing is due.
constexpr std::chrono::milliseconds kStealPoll{20};

}  // namespace

Expected<void, sqlite::AccessError> WriteGate::acquire(WriteClaim& claim) {
  std::unique_lock lock(mu_);
  if (holder_ == &claim) return {};
  if (closed_)
    return unexpected(sqlite::AccessError{"SERVER_SHUTTING_DOWN", "The server is shutting down"});
  const Clock::time_point since = Clock::now();
  waiters_.push_back({&claim, since});
  auto leave = [&] {
    waiters_.erase(std::find_if(waiters_.begin(), waiters_.end(),
                                [&](const Waiter& w) { return w.claim == &claim; }));
  };
  while (true) {
    if (closed_) {
      leave();
      cv_.notify_all();
      return unexpected(sqlite::AccessError{"SERVER_SHUTTING_DOWN", "The server is shutting down"});
    }
    if (holder_ == nullptr && waiters_.front().claim == &claim) {
      waiters_.pop_front();
      holder_ = &claim;
      cv_.notify_all();  // the next waiter becomes the front one
      return {};
    }
    const Clock::time_point due = waiters_.front().since + timeout_;
    const Clock::time_point now = Clock::now();
    if (holder_ != nullptr && now >= due) {
      // The longest waiter has waited too long: roll the holder back if it sits between
      // requests; otherwise look again shortly.
      if (holder_->steal()) {
        holder_ = nullptr;
        ++steals_;
        continue;
      }
      cv_.wait_for(lock, kStealPoll);
    } else if (holder_ != nullptr) {
      cv_.wait_until(lock, due);
    } else {
      cv_.wait(lock);
    }
  }
}

void WriteGate::release(WriteClaim& claim) {
  std::lock_guard lock(mu_);
  if (holder_ != &claim) return;
  holder_ = nullptr;
  cv_.notify_all();
}

void WriteGate::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  cv_.notify_all();
}

std::uint64_t WriteGate::steals() const {
  std::lock_guard lock(mu_);
  return steals_;
}

bool WriteClaim::aborted() const {
  std::lock_guard lock(mu_);
  return aborted_;
}

void WriteClaim::clear_aborted() {
  std::lock_guard lock(mu_);
  aborted_ = false;
}

void WriteClaim::park() {
  release_if_idle();
  std::lock_guard lock(mu_);
  parked_ = true;
}

void WriteClaim::unpark() {
  std::lock_guard lock(mu_);
  parked_ = false;
}

void WriteClaim::release_if_idle() {
  bool idle;
  {
    std::lock_guard lock(mu_);
    idle = !holds_write_transaction(conn_);
  }
  if (idle) gate_.release(*this);
}

bool WriteClaim::steal() {
  std::lock_guard lock(mu_);
  if (!parked_) return false;
  if (conn_.in_transaction()) (void)conn_.exec("ROLLBACK");
  aborted_ = true;
  return true;
}

}  // namespace quire::engine
