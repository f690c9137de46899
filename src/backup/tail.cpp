// follow_tail() (docs/formats/backup.md, "Manifest cadence"): the batches a writer stored after
// the last manifest it wrote, found under their predictable keys without a LIST.
#include <chrono>
#include <limits>
#include <thread>

#include "backup/object_format.h"

namespace quire::backup::detail {

namespace {

// Re-reads of a tail object that reads short, 25 ms doubling: about 1.6 s in all.
constexpr int kShortReadRetries = 6;

BackupError corrupt_tail(const std::string& key, log::Frame after, const std::string& why) {
  return error(BackupErrc::kCorrupt,
               key + ": " + why + " (the backup continues after frame " + std::to_string(after) +
                   " with this object, which cannot be used; nothing after it is restorable)");
}

}  // namespace

BackupResult<Tail> follow_tail(storage::ObjectStore& store, const std::string& dir, Manifest& m,
                               TailRead mode) {
  Tail tail;
  log::Frame last = m.last_frame();
  if (last == 0) return tail;  // a lineage starts with a manifest write: no tail without one
  const auto extent = m.batch_extent();
  std::int64_t prev_time =
      extent ? extent->last_commit_time_us : std::numeric_limits<std::int64_t>::min();
  for (;;) {
    const log::Frame first = last + 1;
    const std::string rel = batch_key(first);
    const std::string key = dir + rel;
    const std::size_t min_size =
        mode == TailRead::kWhole ? kHeaderSize + kTrailerSize : kHeaderSize;
    // A short read is retried for a moment before it counts as corruption: a store that writes
    // objects in place (s3rver, some S3-compatible servers on a plain file system) shows an
    // object that is still being written as a short one. S3 itself never does.
    storage::StorageResult<std::string> got = std::string();
    for (int attempt = 0;; ++attempt) {
      got = mode == TailRead::kWhole ? store.get(key) : store.get_range(key, 0, kHeaderSize);
      if (!got || got->size() >= min_size || attempt == kShortReadRetries) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(25 << attempt));
    }
    if (!got) {
      if (got.error().kind == storage::StorageErrc::kNotFound) return tail;  // the end
      return unexpected(storage_failure("following the backup's tail at " + key, got.error()));
    }
    const auto* d = reinterpret_cast<const std::uint8_t*>(got->data());
    if (got->size() < min_size) {
      tail.broken = corrupt_tail(key, last, "too short");
      return tail;
    }
    std::string why;
    auto h = decode_header(d, why);
    if (h) {
      if (h->kind != ObjectKind::kBatch) why = "not a batch";
      else if (h->log_id != m.log_id) why = "belongs to another log id";
      else if (h->first_frame != first)
        why = "starts at frame " + std::to_string(h->first_frame) + ", expected " +
              std::to_string(first);
      else if (h->last_frame < h->first_frame || h->txns == 0 ||
               h->txns > h->last_frame - h->first_frame + 1 || h->db_size == 0 ||
               h->first_commit_frame < h->first_frame || h->first_commit_frame > h->last_frame ||
               h->last_time_us < h->first_time_us)
        why = "header fields are inconsistent";
      else if (h->first_time_us < prev_time)
        why = "commit times go back";
    }
    if (!why.empty()) {
      tail.broken = corrupt_tail(key, last, why);
      return tail;
    }
    BatchEntry e;
    e.key = rel;
    e.first_frame = h->first_frame;
    e.last_frame = h->last_frame;
    e.first_commit_frame = h->first_commit_frame;
    e.first_commit_time_us = h->first_time_us;
    e.last_commit_time_us = h->last_time_us;
    e.txns = h->txns;
    e.db_size = h->db_size;
    if (mode == TailRead::kWhole) {
      Sha256 sha;
      sha.update(got->data(), got->size());
      const auto digest = sha.finish();
      e.size = got->size();
      e.sha256 = to_hex(digest.data(), digest.size());
    }
    m.batches.push_back(std::move(e));
    ++tail.appended;
    last = h->last_frame;
    prev_time = h->last_time_us;
  }
}

}  // namespace quire::backup::detail
