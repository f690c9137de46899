#include "replication/primary_replicas.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/base64.h"
#include "common/thread_name.h"
#include "log/snapshot.h"
#include "protocol/replication/codec.h"
#include "protocol/replication/grpc_web.h"
#include "replica/replica_database.h"

namespace quire::replication {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// Folding rewrites the overlay file and syncs the base file, and holds up applies while it
// runs, so it happens in batches: when this many versions are waiting, or when applies have
// been quiet for a moment. Reads walk the versions not yet folded, so the chain stays short.
constexpr std::size_t kFoldVersions = 64;
constexpr auto kFoldQuiet = std::chrono::milliseconds(50);
constexpr auto kFoldTick = std::chrono::milliseconds(20);

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

Expected<void, std::string> write_small_file(const fs::path& path, const std::string& text) {
  const std::string tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return unexpected(errno_text("cannot create " + tmp));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fdatasync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  errno = saved;
  if (!ok) return unexpected(errno_text("cannot write " + tmp));
  if (::rename(tmp.c_str(), path.c_str()) != 0) return unexpected(errno_text("cannot rename " + tmp));
  return {};
}

std::string read_small_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The puller's sink over a ReplicaDatabase. Snapshots are spooled to a file beside the database
// (a snapshot can be as large as the database) and then swapped in by reset_from_snapshot.
class ReplicaDatabaseSink final : public ReplicaSink {
 public:
  ReplicaDatabaseSink(replica::ReplicaDatabase& db, fs::path dir)
      : db_(db),
        log_id_file_(dir / "primary-log-id"),
        spool_(dir / "snapshot.spool"),
        log_id_(read_small_file(log_id_file_)) {
    std::error_code ec;
    fs::remove(spool_, ec);
  }
  ~ReplicaDatabaseSink() override { abort_snapshot(); }

  ReplicaPosition position() override {
    // Frames without the id of the log they came from (the id file lost) cannot be trusted to
    // continue it: the puller sees an empty id and takes a snapshot.
    return {log_id_, db_.applied_frame()};
  }

  Expected<void, std::string> on_new_log_id(const std::string& log_id) override {
    if (auto w = write_small_file(log_id_file_, log_id); !w) return w;
    log_id_ = log_id;
    return {};
  }

  Expected<void, std::string> apply(const log::Transaction& txn,
                                    std::uint64_t commit_frame) override {
    auto r = db_.apply(txn, commit_frame);
    if (r) last_apply_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    return r;
  }

  Expected<void, std::string> begin_snapshot(const std::string& log_id, std::uint64_t frame,
                                             std::uint32_t db_size) override {
    abort_snapshot();
    spool_fd_ = ::open(spool_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (spool_fd_ < 0) return unexpected(errno_text("cannot create " + spool_.string()));
    pending_log_id_ = log_id;
    pending_frame_ = frame;
    pending_size_ = db_size;
    return {};
  }

  Expected<void, std::string> snapshot_page(std::uint32_t pgno,
                                            std::span<const std::byte> page) override {
    const off_t at = static_cast<off_t>(pgno - 1) * static_cast<off_t>(log::kPageSize);
    std::size_t done = 0;
    while (done < page.size()) {
      const ssize_t n = ::pwrite(spool_fd_, page.data() + done, page.size() - done,
                                 at + static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return unexpected(errno_text("cannot write " + spool_.string()));
      done += static_cast<std::size_t>(n);
    }
    return {};
  }

  Expected<void, std::string> end_snapshot() override {
    if (::ftruncate(spool_fd_, static_cast<off_t>(pending_size_) * log::kPageSize) != 0) {
      return unexpected(errno_text("cannot size " + spool_.string()));
    }
    auto source = log::FilePageSource::open(spool_);
    if (!source) return unexpected("cannot read " + spool_.string() + ": " + source.error().message);
    // The new log id is recorded only once the snapshot is in: a crash in between leaves the
    // old id with the new frames, which the puller answers with another snapshot.
    if (auto r = db_.reset_from_snapshot(*source, pending_frame_); !r) return r;
    if (auto w = on_new_log_id(pending_log_id_); !w) return w;
    abort_snapshot();
    spdlog::info("{}: installed the primary's snapshot at frame {} ({} pages)",
                 db_.path().string(), pending_frame_, pending_size_);
    return {};
  }

  void abort_snapshot() override {
    if (spool_fd_ >= 0) {
      ::close(spool_fd_);
      spool_fd_ = -1;
    }
    std::error_code ec;
    fs::remove(spool_, ec);
  }

  Clock::time_point last_apply() const {
    return Clock::time_point(Clock::duration(last_apply_.load(std::memory_order_relaxed)));
  }

 private:
  replica::ReplicaDatabase& db_;
  const fs::path log_id_file_;
  const fs::path spool_;
  std::string log_id_;
  int spool_fd_ = -1;
  std::string pending_log_id_;
  std::uint64_t pending_frame_ = 0;
  std::uint32_t pending_size_ = 0;
  std::atomic<Clock::rep> last_apply_{0};
};

}  // namespace

// One namespace being followed. Members are destroyed bottom-up: the folder and the puller stop
// before the sink and the overlay they use go away.
struct PrimaryReplicas::Follower {
  std::string name;
  std::unique_ptr<replica::ReplicaDatabase> db;
  std::unique_ptr<ReplicaDatabaseSink> sink;
  std::unique_ptr<Puller> puller;
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;  // guarded by mu
  std::atomic<std::uint64_t> folds{0};
  std::thread folder;

  void fold_loop() {
    std::unique_lock lock(mu);
    while (!stopping) {
      cv.wait_for(lock, kFoldTick, [&] { return stopping; });
      if (stopping) break;
      const auto versions = db->stats().overlay_versions;
      if (versions == 0) continue;
      if (versions < kFoldVersions && Clock::now() - sink->last_apply() < kFoldQuiet) continue;
      lock.unlock();
      if (auto r = db->checkpoint(); !r) {
        spdlog::warn("replica of '{}': folding the overlay failed: {}", name, r.error());
      } else if (*r > 0) {
        folds.fetch_add(1, std::memory_order_relaxed);
      }
      lock.lock();
    }
  }

  void stop() {
    {
      std::lock_guard lock(mu);
      stopping = true;
    }
    cv.notify_all();
    if (folder.joinable()) folder.join();
    if (puller) puller->stop();
  }

  ~Follower() { stop(); }
};

Expected<std::shared_ptr<PrimaryReplicas>, std::string> PrimaryReplicas::create(
    ReplicaServeOptions o) {
  auto endpoint = parse_primary_url(o.primary_url);
  if (!endpoint) return unexpected(std::move(endpoint.error()));
  return std::shared_ptr<PrimaryReplicas>(new PrimaryReplicas(std::move(o), *endpoint));
}

PrimaryReplicas::PrimaryReplicas(ReplicaServeOptions options, RpcEndpoint endpoint)
    : options_(std::move(options)),
      endpoint_(endpoint),
      forwarder_(std::move(endpoint), options_.forwarder) {}

PrimaryReplicas::~PrimaryReplicas() = default;

std::string PrimaryReplicas::describe() const {
  return "a read replica of " + options_.primary_url;
}

Expected<bool, std::string> PrimaryReplicas::primary_has(const std::string& name) {
  RpcOptions rpc = options_.puller.rpc;
  rpc.call_timeout = std::chrono::milliseconds(5000);
  RpcClient client(endpoint_, rpc);
  RpcHeaders headers;
  headers.emplace_back("x-namespace", name);
  headers.emplace_back(std::string(kNamespaceHeader), base64::encode(name));
  if (!options_.auth_token.empty()) {
    headers.emplace_back(std::string(kAuthorizationHeader), "Bearer " + options_.auth_token);
  }
  auto answer = client.call("wal_log.ReplicationLog/Hello", encode_hello_request(HelloRequest{1}),
                            headers);
  if (answer) return true;
  const RpcError& e = answer.error();
  if (e.kind == RpcError::Kind::kStatus &&
      e.message.find(kNamespaceDoesntExistMessage) != std::string::npos) {
    return false;
  }
  spdlog::warn("cannot ask the primary whether namespace '{}' exists: {}", name, e.describe());
  return unexpected("the primary " + options_.primary_url + " cannot say: " + e.describe());
}

Expected<std::shared_ptr<engine::Database>, std::string> PrimaryReplicas::open(
    const std::string& name, const std::string& path, engine::DatabaseOptions options) {
  auto follower = std::make_shared<Follower>();
  follower->name = name;
  replica::ReplicaOptions ro;
  ro.sync = options_.sync;
  auto db = replica::ReplicaDatabase::open(path, ro);
  if (!db) return unexpected(std::move(db.error()));
  follower->db = std::move(db.value());
  follower->sink =
      std::make_unique<ReplicaDatabaseSink>(*follower->db, fs::path(path).parent_path());
  PullerOptions po = options_.puller;
  po.primary_url = options_.primary_url;
  po.namespace_name = name;
  po.auth_token = options_.auth_token;
  auto puller = Puller::create(po, *follower->sink);
  if (!puller) return unexpected(std::move(puller.error()));
  follower->puller = std::move(puller.value());

  const bool fresh = follower->sink->position().frame == 0;
  follower->puller->start();
  follower->folder = std::thread([f = follower.get()] {
    name_this_thread("quire-fold");
    f->fold_loop();
  });
  // Serve what the primary has, not what this replica had when it last closed: wait for the
  // first round to finish (bounded: a replica whose primary is down still serves its copy).
  const auto deadline =
      Clock::now() + (fresh ? options_.bootstrap_timeout : options_.reopen_catch_up);
  while (Clock::now() < deadline) {
    const auto s = follower->puller->stats();
    if (s.caught_up || (!fresh && !s.last_error.empty())) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const auto s = follower->puller->stats();
  if (fresh && s.applied_frame == 0) {
    return unexpected("no copy of the primary's database yet" +
                      (s.last_error.empty() ? std::string() : " (" + s.last_error + ")"));
  }
  if (!s.caught_up) {
    spdlog::warn("replica of '{}' serves frame {} while the primary is at {}: {}", name,
                 s.applied_frame, s.primary_frame,
                 s.last_error.empty() ? "still catching up" : s.last_error);
  }

  options.replica_vfs = follower->db->vfs_name();
  Follower* raw = follower.get();
  options.stop_replica = [raw] { raw->stop(); };
  options.replica_keepalive = follower;
  auto database = engine::Database::open(follower->db->path().string(), std::move(options));
  if (!database) return unexpected("cannot open the replica database: " + database.error().message);
  {
    std::lock_guard lock(mu_);
    followers_[name] = follower;
  }
  return database.value();
}

Expected<void, std::string> PrimaryReplicas::wait_for_frame(const std::string& name,
                                                            std::uint64_t frame,
                                                            Clock::time_point deadline) {
  std::shared_ptr<Follower> f;
  {
    std::lock_guard lock(mu_);
    if (auto it = followers_.find(name); it != followers_.end()) f = it->second.lock();
  }
  if (!f) return {};
  return f->puller->wait_until_frame(frame, deadline);
}

std::optional<ReplicaNamespaceStatus> PrimaryReplicas::status(const std::string& name) {
  std::shared_ptr<Follower> f;
  {
    std::lock_guard lock(mu_);
    if (auto it = followers_.find(name); it != followers_.end()) f = it->second.lock();
  }
  if (!f) return std::nullopt;
  ReplicaNamespaceStatus s;
  s.puller = f->puller->stats();
  s.overlay_versions = f->db->stats().overlay_versions;
  s.folds = f->folds.load(std::memory_order_relaxed);
  return s;
}

}  // namespace quire::replication
