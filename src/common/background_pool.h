// Threads for background work that belongs to no request: each open database's write lane and
// checkpointer run their work here instead of on threads of their own, so an open database that
// nobody writes to costs no thread at all.
//
// The pool is elastic: post() hands the job to an idle thread, or starts a new one if none is
// idle (a job may wait for a long time, e.g. a write lane behind an interactive transaction, so a
// fixed-size pool could starve the others). Threads idle for longer than `linger` exit; at most
// `max_idle` stay parked.
//
// Thread model: post() from any thread. The destructor waits for running jobs.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace quire {

class BackgroundPool {
 public:
  struct Options {
    std::chrono::milliseconds linger{10'000};
    std::size_t max_idle = 8;
  };

  BackgroundPool() : BackgroundPool(Options{}) {}
  explicit BackgroundPool(Options options);
  ~BackgroundPool();
  BackgroundPool(const BackgroundPool&) = delete;
  BackgroundPool& operator=(const BackgroundPool&) = delete;

  void post(std::function<void()> job);

  // Threads alive now (running a job or idle).
  std::size_t threads();

  // The process-wide pool.
  static BackgroundPool& shared();

 private:
  void worker();

  const Options options_;
  std::mutex mu_;
  std::condition_variable cv_;              // work or stop for idle threads
  std::condition_variable exited_;          // a thread left
  std::deque<std::function<void()>> jobs_;  // guarded by mu_
  std::size_t idle_ = 0;                    // guarded by mu_
  std::size_t alive_ = 0;                   // guarded by mu_
  bool stop_ = false;                       // guarded by mu_
};

}  // namespace quire
