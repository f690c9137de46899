// The pull side of a replica: follows a quire (or sqld) primary over libSQL's replication
// protocol and applies its commits to a ReplicaSink, transaction by transaction.
//
//   Hello -> log id, session token, the primary's last commit frame
//   BatchLogEntries(from applied+1) until caught up; frames are grouped into whole transactions
//     (a transaction ends on its commit frame, size_after != 0) and each is applied atomically
//   caught up -> long-poll: BatchLogEntries(applied) asking the primary to wait up to long_poll
//     for the next commit (x-quire-wait-ms, a quire extension), again and again while it answers,
//     without a Hello in between; a primary that answers empty at once (sqld, an older quire, a
//     busy quire) is polled instead: sleep (adaptive: min_poll doubling up to max_poll, back to
//     min_poll after any commit or on poll_now()), then Hello again
//   NEED_SNAPSHOT, a changed log id, or a primary behind the replica -> Snapshot, then batches
//   NO_HELLO (the primary restarted) -> Hello again
//   any other failure (network, timeouts, refused token, sink error) -> counted, kept as
//     last_error, retried after min_retry doubling up to max_retry; the puller never gives up
// See docs/replication-protocol.md, "quire as a replica: the pull loop".
//
// Thread model: start() spawns the puller's own thread, which alone talks to the primary and
// calls the sink. stop(), poll_now(), wait_until_frame() and stats() may be called from any
// thread; stop() joins (bounded by the call in flight being cancelled, not by its timeout).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/expected.h"
#include "replication/replica_sink.h"
#include "replication/rpc_client.h"

namespace quire::replication {

struct PullerOptions {
  std::string primary_url;  // http://host[:port]
  // Sent as x-namespace and x-namespace-bin (unpadded base64); empty: no namespace headers, so
  // the primary routes by Host (its `default` namespace on a plain address).
  std::string namespace_name;
  // A JWT; sent as "Bearer <token>" in x-authorization and authorization. Empty: none.
  std::string auth_token;
  std::chrono::milliseconds min_poll{5};
  std::chrono::milliseconds max_poll{100};
  // How long a caught-up replica's BatchLogEntries asks the primary to wait for the next commit
  // (at most replication::kMaxWaitMs); 0: no long-poll, sleep and Hello as for sqld.
  std::chrono::milliseconds long_poll{500};
  std::chrono::milliseconds min_retry{50};
  std::chrono::milliseconds max_retry{5000};
  RpcOptions rpc;
};

struct PullerStats {
  std::uint64_t applied_frame = 0;  // quire frame numbering (libSQL frame_no + 1)
  std::uint64_t primary_frame = 0;  // the primary's last commit frame at the last Hello
  std::uint64_t frames_applied = 0;
  std::uint64_t transactions_applied = 0;
  std::uint64_t snapshots = 0;
  std::uint64_t hellos = 0;
  std::uint64_t batches = 0;     // BatchLogEntries calls, long-polls included
  std::uint64_t long_polls = 0;  // BatchLogEntries calls that asked the primary to wait
  std::uint64_t errors = 0;
  // The last applied transaction's delay: apply end minus its commit time when the frame
  // carried one (sqld sends Frame.timestamp), else apply end minus the moment the batch that
  // brought it was requested, or for a long-poll the moment its answer arrived (quire's frames
  // carry no time, and a long-poll is sent before the commit it brings). Microseconds.
  std::int64_t last_lag_us = 0;
  bool caught_up = false;  // the last round ended at the primary's last commit, without error
  std::string log_id;
  std::string last_error;  // empty after a round that succeeded
};

class Puller {
 public:
  // Checks the options (URL); does not contact the primary. `sink` must outlive the Puller.
  static Expected<std::unique_ptr<Puller>, std::string> create(PullerOptions options,
                                                               ReplicaSink& sink);
  ~Puller();  // stop()
  Puller(const Puller&) = delete;
  Puller& operator=(const Puller&) = delete;

  // Reads the sink's position and starts pulling on the puller's thread. Once.
  void start();
  // Cancels the call in flight and joins the thread. Idempotent.
  void stop();
  // Starts the next poll now instead of after the current sleep (e.g. after a forwarded write).
  void poll_now();
  // Polls now and waits until the replica has applied commit frame `frame` (quire numbering;
  // for a forwarded write, ExecuteResults.current_frame_no + 1). The error says why not: the
  // deadline passed (with the last error, if any, such as a refused token) or the puller stopped.
  Expected<void, std::string> wait_until_frame(std::uint64_t frame,
                                               std::chrono::steady_clock::time_point deadline);
  PullerStats stats() const;

 private:
  using Clock = std::chrono::steady_clock;
  enum class RoundResult { kIdle, kApplied };
  enum class FollowResult {
    kIgnored,  // the primary answered empty at once: it does not long-poll; sleep, then a round
    kRound,    // the primary wants a Hello (NO_HELLO) or a snapshot (NEED_SNAPSHOT): a round now
  };
  Puller(PullerOptions options, RpcEndpoint endpoint, ReplicaSink& sink);

  void run();
  // One Hello, then batches until caught up. An error string on failure.
  Expected<RoundResult, std::string> round();
  // After a round that ended caught up: long-polls, applying what comes, until the primary shows
  // it does not wait, needs a round, or a call fails (an error string).
  Expected<FollowResult, std::string> follow();
  // One BatchLogEntries(next_offset = applied_); `wait` > 0 asks the primary to long-poll.
  Expected<std::vector<std::string>, RpcError> call_batch(std::chrono::milliseconds wait);
  // Applies the whole transactions of one BatchLogEntries answer, which asked from
  // `next_offset`; `since` is the lag's origin for frames without a commit time. Returns how
  // many frames the answer held (0: the replica is caught up).
  Expected<std::size_t, std::string> apply_batch(const std::string& message,
                                                 std::uint64_t next_offset,
                                                 Clock::time_point since);
  Expected<void, std::string> hello();
  // Snapshot, streamed into the sink; for a primary that does not send the highest page first,
  // pull_snapshot_whole() (the answer held and checked whole before the sink sees it).
  Expected<void, std::string> pull_snapshot();
  Expected<void, std::string> pull_snapshot_whole();
  // The sink holds the primary's snapshot at commit frame `frame`.
  Expected<void, std::string> snapshot_done(std::uint64_t frame);
  RpcHeaders headers(bool with_session) const;
  // Sleeps until `delay` passes, poll_now() or stop(). False when stopping.
  bool sleep(std::chrono::milliseconds delay);
  void set_applied(std::uint64_t frame);
  bool stopping() const;

  const PullerOptions options_;
  ReplicaSink& sink_;
  RpcClient rpc_;
  std::thread thread_;

  // Owned by the puller's thread.
  std::string session_token_;
  std::string primary_log_id_;  // from the last Hello
  std::uint64_t primary_frame_ = 0;
  std::string log_id_;  // the log the sink follows
  std::uint64_t applied_ = 0;
  // False after the primary answered a long-poll empty at once; true again after a round that
  // applied commits or a new session, so a primary that skipped one wait (too many waiting) is
  // asked again, and one that never waits costs one extra call per commit, not per poll.
  bool long_poll_ok_ = true;

  mutable std::mutex mu_;
  std::condition_variable cv_;   // stop, poll_now, applied frame changes
  bool started_ = false;         // guarded by mu_
  bool stopping_ = false;        // guarded by mu_
  bool poll_requested_ = false;  // guarded by mu_
  PullerStats stats_;            // guarded by mu_
};

}  // namespace quire::replication
