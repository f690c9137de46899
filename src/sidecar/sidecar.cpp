#include "sidecar/sidecar.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <thread>

#include "sidecar/base_image.h"

namespace quire::sidecar {

namespace fs = std::filesystem;

namespace {

std::string describe(const log::LogError& e) { return "replication log: " + e.message; }

std::string describe(const backup::BackupError& e) {
  return std::string(backup::to_string(e.kind)) + ": " + e.message;
}

backup::BackupError backup_error(backup::BackupErrc kind, std::string message) {
  backup::BackupError e;
  e.kind = kind;
  e.message = std::move(message);
  return e;
}

// Moves `from` to `to` and makes both directory entries durable.
Expected<void, std::string> move_dir(const fs::path& from, const fs::path& to) {
  if (auto r = log::rename_file(from, to); !r) return unexpected(r.error().message);
  if (auto r = log::sync_directory(to.parent_path()); !r) return unexpected(r.error().message);
  if (from.parent_path() != to.parent_path()) {
    if (auto r = log::sync_directory(from.parent_path()); !r) return unexpected(r.error().message);
  }
  return {};
}

std::string stamp_name(std::int64_t us, const std::string& what) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020" PRId64, us);
  return std::string(buf) + "-" + what;
}

}  // namespace

Sidecar::Sidecar(const SidecarOptions& options, storage::ObjectStore& store)
    : options_(options), store_(store) {
  if (options_.state_dir.empty()) options_.state_dir = options_.db_path.string() + "-quire";
  if (options_.prefix.empty()) options_.prefix = options_.db_path.filename().string();
  state_dir_ = options_.state_dir;
  // Points into options_, which lives as long as this object (never moved: held by pointer).
  options_.ship.encryption_key = options_.encryption_key ? &*options_.encryption_key : nullptr;
}

Sidecar::~Sidecar() {
  writer_.reset();
  log_.reset();
  pin_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::int64_t Sidecar::now_us() const {
  if (options_.clock) return options_.clock();
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Expected<std::unique_ptr<Sidecar>, std::string> Sidecar::open(const SidecarOptions& options,
                                                              storage::ObjectStore& store) {
  std::unique_ptr<Sidecar> s(new Sidecar(options, store));
  const fs::path& db = s->options_.db_path;
  // Read before any SQLite connection of ours exists (this descriptor is closed again).
  auto header = read_database_header(db);
  if (!header) return unexpected(header.error());
  if (!header->wal) {
    return unexpected(db.string() +
                      " is not in WAL mode: the sidecar reads the WAL (switch it with "
                      "`sqlite3 " +
                      db.string() +
                      " 'PRAGMA journal_mode=WAL'`, or give "
                      "--enable-wal)");
  }
  if (header->page_size != log::kPageSize) {
    return unexpected(db.string() + " has " + std::to_string(header->page_size) +
                      "-byte pages; the replication log supports 4096 only (PRAGMA "
                      "page_size=4096 then VACUUM, in rollback mode)");
  }

  std::error_code ec;
  fs::create_directories(s->state_dir_, ec);
  if (ec) return unexpected("creating " + s->state_dir_.string() + ": " + ec.message());
  const fs::path lock_path = s->state_dir_ / "lock";
  s->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (s->lock_fd_ < 0) return unexpected("opening " + lock_path.string() + ": " + strerror(errno));
  if (::flock(s->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return unexpected("another `quire replicate` is using " + s->state_dir_.string() +
                      " (it holds " + lock_path.string() + ")");
  }
  fs::remove_all(s->state_dir_ / "log.new", ec);

  auto pin = WalPin::open(db, s->options_.pin);
  if (!pin) return unexpected(pin.error());
  s->pin_ = std::move(pin.value());
  if (auto h = s->pin_->hold(); !h) return unexpected(h.error());
  s->reader_ = std::make_unique<log::WalReader>(db.string() + "-wal");

  const fs::path log_dir = s->state_dir_ / "log";
  auto opened = log::ReplicationLog::open(log_dir, s->options_.log);
  if (!opened) {
    const auto code = opened.error().code;
    if (code == log::LogErrc::kNotFound) {
      if (auto r = s->start_lineage("no log in " + s->state_dir_.string() + " yet"); !r) {
        return unexpected(r.error());
      }
      return s;
    }
    if (code != log::LogErrc::kCorrupt && code != log::LogErrc::kIncompatible) {
      return unexpected(describe(opened.error()));
    }
    const fs::path aside = s->state_dir_ / stamp_name(s->now_us(), "broken-log");
    spdlog::error("{}: {}; moving it to {}", log_dir.string(), opened.error().message,
                  aside.string());
    if (auto r = move_dir(log_dir, aside); !r) return unexpected(r.error());
    if (auto r = s->start_lineage("the log in " + s->state_dir_.string() + " was unreadable"); !r) {
      return unexpected(r.error());
    }
    return s;
  }
  s->log_ = std::move(opened.value());
  const auto latest = s->log_->latest_snapshot();
  s->snapshot_base_ = latest ? latest->frame : s->log_->first_available_frame();
  const auto position = s->log_->last_wal_position();
  if (!position) {
    if (auto r = s->start_lineage("the log has no WAL position to resume from (nothing was "
                                  "captured after its base image)");
        !r) {
      return unexpected(r.error());
    }
    return s;
  }
  s->cursor_ = *position;
  s->continuous_ = false;  // the first capture must prove the WAL continues from the cursor
  auto first = s->capture();
  if (!first) return unexpected(first.error());
  if (!first->new_lineage) {
    spdlog::info("{}: resumed log {} at frame {} (WAL frame {}); {} transactions taken since",
                 db.string(), log::format_log_id(s->log_->log_id()), s->log_->last_frame(),
                 s->cursor_.frame, first->txns);
  }
  return s;
}

Expected<void, std::string> Sidecar::retire_current() {
  if (!log_) return {};
  const std::string id = log::format_log_id(log_->log_id());
  if (writer_) (void)writer_->flush_manifest();  // best effort: readers follow the tail anyway
  writer_.reset();
  log_.reset();
  const fs::path retired = state_dir_ / "retired";
  std::error_code ec;
  fs::create_directories(retired, ec);
  if (ec) return unexpected("creating " + retired.string() + ": " + ec.message());
  return move_dir(state_dir_ / "log", retired / stamp_name(now_us(), id));
}

Expected<void, std::string> Sidecar::start_lineage(const std::string& reason) {
  if (auto r = retire_current(); !r) return r;
  // A short WAL folds into the base image cheaply: try to empty it (no waiting), then pin again.
  pin_->release();
  pin_->try_truncate();
  if (auto h = pin_->hold(); !h) return unexpected(h.error());
  reader_ = std::make_unique<log::WalReader>(options_.db_path.string() + "-wal");
  auto batch = reader_->read_committed(log::WalPosition{});
  if (!batch) return unexpected("reading the WAL: " + describe(batch.error()));
  auto base = BaseImage::make(pin_->db_file(), batch->transactions);
  if (!base)
    return unexpected("reading " + options_.db_path.string() + ": " + base.error().message);
  const std::uint32_t pages = base->page_count();
  if (pages == 0) return unexpected(options_.db_path.string() + " has no pages");

  const std::int64_t t = now_us();
  const fs::path tmp = state_dir_ / "log.new";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  // With no current log, state/log is at most an empty leftover (open() found no segment in it).
  if (!log_) fs::remove_all(state_dir_ / "log", ec);
  {
    auto created = log::ReplicationLog::create(tmp, options_.log, &base.value(), t);
    if (!created) return unexpected(describe(created.error()));
    auto& fresh = *created.value();
    // The store gets the base as a streamed snapshot, never as one huge batch.
    if (auto snap = fresh.snapshot_from(*base, pages); !snap) {
      return unexpected(describe(snap.error()));
    }
    if (!batch->transactions.empty()) {
      // The base already holds the WAL's last transaction; appending it again (page images:
      // idempotent) records its WAL position in the log, the cursor a restart resumes from.
      log::Transaction again = batch->transactions.back();
      again.commit_time_us = t;
      if (auto a = fresh.append(again); !a) return unexpected(describe(a.error()));
    }
    if (auto sy = fresh.sync(); !sy) return unexpected(describe(sy.error()));
  }
  if (auto m = move_dir(tmp, state_dir_ / "log"); !m) return m;
  auto opened = log::ReplicationLog::open(state_dir_ / "log", options_.log);
  if (!opened) return unexpected(describe(opened.error()));
  log_ = std::move(opened.value());
  writer_.reset();
  cursor_ = batch->end;
  continuous_ = true;
  snapshot_base_ = pages;
  last_checkpoint_ = {};
  ++lineages_started_;
  spdlog::warn(
      "{}: starting a new lineage, log {}: {}; base image of {} pages ({} WAL "
      "transactions folded in), frames 1..{}",
      options_.db_path.string(), log::format_log_id(log_->log_id()), reason, pages,
      batch->transactions.size(), log_->last_frame());
  return {};
}

Expected<std::size_t, std::string> Sidecar::append(log::WalBatch& batch) {
  std::size_t n = 0;
  for (auto& txn : batch.transactions) {
    txn.commit_time_us = now_us();
    auto appended = log_->append(txn);
    if (!appended) return unexpected(describe(appended.error()));
    cursor_ = *txn.wal;
    ++n;
  }
  if (batch.transactions.empty() && batch.state != log::WalState::kBehindCursor) {
    cursor_ = batch.end;
  }
  if (n > 0) {
    if (auto s = log_->sync(); !s) return unexpected(describe(s.error()));
  }
  return n;
}

Expected<CaptureStats, std::string> Sidecar::capture_locked() {
  CaptureStats st;
  if (!pin_ || pin_->file_replaced()) {
    // Another file now sits at the path (or reopening it failed before): pin that one and start
    // over from it.
    pin_.reset();
    auto header = read_database_header(options_.db_path);
    if (!header) return unexpected(header.error());
    if (!header->wal || header->page_size != log::kPageSize) {
      return unexpected(options_.db_path.string() +
                        " was replaced by a database that is not in WAL mode with 4096-byte pages");
    }
    auto pin = WalPin::open(options_.db_path, options_.pin);
    if (!pin) return unexpected(pin.error());
    pin_ = std::move(pin.value());
    if (auto r = start_lineage("the database file was replaced"); !r) return unexpected(r.error());
    st.new_lineage = true;
    st.last_frame = log_->last_frame();
    return st;
  }
  if (!pin_->held()) {
    if (auto h = pin_->hold(); !h) return unexpected(h.error());
    continuous_ = false;
  }
  auto batch = reader_->read_committed(cursor_);
  std::string lost;
  if (!batch) {
    if (batch.error().code != log::LogErrc::kCorrupt) {
      return unexpected("reading the WAL: " + describe(batch.error()));
    }
    lost = "the WAL no longer holds the last captured commit (" + batch.error().message + ")";
  } else if (batch->state == log::WalState::kBehindCursor) {
    lost = "the WAL's committed end (frame " + std::to_string(batch->end.frame) +
           ") is before the last captured commit (frame " + std::to_string(cursor_.frame) + ")";
  } else if (!continuous_) {
    if (batch->state == log::WalState::kRestarted) {
      lost = "the WAL was restarted while the sidecar was not running";
    } else if (batch->state == log::WalState::kNoWal) {
      lost = "the WAL was checkpointed and truncated or removed while the sidecar was not running";
    } else if (cursor_ == log::WalPosition{}) {
      lost = "nothing says where in the WAL the log stopped";
    }
  }
  if (!lost.empty()) {
    if (auto r = start_lineage(lost); !r) return unexpected(r.error());
    st.new_lineage = true;
  } else {
    if (batch->state == log::WalState::kRestarted) {
      spdlog::debug("{}: the WAL started over (salts {:08x} {:08x})", options_.db_path.string(),
                    batch->end.salt1, batch->end.salt2);
    }
    auto n = append(*batch);
    if (!n) return unexpected(n.error());
    st.txns = *n;
    continuous_ = true;
  }
  st.last_frame = log_->last_frame();
  return st;
}

Expected<CaptureStats, std::string> Sidecar::capture() {
  auto st = capture_locked();
  if (!st) return st;
  if (auto r = pin_->refresh(); !r) {
    spdlog::warn("{}: keeping the old read transaction: {}", options_.db_path.string(), r.error());
  }
  return st;
}

Expected<bool, std::string> Sidecar::checkpoint_if_due() {
  if (!pin_ || options_.checkpoint_frames == 0 || cursor_.frame < options_.checkpoint_frames ||
      cursor_ == last_checkpoint_) {
    return false;
  }
  const auto now = std::chrono::steady_clock::now();
  if (now - last_checkpoint_at_ < options_.ship_interval) return false;
  last_checkpoint_at_ = now;
  auto r = pin_->checkpoint([this]() -> Expected<void, std::string> {
    auto c = capture_locked();
    if (!c) return unexpected(c.error());
    return {};
  });
  if (!r) {
    continuous_ = pin_->held() && continuous_;
    return unexpected("checkpoint: " + r.error());
  }
  if (!r->locked) {
    spdlog::debug("{}: checkpoint skipped: an application transaction holds the write lock",
                  options_.db_path.string());
    return false;
  }
  last_checkpoint_ = cursor_;
  spdlog::info("{}: checkpointed the WAL ({} of {} frames copied into the database file)",
               options_.db_path.string(), r->backfilled, r->wal_frames);
  return true;
}

std::size_t Sidecar::retired_logs() const {
  std::error_code ec;
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator(state_dir_ / "retired", ec)) {
    if (e.is_directory()) ++n;
  }
  return n;
}

backup::BackupResult<void> Sidecar::ship_retired(ShipStats& stats) {
  const fs::path dir = state_dir_ / "retired";
  std::error_code ec;
  if (!fs::exists(dir, ec)) return {};
  std::vector<fs::path> logs;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_directory()) logs.push_back(e.path());
  }
  std::sort(logs.begin(), logs.end());  // named <time>-<log-id>: oldest first
  for (const auto& path : logs) {
    auto opened = log::ReplicationLog::open(path, options_.log);
    if (!opened) {
      if (opened.error().code == log::LogErrc::kNotFound) {
        fs::remove_all(path, ec);
        continue;
      }
      if (opened.error().code == log::LogErrc::kIo) {
        return unexpected(backup_error(backup::BackupErrc::kIo, describe(opened.error())));
      }
      // Unreadable: it can never be shipped; keep it aside for a human, do not block the rest.
      const fs::path aside = state_dir_ / ("broken-" + path.filename().string());
      spdlog::error("retired log {}: {}; moving it to {}", path.string(), opened.error().message,
                    aside.string());
      if (auto m = move_dir(path, aside); !m) {
        return unexpected(backup_error(backup::BackupErrc::kIo, m.error()));
      }
      continue;
    }
    auto& old = *opened.value();
    auto shipped = backup::ship(old, store_, options_.prefix, options_.ship);
    if (!shipped) return unexpected(std::move(shipped).error());
    stats.objects += shipped->objects_written;
    stats.bytes += shipped->bytes;
    stats.txns += shipped->txns;
    if (shipped->uploaded_anything()) {
      spdlog::info("shipped frames {}..{} of retired log {} to {}/{}: {} objects, {} bytes",
                   shipped->store_frame_before + 1, shipped->store_frame_after,
                   log::format_log_id(old.log_id()), store_.describe(), options_.prefix,
                   shipped->objects_written, shipped->bytes);
    }
    if (shipped->store_frame_after != old.last_frame()) {
      return unexpected(backup_error(backup::BackupErrc::kInvalidArgument,
                                     "retired log " + path.string() + " was not fully shipped"));
    }
    opened.value().reset();
    fs::remove_all(path, ec);
    if (ec) {
      return unexpected(
          backup_error(backup::BackupErrc::kIo, "removing " + path.string() + ": " + ec.message()));
    }
    ++stats.retired_shipped;
    spdlog::info("retired log {} is completely in the store; removed it locally",
                 path.filename().string());
  }
  return {};
}

backup::BackupResult<ShipStats> Sidecar::ship() {
  ShipStats st;
  if (auto r = ship_retired(st); !r) return unexpected(std::move(r).error());
  if (!writer_) {
    backup::BackupOptions backup_options;
    backup_options.encryption_key = options_.encryption_key;
    auto w = backup::BackupWriter::open(store_, options_.prefix, log_->log_id(), backup_options);
    if (!w) return unexpected(std::move(w).error());
    writer_ = std::move(w.value());
  }
  auto shipped = backup::ship(*log_, *writer_, options_.ship);
  if (!shipped) {
    writer_.reset();  // its manifest may not be the store's: read it again next time
    return unexpected(std::move(shipped).error());
  }
  st.txns += shipped->txns;
  st.bytes += shipped->bytes;
  st.objects += shipped->objects_written;
  if (shipped->uploaded_anything()) {
    st.first_frame = shipped->store_frame_before + 1;
    st.last_frame = shipped->store_frame_after;
    spdlog::info(
        "shipped frames {}..{} to {}/{} (log {}): {} transactions{}, {} objects, {} "
        "bytes",
        st.first_frame, st.last_frame, store_.describe(), options_.prefix,
        log::format_log_id(log_->log_id()), shipped->txns,
        shipped->snapshot
            ? " and a snapshot of " + std::to_string(shipped->snapshot->db_size) + " pages"
            : std::string(),
        shipped->objects_written, shipped->bytes);
  }
  st.up_to_date = shipped->store_frame_after == log_->last_frame();
  maybe_snapshot(shipped->store_frame_after);
  if (st.up_to_date) maybe_apply_retention();
  return st;
}

void Sidecar::maybe_apply_retention() {
  if (options_.retention.count() <= 0 || !writer_) return;
  const auto now = std::chrono::steady_clock::now();
  if (last_retention_at_ && now - *last_retention_at_ < options_.retention_check_interval) return;
  last_retention_at_ = now;
  const std::int64_t cutoff =
      now_us() - std::chrono::duration_cast<std::chrono::microseconds>(options_.retention).count();
  auto r = backup::apply_retention(*writer_, cutoff);
  if (!r) {
    spdlog::warn("retention in {}/{}: {}", store_.describe(), options_.prefix, describe(r.error()));
    writer_.reset();  // its manifest may have been pruned in memory only
    return;
  }
  if (r->objects_deleted > 0) {
    spdlog::info(
        "retention in {}/{}: deleted {} objects ({} bytes; {} snapshots, {} batches, {} "
        "lineages) only needed before the last {} s",
        store_.describe(), options_.prefix, r->objects_deleted, r->bytes_deleted,
        r->snapshots_deleted, r->batches_deleted, r->lineages_deleted, options_.retention.count());
  }
}

void Sidecar::maybe_snapshot(log::Frame shipped) {
  if (options_.snapshot_every_frames == 0) return;
  const log::Frame last = log_->last_frame();
  // Only frames the store already holds may be compacted away.
  if (shipped < last) return;
  const std::uint64_t interval =
      std::max<std::uint64_t>(options_.snapshot_every_frames, log_->db_size());
  if (last < snapshot_base_ + interval) return;
  auto snap = log_->snapshot();
  if (!snap) {
    spdlog::warn("{}: snapshot of the local log: {}", log_->dir().string(), snap.error().message);
    snapshot_base_ = last;  // retry one interval later
    return;
  }
  snapshot_base_ = snap->frame;
  if (auto c = log_->compact(); !c) {
    spdlog::warn("{}: compacting the local log: {}", log_->dir().string(), c.error().message);
  }
}

void Sidecar::stop() {
  std::lock_guard lock(stop_mu_);
  stop_requested_ = true;
  stop_cv_.notify_all();
}

Expected<void, std::string> Sidecar::run() {
  using clock = std::chrono::steady_clock;
  auto next_capture = clock::now();
  auto next_ship = clock::now();
  auto backoff = options_.ship_interval;
  bool failing = false;
  // A capture error that repeats every tick is logged when it changes, and every 10 s.
  std::string last_error;
  auto last_error_at = clock::time_point{};
  auto report = [&](const std::string& what) {
    const auto now = clock::now();
    if (what == last_error && now - last_error_at < std::chrono::seconds(10)) return;
    last_error = what;
    last_error_at = now;
    spdlog::error("{}: {}", options_.db_path.string(), what);
  };
  for (;;) {
    {
      std::unique_lock lock(stop_mu_);
      stop_cv_.wait_until(lock, std::min(next_capture, next_ship), [&] { return stop_requested_; });
      if (stop_requested_) break;
    }
    const auto now = clock::now();
    if (now >= next_capture) {
      if (auto c = capture(); !c) report("capture: " + c.error());
      if (auto k = checkpoint_if_due(); !k) report(k.error());
      next_capture = now + options_.capture_interval;
    }
    if (now >= next_ship) {
      auto s = ship();
      if (s) {
        if (failing)
          spdlog::info("the store {} answers again; the backup has caught up", store_.describe());
        failing = false;
        backoff = options_.ship_interval;
        next_ship = now + options_.ship_interval;
      } else {
        spdlog::error(
            "shipping to {}/{} failed: {} (retrying in {} ms; capturing locally "
            "meanwhile)",
            store_.describe(), options_.prefix, describe(s.error()), backoff.count());
        failing = true;
        next_ship = now + backoff;
        backoff = std::min(backoff * 2, std::max(options_.max_backoff, options_.ship_interval));
      }
    }
  }

  // Stopping: take what the WAL holds now and store all of it.
  if (auto c = capture(); !c) return unexpected("final capture: " + c.error());
  const auto deadline = clock::now() + options_.shutdown_timeout;
  auto wait = std::chrono::milliseconds(200);
  for (;;) {
    auto s = ship();
    if (s && s->up_to_date && retired_logs() == 0) break;
    const std::string why = s ? "not up to date yet" : describe(s.error());
    if (clock::now() + wait >= deadline) {
      if (pin_) pin_->release();
      return unexpected(
          "stopping with frames " + std::to_string(writer_ ? writer_->last_frame() + 1 : 1) + ".." +
          std::to_string(log_->last_frame()) + " of log " + log::format_log_id(log_->log_id()) +
          " not in the store (" + why + "); they stay in " + state_dir_.string() +
          " and are shipped at the next start");
    }
    spdlog::warn("shipping at stop: {}; retrying", why);
    std::this_thread::sleep_for(wait);
    wait = std::min(wait * 2, std::chrono::milliseconds(5000));
  }
  // Readers follow the batches after the manifest anyway; writing it now spares them the GETs.
  if (writer_) {
    if (auto f = writer_->flush_manifest(); !f) {
      spdlog::warn("stopping: the manifest of {}/{} was not rewritten ({}); readers follow the "
                   "batches after it", store_.describe(), options_.prefix, describe(f.error()));
    }
  }
  if (pin_) pin_->release();
  spdlog::info("stopped: {}/{} holds frame {} of log {}, everything captured", store_.describe(),
               options_.prefix, log_->last_frame(), log::format_log_id(log_->log_id()));
  return {};
}

}  // namespace quire::sidecar
