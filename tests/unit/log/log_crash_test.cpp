// kill -9 at random moments while a child process appends (with rollovers, syncs, snapshots and
// compaction): every time, the log must reopen, hold whole transactions only, with contiguous
// frame numbers, every page intact, and at least every transaction the child reported appended.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include "log/log.h"
#include "log_test_util.h"

namespace quire::log {
namespace {

using namespace quire::log::testing;

// The child: appends forever, reporting each appended commit frame through `fd`.
[[noreturn]] void append_forever(const std::filesystem::path& dir, const LogOptions& options,
                                 unsigned seed, int fd) {
  auto log = ReplicationLog::open(dir, options);
  if (!log) _exit(2);
  std::mt19937 rng(seed);
  for (std::uint64_t i = 0;; ++i) {
    const std::uint32_t db_size = 1 + rng() % 40;
    const std::uint32_t n = 1 + rng() % std::min<std::uint32_t>(db_size, 12);
    std::vector<std::uint32_t> pgnos;
    for (std::uint32_t p = db_size - n + 1; p <= db_size; ++p) pgnos.push_back(p);
    const Frame start = (*log)->last_frame() + 1;
    auto f = (*log)->append(make_txn(pgnos, db_size, start, static_cast<std::int64_t>(start)));
    if (!f) _exit(3);
    if (rng() % 8 == 0 && !(*log)->sync()) _exit(4);
    if (rng() % 150 == 0) {
      if (!(*log)->snapshot() || !(*log)->compact()) _exit(5);
    }
    const Frame done = *f;
    if (::write(fd, &done, sizeof done) != sizeof done) _exit(6);
  }
}

TEST(ReplicationLogCrashTest, ReopensConsistentAfterRepeatedKill9) {
  const auto dir = scratch_dir("crash");
  LogOptions options;
  options.segment_bytes = 300 * 1024;
  ASSERT_TRUE(ReplicationLog::create(dir / "log", options));
  std::mt19937 rng(12345);
  Frame acked = 0;
  const auto started = std::chrono::steady_clock::now();
  int rounds = 0;
  for (; rounds < 30; ++rounds) {
    if (std::chrono::steady_clock::now() - started > std::chrono::seconds(15)) break;
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      append_forever(dir / "log", options, static_cast<unsigned>(rng()), fds[1]);
    }
    ::close(fds[1]);
    std::this_thread::sleep_for(std::chrono::microseconds(5000 + rng() % 60000));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
    Frame reported = 0;
    while (::read(fds[0], &reported, sizeof reported) == sizeof reported) {
      acked = std::max(acked, reported);
    }
    ::close(fds[0]);

    auto log = ReplicationLog::open(dir / "log", options);
    ASSERT_TRUE(log) << "round " << rounds << ": " << log.error().message;
    ASSERT_GE((*log)->last_frame(), acked) << "round " << rounds;
    const Frame first = (*log)->first_available_frame();
    auto all = read_all(**log, first);
    Frame expect = first;
    for (const auto& t : all) {
      ASSERT_EQ(t.first_frame, expect);
      ASSERT_NE(t.txn.db_size, 0u);
      ASSERT_EQ(t.txn.commit_time_us, static_cast<std::int64_t>(t.first_frame));
      for (std::size_t i = 0; i < t.txn.page_count(); ++i) {
        ASSERT_TRUE(page_matches(t.txn.page(i), t.first_frame, t.txn.pgnos[i]));
      }
      expect = t.last_frame() + 1;
    }
    ASSERT_EQ(expect, (*log)->last_frame() + 1);
    if (first > 1) {
      ASSERT_TRUE((*log)->latest_snapshot());
      ASSERT_GE((*log)->latest_snapshot()->frame + 1, first);
    }
    acked = (*log)->last_frame();
  }
  EXPECT_GE(rounds, 10);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace quire::log
