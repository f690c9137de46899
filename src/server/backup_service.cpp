#include "server/backup_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "common/rfc3339.h"
#include "common/thread_name.h"
#include "engine/namespace_store.h"
#include "log/log.h"

namespace quire::server {

using Clock = std::chrono::steady_clock;

struct BackupService::Namespace {
  std::mutex ship_mu;                            // one ship of this namespace at a time
  std::unique_ptr<backup::BackupWriter> writer;  // guarded by ship_mu
  Clock::time_point last_retention{};            // guarded by ship_mu
  // The settings known to be in the store (their JSON); nullopt: not known since the start.
  std::optional<std::string> config_in_store;  // guarded by ship_mu

  // Guarded by the service's mu_.
  bool pending = false;            // commits (or a start-up check) not yet shipped
  Clock::time_point pending_since{};
  Clock::time_point retry_at{};    // after a failure
  std::uint64_t consecutive_failures = 0;
  std::uint64_t waiters = 0;       // commit hooks waiting under sync
  NamespaceBackupStatus status;
};

namespace {

std::int64_t unix_now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::chrono::milliseconds backoff(std::uint64_t failures) {
  const std::uint64_t shift = std::min<std::uint64_t>(failures > 0 ? failures - 1 : 0, 5);
  return std::min(std::chrono::milliseconds(1000LL << shift), std::chrono::milliseconds(30000));
}

}  // namespace

Expected<std::unique_ptr<BackupService>, std::string> BackupService::create(
    BackupServiceOptions options) {
  if (options.interval < std::chrono::milliseconds(0)) {
    return unexpected(std::string("the backup interval must not be negative"));
  }
  auto store = storage::open_object_store(options.url);
  if (!store) {
    return unexpected("cannot open the object store " + options.url + ": " +
                      store.error().message);
  }
  return std::unique_ptr<BackupService>(
      new BackupService(std::move(options), std::move(store.value())));
}

BackupService::~BackupService() { stop(std::chrono::milliseconds(0)); }

std::shared_ptr<BackupService::Namespace> BackupService::state(const std::string& ns) {
  auto& slot = namespaces_state_[ns];
  if (!slot) slot = std::make_shared<Namespace>();
  return slot;
}

std::function<bool(std::uint64_t)> BackupService::observer(const std::string& ns) {
  std::shared_ptr<Namespace> st;
  {
    std::lock_guard lock(mu_);
    st = state(ns);
  }
  return [this, st](std::uint64_t frame) -> bool {
    std::unique_lock lock(mu_);
    st->status.committed_frame = std::max(st->status.committed_frame, frame);
    const bool was_pending = st->pending;
    if (!st->pending) {
      st->pending = true;
      st->pending_since = Clock::now();
    }
    if (!options_.sync) return true;
    // Acknowledged only once in the store: ship now (commits arriving meanwhile go up together
    // in the next round).
    ++st->waiters;
    if (!was_pending || st->waiters == 1) wake_.notify_one();
    shipped_.wait(lock, [&] {
      return st->status.shipped_frame >= frame || waiters_released_ || stopping_;
    });
    --st->waiters;
    return st->status.shipped_frame >= frame;
  };
}

void BackupService::start(engine::NamespaceStore& store) {
  namespaces_ = &store;
  {
    std::lock_guard lock(mu_);
    // Every namespace is checked once: commits made while the server was down (or not yet
    // shipped when it was killed) go up now.
    for (const auto& info : store.list()) {
      auto st = state(info.name);
      if (!st->pending) {
        st->pending = true;
        st->pending_since = Clock::time_point{};
      }
    }
  }
  thread_ = std::thread([this] {
    name_this_thread("quire-backup");
    run();
  });
}

void BackupService::release_waiters(std::chrono::milliseconds after) {
  {
    std::lock_guard lock(mu_);
    if (after.count() > 0 && thread_.joinable()) {
      release_at_ = Clock::now() + after;  // the shipping thread releases them then
      wake_.notify_one();
      return;
    }
    waiters_released_ = true;
  }
  shipped_.notify_all();
}

void BackupService::stop(std::chrono::milliseconds grace) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
  }
  if (thread_.joinable() && grace.count() > 0) {
    // A last round for whatever is pending (the databases are still open).
    const auto deadline = Clock::now() + grace;
    std::vector<std::pair<std::string, std::shared_ptr<Namespace>>> pending;
    {
      std::lock_guard lock(mu_);
      for (auto& [name, st] : namespaces_state_) {
        if (st->pending) pending.emplace_back(name, st);
      }
    }
    for (auto& [name, st] : pending) {
      if (Clock::now() > deadline) {
        spdlog::warn("backup: stopping before namespace '{}' was shipped (the next start ships it)",
                     name);
        continue;
      }
      std::lock_guard ship_lock(st->ship_mu);
      (void)ship(name, *st);
    }
    // Batches since the last manifest write are found by readers through the tail; writing the
    // manifest now spares them those GETs.
    std::vector<std::shared_ptr<Namespace>> all;
    {
      std::lock_guard lock(mu_);
      for (auto& [name, st] : namespaces_state_) all.push_back(st);
    }
    for (auto& st : all) {
      if (Clock::now() > deadline) break;  // readers follow the tail instead
      std::lock_guard ship_lock(st->ship_mu);
      if (st->writer) (void)st->writer->flush_manifest();
    }
  }
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  shipped_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void BackupService::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    const auto now = Clock::now();
    auto next = now + std::chrono::seconds(1);
    if (release_at_ && *release_at_ <= now && !waiters_released_) {
      waiters_released_ = true;
      shipped_.notify_all();
    }
    if (release_at_ && !waiters_released_) next = std::min(next, *release_at_);
    if (now - hour_began_ >= std::chrono::hours(1)) {
      // Request cost is what object storage bills: say what the last hour cost.
      spdlog::info("backup: {} objects written ({} bytes) in the last hour, {} failed rounds",
                   totals_.objects_written - hour_start_.objects_written,
                   totals_.bytes_uploaded - hour_start_.bytes_uploaded,
                   totals_.failures - hour_start_.failures);
      hour_start_ = totals_;
      hour_began_ = now;
    }
    std::vector<std::pair<std::string, std::shared_ptr<Namespace>>> due;
    for (auto& [name, st] : namespaces_state_) {
      if (!st->pending) continue;
      Clock::time_point at = st->consecutive_failures > 0 ? st->retry_at
                             : st->waiters > 0           ? now
                                                         : st->pending_since + options_.interval;
      if (at <= now) {
        due.emplace_back(name, st);
      } else {
        next = std::min(next, at);
      }
    }
    if (due.empty()) {
      wake_.wait_until(lock, next);
      continue;
    }
    lock.unlock();
    for (auto& [name, st] : due) {
      std::lock_guard ship_lock(st->ship_mu);
      (void)ship(name, *st);
      apply_retention(name, *st);
    }
    lock.lock();
  }
}

Expected<backup::ShipResult, std::string> BackupService::ship(const std::string& ns,
                                                              Namespace& st) {
  const auto started = Clock::now();
  auto fail = [&](std::string message) -> Expected<backup::ShipResult, std::string> {
    st.writer.reset();  // re-read the manifest next time: an upload may have half happened
    std::lock_guard lock(mu_);
    ++st.consecutive_failures;
    ++st.status.failures;
    ++totals_.failures;
    st.retry_at = Clock::now() + backoff(st.consecutive_failures);
    if (st.consecutive_failures == 1 || st.consecutive_failures % 10 == 0) {
      spdlog::warn("backup of namespace '{}' failed ({} in a row; retrying in {} ms): {}", ns,
                   st.consecutive_failures,
                   std::chrono::duration_cast<std::chrono::milliseconds>(
                       backoff(st.consecutive_failures))
                       .count(),
                   message);
    }
    st.status.last_error = message;
    return unexpected(std::move(message));
  };

  auto db = namespaces_->get(ns);
  if (!db) {
    if (db.error().kind == engine::NamespaceError::Kind::kNotFound) {
      // Deleted: its backup stays in the store (restorable, forkable); nothing to follow.
      std::lock_guard lock(mu_);
      st.pending = false;
      st.consecutive_failures = 0;
      st.writer.reset();
      shipped_.notify_all();
      return backup::ShipResult{};
    }
    return fail("cannot open the namespace: " + db.error().message);
  }
  log::ReplicationLog* log = (*db)->replication_log();
  if (!log) {
    std::lock_guard lock(mu_);
    st.pending = false;
    return backup::ShipResult{};
  }
  if (!st.writer || st.writer->manifest().log_id != log->log_id()) {
    // First ship, or the database got a new log (restored in place): a new lineage. The old
    // one's manifest is brought up to date first (readers would follow its tail otherwise).
    if (st.writer) (void)st.writer->flush_manifest();
    backup::BackupOptions writer_options;
    writer_options.encryption_key = options_.encryption_key;
    auto opened = backup::BackupWriter::open(*store_, prefix(ns), log->log_id(), writer_options);
    if (!opened) return fail(opened.error().message);
    st.writer = std::move(opened.value());
  }
  auto shipped = backup::ship(*log, *st.writer, options_.ship);
  if (!shipped) return fail(shipped.error().message);
  auto config_objects = ship_config(ns, st);
  if (!config_objects) return fail(config_objects.error());

  const auto& r = *shipped;
  {
    std::lock_guard lock(mu_);
    st.status.config_current = true;
    if (*config_objects > 0) {
      st.status.objects_written += *config_objects;
      totals_.objects_written += *config_objects;
    }
    st.consecutive_failures = 0;
    st.status.last_error.clear();
    st.status.log_id = log::format_log_id(log->log_id());
    st.status.shipped_frame = r.store_frame_after;
    // From the log itself (every commit told of so far is in it): after a restore in place the
    // frames start again low, under a new log id.
    st.status.committed_frame = std::max(log->last_frame(), r.store_frame_after);
    if (r.uploaded_anything()) {
      ++st.status.ships;
      st.status.objects_written += r.objects_written;
      st.status.bytes_uploaded += r.bytes;
      st.status.last_ship_unix_us = unix_now_us();
      ++totals_.ships;
      totals_.objects_written += r.objects_written;
      totals_.bytes_uploaded += r.bytes;
    }
    // Commits told of during the upload wait for the next round; their interval started no
    // later than this one did.
    st.pending = st.status.committed_frame > r.store_frame_after;
    if (st.pending) st.pending_since = started;
  }
  shipped_.notify_all();
  if (r.uploaded_anything()) {
    spdlog::debug("backup of namespace '{}': frames {}..{} shipped ({} objects, {} bytes)", ns,
                  r.store_frame_before + 1, r.store_frame_after, r.objects_written, r.bytes);
  }
  return std::move(shipped.value());
}

Expected<std::uint64_t, std::string> BackupService::ship_config(const std::string& ns,
                                                              Namespace& st) {
  auto config = namespaces_->cached_config(ns);
  if (!config) return unexpected("reading its settings: " + config.error().message);
  std::string text = engine::to_json(**config);
  if (st.config_in_store == text) return std::uint64_t{0};
  const std::string key = config_key(ns);
  if (!st.config_in_store) {
    // Not known since the server started: one GET saves a PUT per namespace per restart.
    auto got = store_->get(key);
    if (got && *got == text) {
      st.config_in_store = std::move(text);
      return std::uint64_t{0};
    }
    if (!got && got.error().kind != storage::StorageErrc::kNotFound)
      return unexpected("reading " + key + ": " + got.error().message);
  }
  if (auto put = store_->put(key, text); !put)
    return unexpected("writing " + key + ": " + put.error().message);
  st.config_in_store = std::move(text);
  return std::uint64_t{1};
}

void BackupService::config_changed(const std::string& ns) {
  std::lock_guard lock(mu_);
  auto st = state(ns);
  st->status.config_current = false;
  if (!st->pending) {
    st->pending = true;
    st->pending_since = Clock::now();
  }
  wake_.notify_one();
}

Expected<std::optional<engine::NamespaceConfig>, std::string> BackupService::stored_config(
    const std::string& ns) {
  const std::string key = config_key(ns);
  auto got = store_->get(key);
  if (!got) {
    if (got.error().kind == storage::StorageErrc::kNotFound)
      return std::optional<engine::NamespaceConfig>{};
    return unexpected("reading " + key + " from " + options_.url + ": " + got.error().message);
  }
  auto parsed = engine::namespace_config_from_json(*got);
  if (!parsed) return unexpected(key + " in " + options_.url + " is not valid: " + parsed.error());
  return std::optional<engine::NamespaceConfig>(std::move(*parsed));
}

void BackupService::apply_retention(const std::string& ns, Namespace& st) {
  if (options_.retention.count() <= 0 || !st.writer) return;
  // Hourly, or more often for a short retention (at least once a tenth of it).
  const auto every = std::max<Clock::duration>(
      std::chrono::seconds(1),
      std::min<Clock::duration>(std::chrono::hours(1), options_.retention / 10));
  const auto now = Clock::now();
  if (st.last_retention != Clock::time_point{} && now - st.last_retention < every) return;
  st.last_retention = now;
  const std::int64_t cutoff =
      unix_now_us() -
      std::chrono::duration_cast<std::chrono::microseconds>(options_.retention).count();
  auto r = backup::apply_retention(*st.writer, cutoff);
  if (!r) {
    spdlog::warn("backup of namespace '{}': retention failed (retried later): {}", ns,
                 r.error().message);
    st.writer.reset();
    return;
  }
  if (r->objects_deleted > 0) {
    spdlog::info("backup of namespace '{}': retention deleted {} objects ({} bytes) older than {}",
                 ns, r->objects_deleted, r->bytes_deleted, format_rfc3339_us(cutoff));
  }
}

Expected<std::vector<std::string>, std::string> BackupService::restore_all(
    engine::NamespaceStore& store) {
  // One LIST of the whole store, once, on a new machine: the namespaces are the first path
  // components with a lineages.json under them.
  auto listed = store_->list("");
  if (!listed) {
    return unexpected("cannot list the backup at " + options_.url + ": " + listed.error().message);
  }
  std::vector<std::string> names;
  constexpr std::string_view kLineages = "/lineages.json";
  for (const auto& o : *listed) {
    const std::string& k = o.key;
    if (k.size() > kLineages.size() && k.ends_with(kLineages) &&
        k.find('/') == k.size() - kLineages.size()) {
      std::string name = k.substr(0, k.size() - kLineages.size());
      if (engine::NamespaceStore::valid_name(name)) names.push_back(std::move(name));
    }
  }
  for (const auto& name : names) {
    // Its settings first: a namespace must not come back with the defaults (another JWT key,
    // no write block) because they could not be read.
    auto config = stored_config(name);
    if (!config) return unexpected("cannot restore namespace '" + name + "': " + config.error());
    const auto scratch = store.scratch_path("restore", name);
    auto restored =
        backup::restore(*store_, prefix(name), backup::RestoreTarget::latest(), scratch,
                        encryption_key());
    if (!restored) {
      std::error_code ec;
      std::filesystem::remove(scratch, ec);
      return unexpected("cannot restore namespace '" + name + "' from " + options_.url + ": " +
                        restored.error().message);
    }
    const bool existed = store.exists(name);
    auto done = existed ? store.replace(name, scratch)
                        : store.adopt(name, scratch, config->value_or(engine::NamespaceConfig{}));
    if (!done) {
      std::error_code ec;
      std::filesystem::remove(scratch, ec);
      return unexpected("cannot restore namespace '" + name + "': " + done.error().message);
    }
    if (existed && *config) {
      if (auto set = store.set_config(name, **config); !set)
        return unexpected("cannot restore the settings of namespace '" + name +
                          "': " + set.error().message);
    }
    spdlog::info("restored namespace '{}' from the backup: frame {} of log {}, committed {}", name,
                 restored->frame, log::format_log_id(restored->log_id),
                 format_rfc3339_us(restored->commit_time_us));
  }
  return names;
}

Expected<backup::ShipResult, std::string> BackupService::flush(const std::string& ns) {
  std::shared_ptr<Namespace> st;
  {
    std::lock_guard lock(mu_);
    st = state(ns);
  }
  std::lock_guard ship_lock(st->ship_mu);
  return ship(ns, *st);
}

std::optional<NamespaceBackupStatus> BackupService::status(const std::string& ns) {
  std::lock_guard lock(mu_);
  auto it = namespaces_state_.find(ns);
  if (it == namespaces_state_.end()) return std::nullopt;
  return it->second->status;
}

BackupTotals BackupService::totals() {
  std::lock_guard lock(mu_);
  BackupTotals t = totals_;
  t.uptime = Clock::now() - started_;
  return t;
}

}  // namespace quire::server
