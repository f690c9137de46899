#include "cli/backup_cmd.h"

#include <sqlite3.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backup/backup.h"
#include "backup/encryption.h"
#include "backup/ship.h"
#include "cli/namespace_log.h"
#include "cli/progress.h"
#include "cli/store_access.h"
#include "cli/units.h"
#include "common/rfc3339.h"
#include "log/log.h"
#include "storage/object_store.h"

namespace quire::cli {

namespace fs = std::filesystem;

namespace {

struct BackupOptions {
  std::string data = "data";
  std::string ns = "default";
  std::string url;
  std::string key_file;
  bool no_progress = false;
};

struct RestoreOptions {
  std::string url;
  std::string ns = "default";
  std::string timestamp;
  std::uint64_t frame = 0;
  std::string log_id;
  std::string out;
  bool force = false;
  bool verify = false;
  std::string key_file;
  bool allow_unencrypted = false;
  bool no_progress = false;
};

int run_backup(const BackupOptions& o) {
  auto opened = open_namespace_log(o.data, o.ns);
  if (!opened) {
    std::cerr << "quire backup: " << opened.error() << "\n";
    return kExitFailure;
  }
  auto& log = *opened.value();
  std::optional<backup::EncryptionKey> key;
  if (!o.key_file.empty()) {
    key = load_key("quire backup", o.key_file);
    if (!key) return kExitUsage;
  }
  auto store = open_store("quire backup", o.url);
  if (!store) return kExitFailure;
  backup::ShipOptions ship_options;
  ship_options.encryption_key = key ? &*key : nullptr;
  Progress progress("uploading snapshot", ProgressUnit::kPages, !o.no_progress);
  ship_options.snapshot_progress = progress.callback();
  auto shipped = backup::ship(log, *store, o.ns, ship_options);
  progress.finish();
  if (!shipped) {
    std::cerr << "quire backup: " << backup::to_string(shipped.error().kind) << ": "
              << shipped.error().message << "\n";
    return kExitFailure;
  }
  const auto& r = *shipped;
  std::cout << "namespace " << o.ns << ", log " << log::format_log_id(log.log_id()) << ", frames "
            << log.first_available_frame() << ".." << log.last_frame() << "\n";
  if (key) std::cout << "encrypting new objects with key id " << key->id_hex() << "\n";
  if (!r.uploaded_anything()) {
    std::cout << "up to date: the backup already holds frame " << r.store_frame_after
              << "; uploaded nothing\n";
    return kExitOk;
  }
  if (r.snapshot) {
    std::cout << "uploaded " << (r.periodic_snapshot ? "periodic " : "") << "snapshot "
              << r.snapshot->key << ": frame " << r.snapshot->frame << ", " << r.snapshot->db_size
              << " pages, " << format_size(r.snapshot->size) << "\n";
  }
  for (const auto& b : r.batches) {
    std::cout << "uploaded batch " << b.key << ": frames " << b.first_frame << ".." << b.last_frame
              << ", " << b.txns << " transactions, " << format_size(b.size) << "\n";
  }
  std::cout << "backup now holds frames up to " << r.store_frame_after << " (was "
            << r.store_frame_before << "): " << (r.snapshot ? 1 : 0) << " snapshot, "
            << r.batches.size() << " batches, " << r.txns << " transactions, "
            << format_size(r.bytes) << "\n";
  return kExitOk;
}

std::string integrity_check(const fs::path& path) {
  sqlite3* db = nullptr;
  std::string result;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    result = std::string("cannot open: ") + (db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return result;
  }
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr) != SQLITE_OK) {
    result = sqlite3_errmsg(db);
  } else {
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      if (!result.empty()) result += "\n";
      const auto* text = sqlite3_column_text(st, 0);
      result += text ? reinterpret_cast<const char*>(text) : "";
    }
    if (rc != SQLITE_DONE) result += (result.empty() ? "" : "\n") + std::string(sqlite3_errmsg(db));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return result;
}

int run_restore(const RestoreOptions& o) {
  backup::RestoreTarget target = backup::RestoreTarget::latest();
  if (!o.timestamp.empty()) {
    auto t = parse_rfc3339_us(o.timestamp);
    if (!t) {
      std::cerr << "quire restore: --timestamp must look like 2026-01-02T03:04:05Z or "
                   "2026-01-02T03:04:05.123+02:00, got '"
                << o.timestamp << "'\n";
      return kExitUsage;
    }
    target = backup::RestoreTarget::at_time(*t);
  } else if (o.frame > 0) {
    target = backup::RestoreTarget::at_frame(o.frame);
  }
  if (!o.log_id.empty()) {
    target.log_id = log::parse_log_id(o.log_id);
    if (!target.log_id) {
      std::cerr << "quire restore: --log-id must be a log id as `quire db backup` lists it (32 hex "
                   "digits, dashes allowed), got '"
                << o.log_id << "'\n";
      return kExitUsage;
    }
  }
  const fs::path out(o.out);
  std::error_code ec;
  if (fs::exists(fs::symlink_status(out, ec)) && !o.force) {
    std::cerr << "quire restore: " << out.string()
              << " already exists: give --force to overwrite it\n";
    return kExitFailure;
  }
  std::optional<backup::EncryptionKey> key;
  if (!o.key_file.empty()) {
    key = load_key("quire restore", o.key_file);
    if (!key) return kExitUsage;
  }
  auto store = open_store("quire restore", o.url);
  if (!store) return kExitFailure;
  if (o.force) {
    // A -wal or -shm left from the old file would be applied to the restored one.
    fs::remove(out.string() + "-wal", ec);
    fs::remove(out.string() + "-shm", ec);
  }
  auto reader = backup::BackupReader::open(*store, o.ns, key ? &*key : nullptr);
  if (!reader) {
    std::cerr << "quire restore: " << backup::to_string(reader.error().kind) << ": "
              << reader.error().message << "\n";
    return kExitFailure;
  }
  reader->allow_unencrypted = o.allow_unencrypted;
  Progress progress("restoring", ProgressUnit::kBytes, !o.no_progress);
  auto restored = reader->restore(target, out, progress.callback());
  progress.finish();
  if (!restored) {
    std::cerr << "quire restore: " << backup::to_string(restored.error().kind) << ": "
              << restored.error().message << "\n";
    if (restored.error().kind == backup::BackupErrc::kEncryption)
      std::cerr << "(give the key the backup was made with: --encryption-key-file FILE; add "
                   "--allow-unencrypted to also accept objects stored in clear)\n";
    return kExitFailure;
  }
  const auto& r = *restored;
  const std::uint64_t bytes = static_cast<std::uint64_t>(r.db_size) * log::kPageSize;
  std::cout << "restored " << out.string() << " from lineage " << log::format_log_id(r.log_id)
            << "\n"
            << "frame:       " << r.frame << "\n"
            << "commit time: " << (r.frame ? format_rfc3339_us(r.commit_time_us) : "-") << "\n"
            << "size:        " << r.db_size << " pages (" << format_size(bytes) << ")\n"
            << "from:        "
            << (r.snapshot_key.empty() ? "an empty database" : "snapshot " + r.snapshot_key) << ", "
            << r.batches_read << " batches, " << r.txns_applied << " transactions\n";
  if (o.verify) {
    const std::string check = integrity_check(out);
    if (check != "ok") {
      std::cerr << "quire restore: PRAGMA integrity_check on " << out.string() << " says:\n"
                << check << "\n";
      return kExitFailure;
    }
    std::cout << "integrity_check: ok\n";
  }
  return kExitOk;
}

}  // namespace

Command add_backup_command(CLI::App& parent) {
  auto o = std::make_shared<BackupOptions>();
  auto* cmd = parent.add_subcommand(
      "backup",
      "Upload what a namespace's replication log holds beyond the backup to an object store "
      "(stopped server)");
  cmd->add_option("--data", o->data, "The server's data directory")->capture_default_str();
  cmd->add_option("--backup-url", o->url, "file:///dir, a path, or s3://bucket[/prefix]")
      ->required();
  cmd->add_option("--namespace,-n", o->ns, "The namespace (also the prefix in the store)")
      ->capture_default_str();
  cmd->add_option("--encryption-key-file", o->key_file,
                  "Encrypt new snapshots and batches with AES-256-GCM under the key in FILE: 32 "
                  "raw bytes or 64 hex digits (openssl rand -hex 32 > FILE). Manifests stay "
                  "readable: frame numbers, sizes and commit times are not secret. Losing the "
                  "key loses the backup.")
      ->option_text("FILE");
  cmd->add_flag("--no-progress", o->no_progress,
                "Print no progress of a snapshot upload on stderr (a bar on a terminal, plain "
                "lines otherwise)");
  return Command{cmd, [o]() { return run_backup(*o); }};
}

Command add_restore_command(CLI::App& parent) {
  auto o = std::make_shared<RestoreOptions>();
  auto* cmd = parent.add_subcommand(
      "restore", "Write a namespace's database as of a point in time from its backup");
  cmd->add_option("--backup-url", o->url, "file:///dir, a path, or s3://bucket[/prefix]")
      ->required();
  cmd->add_option("--namespace,-n", o->ns, "The namespace (the prefix in the store)")
      ->capture_default_str();
  auto* ts = cmd->add_option("--timestamp", o->timestamp,
                             "Restore the last commit at or before this RFC 3339 time");
  auto* fr = cmd->add_option("--frame", o->frame, "Restore as of this commit frame")
                 ->check(CLI::PositiveNumber);
  ts->excludes(fr);
  cmd->add_option("--log-id", o->log_id,
                  "Restore from this lineage (a log id, as `quire db backup NS` lists them: the "
                  "one a restore in place replaced, say): its latest point, or --timestamp or "
                  "--frame within it. Default: the current lineage, or for --timestamp the one "
                  "that was current then")
      ->option_text("ID")
      ->check(non_empty());
  cmd->add_option("-o,--output", o->out, "The database file to write")->required();
  cmd->add_flag("--force", o->force, "Overwrite FILE if it exists");
  cmd->add_flag("--verify", o->verify,
                "Run PRAGMA integrity_check on the result; exit 1 unless it says ok");
  auto* key = cmd->add_option("--encryption-key-file", o->key_file,
                              "Decrypt with the key in FILE (32 raw bytes or 64 hex digits), "
                              "needed when the backup was made with --encryption-key-file; "
                              "objects in clear are then refused")
                  ->option_text("FILE");
  cmd->add_flag("--allow-unencrypted", o->allow_unencrypted,
                "With --encryption-key-file, also accept objects in clear (a backup made "
                "before encryption was turned on)")
      ->needs(key);
  cmd->add_flag("--no-progress", o->no_progress,
                "Print no progress on stderr (a bar on a terminal, plain lines otherwise)");
  return Command{cmd, [o]() { return run_restore(*o); }};
}

}  // namespace quire::cli
