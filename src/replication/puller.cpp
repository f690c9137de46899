#include "replication/puller.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "common/base64.h"
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
  thread_ = std::thread([this] { run(); });
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

  PendingTxn pending;
  int no_hellos = 0;
  while (applied_ < primary_frame_ && !stopping()) {
    // libSQL's frame_no of our frame applied_+1 is applied_.
    const std::uint64_t next_offset = applied_;
    const auto requested = Clock::now();
    auto answer = rpc_.call(kBatchMethod, encode_log_offset(LogOffset{next_offset, std::nullopt}),
                            headers(true));
    {
      std::lock_guard lock(mu_);
      ++stats_.batches;
    }
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
    auto frames = decode_frames(answer->front());
    if (!frames) return unexpected("BatchLogEntries: " + frames.error().message);
    if (frames->frames.empty()) break;  // caught up (the primary's log may have been cut back)

    // Frames come in order from next_offset; every commit frame closes a transaction. A batch
    // should end on a commit frame; trailing frames of an unfinished transaction are dropped
    // and asked for again.
    std::uint64_t expect = next_offset;
    pending.clear();
    for (const auto& f : frames->frames) {
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
              : std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - requested)
                    .count();
      {
        std::lock_guard lock(mu_);
        stats_.frames_applied += commit_frame - applied_;
        ++stats_.transactions_applied;
        stats_.last_lag_us = lag;
      }
      set_applied(commit_frame);
      result = RoundResult::kApplied;
      pending.clear();
    }
  }
  return result;
}

Expected<void, std::string> Puller::pull_snapshot() {
  auto answer = rpc_.call(kSnapshotMethod, encode_log_offset(LogOffset{applied_, std::nullopt}),
                          headers(true));
  if (!answer) return unexpected("Snapshot: " + answer.error().describe());
  // Check the whole stream before the sink sees any of it: one frame_no, every page
  // 1..db_size exactly once, the size on the last frame.
  std::vector<FrameView> pages;
  std::vector<Frame> decoded;
  decoded.reserve(answer->size());
  for (const auto& message : *answer) {
    auto f = decode_frame(message);
    if (!f) return unexpected("Snapshot: " + f.error().message);
    decoded.push_back(std::move(f.value()));
  }
  if (decoded.empty()) return unexpected(std::string("Snapshot: no frames"));
  pages.reserve(decoded.size());
  for (const auto& f : decoded) {
    auto view = decode_frame_data(f.data);
    if (!view) return unexpected("Snapshot: " + view.error().message);
    pages.push_back(view.value());
  }
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

  const std::uint64_t frame = frame_no + 1;
  if (auto r = sink_.begin_snapshot(primary_log_id_, frame, db_size); !r) {
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
  log_id_ = primary_log_id_;
  {
    std::lock_guard lock(mu_);
    ++stats_.snapshots;
  }
  set_applied(frame);
  return {};
}

}  // namespace quire::replication
