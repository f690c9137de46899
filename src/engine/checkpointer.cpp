#include "engine/checkpointer.h"

#include <optional>

#include "common/background_pool.h"

namespace quire::engine {

Checkpointer::Checkpointer(ConnectionFactory open, int threshold_frames,
                           std::function<bool()> before)
    : open_(std::move(open)), before_(std::move(before)), threshold_(threshold_frames) {}

Checkpointer::~Checkpointer() { stop(); }

void Checkpointer::stop() {
  std::unique_lock lock(mu_);
  stop_ = true;
  cv_.wait(lock, [&] { return !pending_; });
}

void Checkpointer::notify(int wal_frames) {
  if (wal_frames < threshold_) return;
  const int last = last_log_.load(std::memory_order_relaxed);
  if (wal_frames >= last && wal_frames - last < threshold_ / 2) return;
  {
    std::lock_guard lock(mu_);
    if (pending_ || stop_) return;
    pending_ = true;
  }
  BackgroundPool::shared().post([this] {
    // PASSIVE never waits for locks. Once every frame is backfilled, the next writer starts the
    // WAL over from its beginning, so the file stays near the threshold in size.
    (void)run(SQLITE_CHECKPOINT_PASSIVE);
    std::lock_guard lock(mu_);
    pending_ = false;
    cv_.notify_all();
  });
}

Expected<void, sqlite::Error> Checkpointer::run(int mode, WriteGate* gate) {
  std::unique_lock lock(run_mu_);
  if (!conn_) {
    auto opened = open_();
    if (!opened) return unexpected(opened.error());
    conn_ = std::move(opened.value());
  }
  std::optional<WriteClaim> claim;  // never parked, so never stolen from
  if (gate && (mode == SQLITE_CHECKPOINT_RESTART || mode == SQLITE_CHECKPOINT_TRUNCATE)) {
    // Not while holding run_mu_: the gate's holder may be a writer whose WAL hook is about to
    // run an inline checkpoint (run_inline takes run_mu_). conn_ stays once opened.
    lock.unlock();
    claim.emplace(*gate, *conn_);
    if (!gate->acquire(*claim)) claim.reset();  // closed: shutting down, nobody writes any more
    lock.lock();
  }
  if (before_ && !before_()) {
    return unexpected(
        sqlite::Error{SQLITE_IOERR, "the replication log could not take the WAL's frames"});
  }
  int log = 0, done = 0;
  int rc = sqlite3_wal_checkpoint_v2(conn_->handle(), nullptr, mode, &log, &done);
  if (log >= 0) last_log_.store(log, std::memory_order_relaxed);
  if (rc != SQLITE_OK && rc != SQLITE_BUSY) return unexpected(conn_->last_error());
  return {};
}

void Checkpointer::run_inline(sqlite3* conn, const char* schema) {
  std::lock_guard lock(run_mu_);
  int log = 0, done = 0;
  (void)sqlite3_wal_checkpoint_v2(conn, schema, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
  if (log >= 0) last_log_.store(log, std::memory_order_relaxed);
}

}  // namespace quire::engine
