#include "cli/replica_cmd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "replication/puller.h"
#include "replication/replica_sink.h"

namespace quire::cli {

namespace {

struct PullOptions {
  std::string primary_url;
  std::string ns;
  std::string token;
  std::string out;
  double timeout_s = 60;
};

// Pages straight into one file: page p at (p-1)*4096, cut to the database size at each commit.
class FileSink final : public replication::ReplicaSink {
 public:
  explicit FileSink(int fd) : fd_(fd) {}

  replication::ReplicaPosition position() override { return {log_id_, frame_}; }
  Expected<void, std::string> on_new_log_id(const std::string& log_id) override {
    log_id_ = log_id;
    return {};
  }
  Expected<void, std::string> apply(const log::Transaction& txn,
                                    std::uint64_t commit_frame) override {
    for (std::size_t i = 0; i < txn.page_count(); ++i) {
      if (auto w = write_page(txn.pgnos[i], txn.page(i)); !w) return w;
    }
    if (auto t = resize(txn.db_size); !t) return t;
    frame_ = commit_frame;
    bytes_ += txn.page_count() * log::kPageSize;
    return {};
  }
  Expected<void, std::string> begin_snapshot(const std::string& log_id, std::uint64_t frame,
                                             std::uint32_t db_size) override {
    pending_log_id_ = log_id;
    pending_frame_ = frame;
    pending_size_ = db_size;
    return resize(0);
  }
  Expected<void, std::string> snapshot_page(std::uint32_t pgno,
                                            std::span<const std::byte> page) override {
    bytes_ += page.size();
    return write_page(pgno, page);
  }
  Expected<void, std::string> end_snapshot() override {
    if (auto t = resize(pending_size_); !t) return t;
    log_id_ = pending_log_id_;
    frame_ = pending_frame_;
    return {};
  }
  void abort_snapshot() override { frame_ = 0; }

  std::uint64_t bytes() const { return bytes_; }

 private:
  Expected<void, std::string> write_page(std::uint32_t pgno, std::span<const std::byte> page) {
    const off_t at = static_cast<off_t>(pgno - 1) * static_cast<off_t>(log::kPageSize);
    std::size_t done = 0;
    while (done < page.size()) {
      const ssize_t n =
          ::pwrite(fd_, page.data() + done, page.size() - done, at + static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return unexpected(std::string("write: ") + std::strerror(errno));
      done += static_cast<std::size_t>(n);
    }
    return {};
  }
  Expected<void, std::string> resize(std::uint32_t pages) {
    if (::ftruncate(fd_, static_cast<off_t>(pages) * static_cast<off_t>(log::kPageSize)) != 0) {
      return unexpected(std::string("truncate: ") + std::strerror(errno));
    }
    return {};
  }

  const int fd_;
  std::string log_id_;
  std::uint64_t frame_ = 0;
  std::string pending_log_id_;
  std::uint64_t pending_frame_ = 0;
  std::uint32_t pending_size_ = 0;
  std::uint64_t bytes_ = 0;
};

int run_pull(const PullOptions& o) {
  const std::string tmp = o.out + ".tmp";
  const int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::cerr << "quire replica pull: cannot create " << tmp << ": " << std::strerror(errno)
              << "\n";
    return kExitFailure;
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  FileSink sink(fd);
  replication::PullerOptions options;
  options.primary_url = o.primary_url;
  options.namespace_name = o.ns;
  options.auth_token = o.token;
  auto puller = replication::Puller::create(options, sink);
  if (!puller) {
    std::cerr << "quire replica pull: " << puller.error() << "\n";
    ::unlink(tmp.c_str());
    return kExitUsage;
  }
  const auto started = std::chrono::steady_clock::now();
  const auto deadline =
      started + std::chrono::milliseconds(static_cast<long long>(o.timeout_s * 1000));
  (*puller)->start();
  replication::PullerStats stats;
  while (true) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    stats = (*puller)->stats();
    if (stats.caught_up && stats.primary_frame > 0 && stats.applied_frame >= stats.primary_frame)
      break;
    if (std::chrono::steady_clock::now() >= deadline) {
      (*puller)->stop();
      std::cerr << "quire replica pull: not caught up after " << o.timeout_s << " s (frame "
                << stats.applied_frame << " of " << stats.primary_frame << ")"
                << (stats.last_error.empty() ? "" : ": " + stats.last_error) << "\n";
      ::unlink(tmp.c_str());
      return kExitFailure;
    }
  }
  (*puller)->stop();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (::fdatasync(fd) != 0 || ::rename(tmp.c_str(), o.out.c_str()) != 0) {
    std::cerr << "quire replica pull: cannot finish " << o.out << ": " << std::strerror(errno)
              << "\n";
    return kExitFailure;
  }
  const double mib = static_cast<double>(sink.bytes()) / (1024.0 * 1024.0);
  std::printf(
      "%s: frame %llu of log %s; %.1f MiB of pages in %.2f s (%.1f MiB/s), %llu transactions, %llu "
      "snapshots\n",
      o.out.c_str(), static_cast<unsigned long long>(stats.applied_frame), stats.log_id.c_str(),
      mib, seconds, seconds > 0 ? mib / seconds : 0.0,
      static_cast<unsigned long long>(stats.transactions_applied),
      static_cast<unsigned long long>(stats.snapshots));
  return kExitOk;
}

}  // namespace

Command add_replica_command(CLI::App& parent) {
  auto options = std::make_shared<PullOptions>();
  auto* cmd = parent.add_subcommand("replica",
                                    "Replicate from a primary over libSQL's replication protocol");
  cmd->require_subcommand(1);
  auto* pull =
      cmd->add_subcommand("pull", "Copy a primary's database into a file, as a replica bootstraps");
  pull->add_option("--primary-url", options->primary_url, "The primary, http://HOST:PORT")
      ->required();
  pull->add_option("--namespace,-n", options->ns, "The namespace (default: the primary's default)");
  pull->add_option("--auth-token", options->token, "A JWT for the primary (also QUIRE_AUTH_TOKEN)");
  pull->add_option("-o,--output", options->out, "The database file to write")->required();
  pull->add_option("--timeout", options->timeout_s, "Seconds to wait for the copy to catch up")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  return Command{cmd, [options, pull]() -> int {
                   if (!pull->parsed()) return kExitUsage;
                   if (options->token.empty()) {
                     if (const char* env = std::getenv("QUIRE_AUTH_TOKEN")) options->token = env;
                   }
                   return run_pull(*options);
                 }};
}

}  // namespace quire::cli
