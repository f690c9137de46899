#include "common/background_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

namespace quire {
namespace {

TEST(BackgroundPoolTest, RunsEveryJobAndReusesIdleThreads) {
  BackgroundPool pool({.linger = std::chrono::milliseconds(5000), .max_idle = 4});
  std::atomic<int> ran{0};
  for (int round = 0; round < 20; ++round) {
    std::promise<void> done;
    pool.post([&] {
      ran.fetch_add(1);
      done.set_value();
    });
    done.get_future().wait();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the thread goes back to idle
  }
  EXPECT_EQ(ran.load(), 20);
  EXPECT_EQ(pool.threads(), 1u);  // one job at a time: one thread, reused
}

TEST(BackgroundPoolTest, AJobThatWaitsDoesNotHoldUpTheOthers) {
  BackgroundPool pool;
  std::promise<void> release;
  auto released = release.get_future().share();
  std::promise<void> blocked_started;
  // `released` by value: the job may still be returning from wait() when the test's locals
  // are destroyed (the pool, declared first, joins its threads last).
  pool.post([&blocked_started, released] {
    blocked_started.set_value();
    released.wait();
  });
  blocked_started.get_future().wait();
  std::promise<void> other;
  pool.post([&] { other.set_value(); });
  EXPECT_EQ(other.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  release.set_value();
}

TEST(BackgroundPoolTest, IdleThreadsExitAfterLingering) {
  BackgroundPool pool({.linger = std::chrono::milliseconds(50), .max_idle = 8});
  std::atomic<int> ran{0};
  std::promise<void> release;
  auto released = release.get_future().share();
  for (int i = 0; i < 4; ++i) {
    pool.post([&ran, released] {
      ran.fetch_add(1);
      released.wait();
    });
  }
  while (ran.load() < 4) std::this_thread::yield();
  EXPECT_EQ(pool.threads(), 4u);
  release.set_value();
  for (int i = 0; i < 200 && pool.threads() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(pool.threads(), 0u);
}

}  // namespace
}  // namespace quire
