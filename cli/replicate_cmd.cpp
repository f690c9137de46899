#include "cli/replicate_cmd.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "backup/encryption.h"
#include "cli/store_access.h"
#include "cli/units.h"
#include "sidecar/sidecar.h"
#include "sidecar/wal_pin.h"
#include "storage/object_store.h"

namespace quire::cli {

namespace {

struct ReplicateOptions {
  std::string db;
  std::string url;
  std::string backup_url;
  std::string prefix;
  std::string state_dir;
  double interval_s = 1;
  double capture_interval_s = 0.1;
  std::uint32_t checkpoint_frames = 1000;
  double shutdown_timeout_s = 30;
  bool enable_wal = false;
  std::string retention = "30d";
  std::string key_file;
  std::string log_level = "info";
};

std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
}

int run_replicate(const ReplicateOptions& o) {
  if (o.url.empty() == o.backup_url.empty()) {
    std::cerr << "quire replicate: give the store's URL once: `quire replicate DB URL` (or "
                 "--backup-url URL)\n";
    return kExitUsage;
  }
  if (o.interval_s <= 0 || o.capture_interval_s <= 0 || o.shutdown_timeout_s < 0) {
    std::cerr << "quire replicate: intervals must be positive\n";
    return kExitUsage;
  }
  const std::string url = o.url.empty() ? o.backup_url : o.url;
  const auto retention = parse_duration_setting(o.retention);
  if (!retention) {
    std::cerr << "quire replicate: --retention: expected a duration such as 30d, 12h, 90m or 0, "
                 "got '"
              << o.retention << "'\n";
    return kExitUsage;
  }
  std::optional<backup::EncryptionKey> key;
  if (!o.key_file.empty()) {
    key = load_key("quire replicate", o.key_file);
    if (!key) return kExitUsage;
  }
  spdlog::set_level(spdlog::level::from_str(o.log_level));

  if (o.enable_wal) {
    auto header = sidecar::read_database_header(o.db);
    if (!header) {
      std::cerr << "quire replicate: " << header.error() << "\n";
      return kExitFailure;
    }
    if (!header->wal) {
      if (auto r = sidecar::enable_wal(o.db); !r) {
        std::cerr << "quire replicate: " << r.error() << "\n";
        return kExitFailure;
      }
      spdlog::info("switched {} to journal_mode=WAL", o.db);
    }
  }

  auto store = open_store("quire replicate", url);
  if (!store) return kExitFailure;

  sidecar::SidecarOptions options;
  options.db_path = o.db;
  options.state_dir = o.state_dir;
  options.prefix = o.prefix;
  options.ship_interval = ms(o.interval_s);
  options.capture_interval = ms(o.capture_interval_s);
  options.checkpoint_frames = o.checkpoint_frames;
  options.shutdown_timeout = ms(o.shutdown_timeout_s);
  options.retention = *retention;
  options.encryption_key = key;

  // Block the stop signals before any thread starts, so only the waiter below receives them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto opened = sidecar::Sidecar::open(options, *store);
  if (!opened) {
    std::cerr << "quire replicate: " << opened.error() << "\n";
    return kExitFailure;
  }
  auto& sc = *opened.value();
  const std::string prefix =
      o.prefix.empty() ? std::filesystem::path(o.db).filename().string() : o.prefix;
  spdlog::info(
      "replicating {} to {} under prefix '{}' every {} s (state in {}); restore with "
      "`quire restore --backup-url {} -n {} -o FILE`",
      o.db, store->describe(), prefix, o.interval_s, sc.state_dir().string(), url, prefix);

  std::thread signals([&sc, set] {
    int sig = 0;
    sigwait(&set, &sig);
    spdlog::info("received {}: capturing and shipping what is left, then exiting",
                 sig == SIGINT ? "SIGINT" : "SIGTERM");
    sc.stop();
  });
  auto done = sc.run();
  pthread_kill(signals.native_handle(), SIGTERM);  // wakes the waiter when run() ended alone
  signals.join();
  if (!done) {
    std::cerr << "quire replicate: " << done.error() << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace

Command add_replicate_command(CLI::App& parent) {
  auto o = std::make_shared<ReplicateOptions>();
  auto* cmd = parent.add_subcommand(
      "replicate",
      "Sidecar mode: continuously back up a database that another program writes with plain "
      "SQLite (WAL mode) to an object store; `quire restore` brings it back");
  cmd->add_option("db", o->db, "The application's SQLite database file (WAL mode)")->required();
  cmd->add_option("url", o->url, "The store: file:///dir, a path, or s3://bucket[/prefix]");
  cmd->add_option("--backup-url", o->backup_url, "The store, as for `quire restore`");
  cmd->add_option("--prefix,-n", o->prefix,
                  "The backup's name in the store, for `quire restore -n NAME` (default: the "
                  "database file's name, e.g. app.db)");
  cmd->add_option("--state-dir", o->state_dir,
                  "The sidecar's own log and state (default: DB-quire beside the database)");
  cmd->add_option("--interval", o->interval_s,
                  "Seconds between shipments to the store: what a lost machine can lose")
      ->capture_default_str();
  cmd->add_option("--capture-interval", o->capture_interval_s,
                  "Seconds between reads of the WAL into the local log; commit times (and so "
                  "point-in-time restore) are this precise")
      ->capture_default_str();
  cmd->add_option("--checkpoint-frames", o->checkpoint_frames,
                  "Checkpoint once the WAL holds this many frames (0: never). The sidecar's read "
                  "transaction keeps the application's own checkpoints from restarting the WAL")
      ->capture_default_str();
  cmd->add_option("--shutdown-timeout", o->shutdown_timeout_s,
                  "Seconds to keep retrying the store at SIGINT/SIGTERM before exiting 1")
      ->capture_default_str();
  cmd->add_option("--retention", o->retention,
                  "Point-in-time history to keep in the store, e.g. 30d, 12h, 90m (0: keep "
                  "everything)")
      ->capture_default_str();
  cmd->add_option("--encryption-key-file", o->key_file,
                  "Encrypt snapshots and batches with AES-256-GCM under the key in FILE (32 raw "
                  "bytes or 64 hex digits: openssl rand -hex 32 > FILE); restore needs the same "
                  "--encryption-key-file. Losing the key loses the backup.")
      ->option_text("FILE");
  cmd->add_flag("--enable-wal", o->enable_wal,
                "Switch the database to journal_mode=WAL first if it is not (needs no other "
                "connection open)");
  cmd->add_option("--log-level", o->log_level, "trace, debug, info, warn, error, critical, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();
  cmd->footer(
      "Example:\n"
      "  quire replicate app.db s3://bucket/backups      # runs until SIGINT/SIGTERM\n"
      "  quire restore --backup-url s3://bucket/backups -n app.db -o app.db\n"
      "\n"
      "How it works: the sidecar keeps a read transaction open on the database (so SQLite\n"
      "cannot restart the WAL past frames it has not read), reads newly committed transactions\n"
      "out of the -wal file into its own replication log in the state directory, and ships\n"
      "that log to the store every --interval. It runs the checkpoints itself: the application\n"
      "must set a busy timeout (PRAGMA busy_timeout=5000), since the sidecar's checkpoint takes\n"
      "the write lock for a moment. S3 credentials come from AWS_* (docs/object-stores.md).\n"
      "\n"
      "Guarantees (docs/sidecar.md compares them with `quire serve`):\n"
      "  * Only committed transactions are backed up, whole, in commit order.\n"
      "  * Asynchronous: a commit is in the store within about --interval (plus upload time);\n"
      "    losing the machine loses at most that. No commit waits for the backup.\n"
      "  * Point-in-time restore by capture time: a timestamp restores the last capture at or\n"
      "    before it (within --capture-interval of the real commit).\n"
      "  * Stopping or crashing the sidecar loses nothing it captured; on restart it resumes\n"
      "    with no gap or duplicate if the WAL continued meanwhile. If the WAL was restarted,\n"
      "    truncated or deleted while it was down (the application checkpointed or closed),\n"
      "    it cannot prove continuity and starts a new lineage from a full snapshot.\n"
      "  * While the store is down it keeps capturing locally and catches up later.");
  return Command{cmd, [o]() { return run_replicate(*o); }};
}

}  // namespace quire::cli
