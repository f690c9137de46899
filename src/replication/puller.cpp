#include "replication/puller.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "common/base64.h"
#include "common/thread_name.h"
#include "protocol/replication/codec.h"
#include "protocol/replication/frame.h"
#include "protocol/replication/grpc_web.h"

namespace quire::replication {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kHelloMethod = "wal_log.ReplicationLog/Hello";
constexpr std::string_view kBatchMethod = "wal_log.ReplicationLog/BatchLogEntries";
constexpr std::string_view kSnapshotMethod = "wal_log.ReplicationLog/Snapshot";

std::int64_t wall_clock_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool is_status(const RpcError& e, std::string_view message) {
  return e.kind == RpcError::Kind::kStatus &&
         e.grpc_status == static_cast<int>(GrpcStatus::kFailedPrecondition) && e.message == message;
}

// A transaction being assembled from consecutive frames; a page written twice keeps its last
// image (sqld's frames may repeat a page inside one transaction, quire's never do).
class PendingTxn {
 public:
  void add(std::uint32_t pgno, std::string_view page) {
    const auto* bytes = reinterpret_cast<const std::byte*>(page.data());
    if (auto it = index_.find(pgno); it != index_.end()) {
      std::memcpy(txn_.pages.data() + it->second * log::kPageSize, bytes, log::kPageSize);
      return;
    }
    index_.emplace(pgno, txn_.pgnos.size());
    txn_.add_page(pgno, std::span<const std::byte>(bytes, log::kPageSize));
  }
  log::Transaction& txn() { return txn_; }
  bool empty() const { return txn_.pgnos.empty(); }
  void clear() {
    txn_ = log::Transaction{};
    index_.clear();
  }

 private:
  log::Transaction txn_;
  std::unordered_map<std::uint32_t, std::size_t> index_;
};

}  // namespace

Expected<std::unique_ptr<Puller>, std::string> Puller::create(PullerOptions options,
                                                              ReplicaSink& sink) {
  auto endpoint = parse_primary_url(options.primary_url);
  if (!endpoint) return unexpected(std::move(endpoint.error()));
  if (options.min_poll.count() <= 0 || options.max_poll < options.min_poll ||
      options.min_retry.count() <= 0 || options.max_retry < options.min_retry) {
    return unexpected(std::string("poll and retry intervals must be positive, min <= max"));
  }
  if (options.long_poll.count() < 0) {
    return unexpected(std::string("long_poll must be 0 (off) or positive"));
  }
  // The primary waits at most kMaxWaitMs; asking for more would only blur the test that tells
  // a primary that ignores the request apart.
  options.long_poll = std::min(options.long_poll, std::chrono::milliseconds(kMaxWaitMs));
  return std::unique_ptr<Puller>(new Puller(std::move(options), std::move(endpoint.value()), sink));
}

Puller::Puller(PullerOptions options, RpcEndpoint endpoint, ReplicaSink& sink)
    : options_(std::move(options)), sink_(sink), rpc_(std::move(endpoint), options_.rpc) {}

Puller::~Puller() { stop(); }

void Puller::start() {
  {
    std::lock_guard lock(mu_);
    if (started_) return;
    started_ = true;
  }
  auto pos = sink_.position();
  log_id_ = pos.log_id;
  applied_ = pos.frame;
  {
    std::lock_guard lock(mu_);
    stats_.applied_frame = applied_;
    stats_.log_id = log_id_;
  }
  thread_ = std::thread([this] {
    name_this_thread("quire-pull");
    run();
  });
}

void Puller::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  rpc_.cancel();
  if (thread_.joinable()) thread_.join();
}

void Puller::poll_now() {
  {
    std::lock_guard lock(mu_);
    poll_requested_ = true;
  }
  cv_.notify_all();
}

bool Puller::stopping() const {
  std::lock_guard lock(mu_);
  return stopping_;
}

Expected<void, std::string> Puller::wait_until_frame(std::uint64_t frame,
                                                     Clock::time_point deadline) {
  poll_now();
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, deadline, [&] { return stopping_ || stats_.applied_frame >= frame; });
  if (stats_.applied_frame >= frame) return {};
  std::string why = stopping_ ? "puller stopped" : "timed out";
  why += " at frame " + std::to_string(stats_.applied_frame) + " waiting for frame " +
         std::to_string(frame);
  if (!stats_.last_error.empty()) why += " (last error: " + stats_.last_error + ")";
  return unexpected(std::move(why));
}

PullerStats Puller::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

bool Puller::sleep(std::chrono::milliseconds delay) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, delay, [&] { return stopping_ || poll_requested_; });
  poll_requested_ = false;
  return !stopping_;
}

void Puller::set_applied(std::uint64_t frame) {
  applied_ = frame;
  {
    std::lock_guard lock(mu_);
    stats_.applied_frame = frame;
    stats_.log_id = log_id_;
  }
  cv_.notify_all();
}

RpcHeaders Puller::headers(bool with_session) const {
  RpcHeaders h;
  if (!options_.namespace_name.empty()) {
    h.emplace_back("x-namespace", options_.namespace_name);
    h.emplace_back(std::string(kNamespaceHeader), base64::encode(options_.namespace_name));
  }
  if (!options_.auth_token.empty()) {
    h.emplace_back(std::string(kAuthorizationHeader), "Bearer " + options_.auth_token);
    h.emplace_back("authorization", "Bearer " + options_.auth_token);
  }
  if (with_session && !session_token_.empty()) {
    h.emplace_back(std::string(kSessionTokenHeader), session_token_);
  }
  return h;
}

void Puller::run() {
  auto retry = options_.min_retry;
  auto poll = options_.min_poll;
  while (!stopping()) {
    auto result = round();
    if (stopping()) break;
    if (!result) {
      {
        std::lock_guard lock(mu_);
        ++stats_.errors;
        stats_.last_error = result.error();
        stats_.caught_up = false;
      }
      session_token_.clear();  // handshake again after any failure
      if (!sleep(retry)) break;
      retry = std::min(retry * 2, options_.max_retry);
      poll = options_.min_poll;
      continue;
    }
    retry = options_.min_retry;
    {
      std::lock_guard lock(mu_);
      stats_.last_error.clear();
      stats_.caught_up = true;
    }
    if (*result == RoundResult::kApplied) long_poll_ok_ = true;
    if (options_.long_poll.count() > 0 && long_poll_ok_) {
      auto followed = follow();
      if (stopping()) break;
      if (!followed) {
        {
          std::lock_guard lock(mu_);
          ++stats_.errors;
          stats_.last_error = followed.error();
          stats_.caught_up = false;
        }
        session_token_.clear();
        long_poll_ok_ = true;
        if (!sleep(retry)) break;
        retry = std::min(retry * 2, options_.max_retry);
        poll = options_.min_poll;
        continue;
      }
      if (*followed == FollowResult::kRound) {
        if (session_token_.empty()) long_poll_ok_ = true;  // a new session, maybe a new primary
        continue;
      }
      long_poll_ok_ = false;  // kIgnored: poll this time
    }
    poll = *result == RoundResult::kApplied ? options_.min_poll
                                            : std::min(poll * 2, options_.max_poll);
    if (!sleep(poll)) break;
  }
}

Expected<void, std::string> Puller::hello() {
  auto answer = rpc_.call(kHelloMethod, encode_hello_request(HelloRequest{1}), headers(true));
  {
    std::lock_guard lock(mu_);
    ++stats_.hellos;
  }
  if (!answer) return unexpected("Hello: " + answer.error().describe());
  if (answer->size() != 1) return unexpected(std::string("Hello: expected one message"));
  auto decoded = decode_hello_response(answer->front());
  if (!decoded) return unexpected("Hello: " + decoded.error().message);
  if (decoded->log_id.empty() || decoded->session_token.empty()) {
    return unexpected(std::string("Hello: no log id or session token"));
  }
  session_token_ = decoded->session_token;
  primary_log_id_ = decoded->log_id;
  primary_frame_ = decoded->current_replication_index ? *decoded->current_replication_index + 1 : 0;
  std::lock_guard lock(mu_);
  stats_.primary_frame = primary_frame_;
  return {};
}

Expected<Puller::RoundResult, std::string> Puller::round() {
  if (auto h = hello(); !h) return unexpected(std::move(h.error()));
  RoundResult result = RoundResult::kIdle;

  // The replica must follow this log: an empty replica adopts it; one holding frames of another
  // log (the primary's log was recreated), of an unknown log, or frames the primary no longer
  // has (it went back in time) needs a snapshot.
  if (applied_ == 0 && log_id_ != primary_log_id_) {
    if (auto r = sink_.on_new_log_id(primary_log_id_); !r) {
      return unexpected("sink: " + r.error());
    }
    log_id_ = primary_log_id_;
    set_applied(0);
  } else if (applied_ > 0 && (log_id_ != primary_log_id_ || applied_ > primary_frame_)) {
    if (auto s = pull_snapshot(); !s) return unexpected(std::move(s.error()));
    result = RoundResult::kApplied;
  }

  int no_hellos = 0;
  while (applied_ < primary_frame_ && !stopping()) {
    const std::uint64_t next_offset = applied_;
    const auto requested = Clock::now();
    auto answer = call_batch(std::chrono::milliseconds(0));
    if (!answer) {
      if (is_status(answer.error(), kNeedSnapshotMessage)) {
        if (auto s = pull_snapshot(); !s) return unexpected(std::move(s.error()));
        result = RoundResult::kApplied;
        continue;
      }
      if (is_status(answer.error(), kNoHelloMessage) && ++no_hellos <= 2) {
        session_token_.clear();
        if (auto h = hello(); !h) return unexpected(std::move(h.error()));
        if (primary_log_id_ != log_id_) return result;  // the next round re-bootstraps
        continue;
      }
      return unexpected("BatchLogEntries: " + answer.error().describe());
    }
    if (answer->size() != 1)
      return unexpected(std::string("BatchLogEntries: expected one message"));
    auto frames = apply_batch(answer->front(), next_offset, requested);
    if (!frames) return unexpected(std::move(frames.error()));
    if (*frames == 0) break;  // caught up (the primary's log may have been cut back)
    if (applied_ != next_offset) result = RoundResult::kApplied;
  }
  return result;
}

Expected<Puller::FollowResult, std::string> Puller::follow() {
  const auto wait = options_.long_poll;
  while (!stopping()) {
    const std::uint64_t next_offset = applied_;
    const auto requested = Clock::now();
    auto answer = call_batch(wait);
    const auto answered = Clock::now();
    if (!answer) {
      if (is_status(answer.error(), kNoHelloMessage)) {
        session_token_.clear();  // a restarted primary, or a recreated log: Hello again
        return FollowResult::kRound;
      }
      if (is_status(answer.error(), kNeedSnapshotMessage)) return FollowResult::kRound;
      return unexpected("BatchLogEntries: " + answer.error().describe());
    }
    if (answer->size() != 1)
      return unexpected(std::string("BatchLogEntries: expected one message"));
    // The commit it brings was made after the call was sent, so the lag counts from its arrival.
    auto frames = apply_batch(answer->front(), next_offset, answered);
    if (!frames) return unexpected(std::move(frames.error()));
    if (*frames > 0) {
      // No Hello tells the primary's last frame now; it has at least what we applied.
      primary_frame_ = std::max(primary_frame_, applied_);
      std::lock_guard lock(mu_);
      stats_.primary_frame = primary_frame_;
      continue;
    }
    // Empty. After (most of) the wait: the primary waited and nothing came; ask again. Far
    // sooner: it did not wait (it ignores the header, had too many waiting, or the replica is
    // ahead of its log), so a tight loop of calls must not follow.
    if (answered - requested < wait / 4) return FollowResult::kIgnored;
  }
  return FollowResult::kRound;
}

Expected<std::vector<std::string>, RpcError> Puller::call_batch(std::chrono::milliseconds wait) {
  // libSQL's frame_no of our frame applied_+1 is applied_.
  RpcHeaders h = headers(true);
  if (!log_id_.empty()) h.emplace_back(std::string(kLogIdHeader), log_id_);
  if (wait.count() > 0) h.emplace_back(std::string(kWaitHeader), std::to_string(wait.count()));
  auto answer =
      rpc_.call(kBatchMethod, encode_log_offset(LogOffset{applied_, std::nullopt}), h, wait);
  std::lock_guard lock(mu_);
  ++stats_.batches;
  if (wait.count() > 0) ++stats_.long_polls;
  return answer;
}

Expected<std::size_t, std::string> Puller::apply_batch(const std::string& message,
                                                       std::uint64_t next_offset,
                                                       Clock::time_point since) {
  auto frames = decode_frames_ref(message);
  if (!frames) return unexpected("BatchLogEntries: " + frames.error().message);
  // Frames come in order from next_offset; every commit frame closes a transaction. A batch
  // should end on a commit frame; trailing frames of an unfinished transaction are dropped
  // and asked for again.
  std::uint64_t expect = next_offset;
  PendingTxn pending;
  for (const auto& f : *frames) {
    auto view = decode_frame_data(f.data);
    if (!view) return unexpected("BatchLogEntries: " + view.error().message);
    const FrameHeader& h = view->header;
    if (h.frame_no != expect) {
      return unexpected("BatchLogEntries: frame_no " + std::to_string(h.frame_no) + " where " +
                        std::to_string(expect) + " was expected");
    }
    if (h.page_no == 0) return unexpected(std::string("BatchLogEntries: page number 0"));
    ++expect;
    pending.add(h.page_no, view->page);
    if (!h.is_commit()) continue;
    log::Transaction& txn = pending.txn();
    txn.db_size = h.size_after;
    txn.commit_time_us = f.timestamp ? *f.timestamp * 1000 : wall_clock_us();
    const std::uint64_t commit_frame = h.frame_no + 1;
    if (auto r = sink_.apply(txn, commit_frame); !r) return unexpected("sink: " + r.error());
    const std::int64_t lag =
        f.timestamp
            ? wall_clock_us() - *f.timestamp * 1000
            : std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - since).count();
    {
      std::lock_guard lock(mu_);
      stats_.frames_applied += commit_frame - applied_;
      ++stats_.transactions_applied;
      stats_.last_lag_us = lag;
    }
    set_applied(commit_frame);
    pending.clear();
  }
  return frames->size();
}

Expected<void, std::string> Puller::pull_snapshot() {
  // Pages go to the sink as they arrive (a snapshot is as large as the database, so holding it
  // whole would bound what a replica can bootstrap by its memory). begin_snapshot needs the
  // database size first; quire sends the highest page first, so its number is the size. A
  // primary that sends another order shows it with a page above that number: the snapshot is
  // then asked for again and held whole before the sink sees it.
  struct State {
    std::uint64_t frame_no = 0;
    std::uint32_t db_size = 0;
    std::uint32_t commit_size = 0;  // size_after of the commit frame, once it came
    std::size_t pages = 0;
    std::vector<bool> seen;
    bool begun = false;
    bool other_order = false;
    std::string error;
  } st;
  auto on_message = [&](std::string_view message) -> bool {
    auto f = decode_frame_ref(message);
    if (!f) {
      st.error = "Snapshot: " + f.error().message;
      return false;
    }
    auto view = decode_frame_data(f->data);
    if (!view) {
      st.error = "Snapshot: " + view.error().message;
      return false;
    }
    const FrameHeader& h = view->header;
    if (!st.begun) {
      st.frame_no = h.frame_no;
      st.db_size = h.page_no;
      if (st.db_size == 0) {
        st.error = "Snapshot: page number 0";
        return false;
      }
      st.seen.assign(std::size_t{st.db_size} + 1, false);
      if (auto r = sink_.begin_snapshot(primary_log_id_, st.frame_no + 1, st.db_size); !r) {
        st.error = "sink: " + r.error();
        return false;
      }
      st.begun = true;
    }
    if (h.page_no > st.db_size) {
      st.other_order = true;
      return false;
    }
    // One frame_no, each page once, nothing after the commit frame.
    if (h.frame_no != st.frame_no || h.page_no == 0 || st.seen[h.page_no] || st.commit_size != 0) {
      st.error = "Snapshot: inconsistent frame " + std::to_string(st.pages);
      return false;
    }
    st.seen[h.page_no] = true;
    ++st.pages;
    if (h.is_commit()) st.commit_size = h.size_after;
    auto r = sink_.snapshot_page(
        h.page_no, std::span<const std::byte>(reinterpret_cast<const std::byte*>(view->page.data()),
                                              view->page.size()));
    if (!r) {
      st.error = "sink: " + r.error();
      return false;
    }
    return true;
  };
  auto answer =
      rpc_.call_streamed(kSnapshotMethod, encode_log_offset(LogOffset{applied_, std::nullopt}),
                         headers(true), on_message);
  auto fail = [&](std::string why) -> Expected<void, std::string> {
    if (st.begun) sink_.abort_snapshot();
    return unexpected(std::move(why));
  };
  if (!answer) {
    if (st.other_order) {
      sink_.abort_snapshot();
      return pull_snapshot_whole();
    }
    if (answer.error().kind == RpcError::Kind::kHandler) return fail(std::move(st.error));
    return fail("Snapshot: " + answer.error().describe());
  }
  if (!st.begun) return unexpected(std::string("Snapshot: no frames"));
  if (st.commit_size != st.db_size || st.pages != st.db_size) {
    return fail("Snapshot: " + std::to_string(st.pages) + " pages for a database of " +
                std::to_string(st.commit_size));
  }
  if (auto r = sink_.end_snapshot(); !r) return fail("sink: " + r.error());
  return snapshot_done(st.frame_no + 1);
}

Expected<void, std::string> Puller::pull_snapshot_whole() {
  auto answer = rpc_.call(kSnapshotMethod, encode_log_offset(LogOffset{applied_, std::nullopt}),
                          headers(true));
  if (!answer) return unexpected("Snapshot: " + answer.error().describe());
  // Check the whole stream before the sink sees any of it: one frame_no, every page
  // 1..db_size exactly once, the size on the last frame.
  std::vector<FrameView> pages;
  pages.reserve(answer->size());
  for (const auto& message : *answer) {
    auto f = decode_frame_ref(message);
    if (!f) return unexpected("Snapshot: " + f.error().message);
    auto view = decode_frame_data(f->data);
    if (!view) return unexpected("Snapshot: " + view.error().message);
    pages.push_back(view.value());
  }
  if (pages.empty()) return unexpected(std::string("Snapshot: no frames"));
  const std::uint64_t frame_no = pages.front().header.frame_no;
  const std::uint32_t db_size = pages.back().header.size_after;
  if (db_size == 0 || db_size != pages.size()) {
    return unexpected("Snapshot: " + std::to_string(pages.size()) + " pages for a database of " +
                      std::to_string(db_size));
  }
  std::vector<bool> seen(db_size + 1, false);
  for (std::size_t i = 0; i < pages.size(); ++i) {
    const FrameHeader& h = pages[i].header;
    if (h.frame_no != frame_no || h.page_no == 0 || h.page_no > db_size || seen[h.page_no] ||
        (i + 1 < pages.size() && h.is_commit())) {
      return unexpected("Snapshot: inconsistent frame " + std::to_string(i));
    }
    seen[h.page_no] = true;
  }

  if (auto r = sink_.begin_snapshot(primary_log_id_, frame_no + 1, db_size); !r) {
    return unexpected("sink: " + r.error());
  }
  for (const auto& p : pages) {
    auto r = sink_.snapshot_page(
        p.header.page_no, std::span<const std::byte>(
                              reinterpret_cast<const std::byte*>(p.page.data()), p.page.size()));
    if (!r) {
      sink_.abort_snapshot();
      return unexpected("sink: " + r.error());
    }
  }
  if (auto r = sink_.end_snapshot(); !r) {
    sink_.abort_snapshot();
    return unexpected("sink: " + r.error());
  }
  return snapshot_done(frame_no + 1);
}

Expected<void, std::string> Puller::snapshot_done(std::uint64_t frame) {
  log_id_ = primary_log_id_;
  {
    std::lock_guard lock(mu_);
    ++stats_.snapshots;
  }
  set_applied(frame);
  return {};
}

}  // namespace quire::replication
