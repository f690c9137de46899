#include "common/background_pool.h"

#include "common/thread_name.h"

namespace quire {

BackgroundPool::BackgroundPool(Options options) : options_(options) {}

BackgroundPool::~BackgroundPool() {
  std::unique_lock lock(mu_);
  stop_ = true;
  cv_.notify_all();
  exited_.wait(lock, [&] { return alive_ == 0; });
}

BackgroundPool& BackgroundPool::shared() {
  static BackgroundPool pool;
  return pool;
}

std::size_t BackgroundPool::threads() {
  std::lock_guard lock(mu_);
  return alive_;
}

void BackgroundPool::post(std::function<void()> job) {
  std::unique_lock lock(mu_);
  jobs_.push_back(std::move(job));
  if (idle_ >= jobs_.size()) {
    // Signalled after unlocking: a worker woken while the lock is still held would only block
    // on it again (two more context switches per job when the threads share a CPU).
    lock.unlock();
    cv_.notify_one();
    return;
  }
  ++alive_;
  lock.unlock();
  // Detached: the destructor waits for alive_ to reach zero instead of joining.
  std::thread([this] {
    name_this_thread("quire-pool");
    worker();
  }).detach();
}

void BackgroundPool::worker() {
  std::unique_lock lock(mu_);
  while (true) {
    if (!jobs_.empty()) {
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      job = nullptr;  // its captures go before the lock is taken again
      lock.lock();
      continue;
    }
    if (stop_ || idle_ >= options_.max_idle) break;
    ++idle_;
    const bool woke = cv_.wait_for(lock, options_.linger, [&] { return stop_ || !jobs_.empty(); });
    --idle_;
    if (!woke && jobs_.empty()) break;  // lingered long enough
  }
  --alive_;
  exited_.notify_all();
}

}  // namespace quire
