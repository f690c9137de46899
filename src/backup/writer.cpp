// BackupWriter: snapshots streamed through a multipart upload, batches built in memory; each
// upload writes its object, then the manifest when due (always for a snapshot, every
// manifest_every_batches batches or manifest_every_us otherwise), then (once per lineage)
// lineages.json.
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>

#include "backup/backup.h"
#include "backup/chunk_cipher.h"
#include "backup/object_format.h"
#include "common/scratch_buffer.h"

namespace quire::backup {

using detail::error;
using detail::storage_failure;

namespace {

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t steady_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct CCtx {
  ZSTD_CCtx* p = ZSTD_createCCtx();
  ~CCtx() { ZSTD_freeCCtx(p); }
};

// What building a batch needs, kept per thread between batches: the server's one shipping thread
// builds every namespace's batches, and fresh buffers of tens of MiB each time (zero-filled,
// page-faulted in, unmapped after) cost more CPU than compressing them. Buffers grow to the
// largest batch seen (huge pages: ScratchBuffer) and are given back when that is over
// kKeepBytes.
struct BatchScratch {
  static constexpr std::size_t kKeepBytes = 64u << 20;
  ScratchBuffer content;  // the uncompressed batch (txn headers and page records)
  ScratchBuffer object;   // header ‖ zstd payload ‖ trailer (unencrypted objects)
  CCtx cctx;              // reset between batches, its workspace kept
  // Whose batch `content` holds: the writer and the start_batch() that began it. A writer whose
  // batch another one overwrote on this thread finds out instead of uploading foreign bytes.
  const void* owner = nullptr;
  std::uint64_t generation = 0;

  void trim() {
    content.release_over(kKeepBytes);
    object.release_over(kKeepBytes);
  }
};

BatchScratch& batch_scratch() {
  thread_local BatchScratch scratch;
  return scratch;
}

}  // namespace

BackupWriter::BackupWriter(storage::ObjectStore& store, std::string prefix, Manifest manifest,
                           bool registered, BackupOptions options)
    : store_(store), prefix_(std::move(prefix)), manifest_(std::move(manifest)),
      registered_(registered), options_(std::move(options)) {}

BackupResult<std::unique_ptr<BackupWriter>> BackupWriter::open(storage::ObjectStore& store,
                                                               std::string prefix,
                                                               const log::LogId& log_id,
                                                               const BackupOptions& options) {
  if (options.encryption_chunk_bytes < detail::kMinChunkBytes ||
      options.encryption_chunk_bytes > detail::kMaxChunkBytes)
    return unexpected(error(BackupErrc::kInvalidArgument,
                            "encryption_chunk_bytes must be 4096..16777216, got " +
                                std::to_string(options.encryption_chunk_bytes)));
  if (options.manifest_every_batches == 0)
    return unexpected(error(BackupErrc::kInvalidArgument, "manifest_every_batches must be >= 1"));
  if (options.index_batches == 0 || options.index_fanout < 2 || options.index_levels == 0 ||
      options.index_levels > 8)
    return unexpected(error(BackupErrc::kInvalidArgument,
                            "need index_batches >= 1, index_fanout >= 2, index_levels 1..8"));
  auto norm = detail::normalize_prefix(std::move(prefix));
  if (!norm) return unexpected(std::move(norm).error());
  const std::string mkey = detail::manifest_key(*norm, log_id);
  Manifest manifest;
  manifest.log_id = log_id;
  auto got = store.get(mkey);
  const bool stored = got.has_value();
  if (got) {
    auto parsed = manifest_from_json(*got, mkey);
    if (!parsed) return unexpected(std::move(parsed).error());
    if (parsed->log_id != log_id)
      return unexpected(error(BackupErrc::kCorrupt, mkey + ": names another log id"));
    manifest = std::move(*parsed);
  } else if (got.error().kind != storage::StorageErrc::kNotFound) {
    return unexpected(storage_failure("reading " + mkey, got.error()));
  }
  // The batches uploaded after the last manifest write (a crash, kill -9): resume after them.
  // An object at the next key that fails its header checks is not ours to keep: the chain ends
  // before it and the next upload overwrites it (same key) with the frames from the log.
  auto tail = detail::follow_tail(store, detail::lineage_dir(*norm, log_id), manifest,
                                  detail::TailRead::kWhole);
  if (!tail) return unexpected(std::move(tail).error());
  auto lineages = detail::read_lineages(store, *norm);
  if (!lineages) return unexpected(std::move(lineages).error());
  bool registered = false;
  if (*lineages) {
    registered = !(*lineages)->empty() && (*lineages)->back().log_id == log_id;
  }
  std::unique_ptr<BackupWriter> w(
      new BackupWriter(store, std::move(*norm), std::move(manifest), registered, options));
  w->manifest_stored_ = stored;
  // A tail found: the stored manifest is stale by an unknown time; rewrite it at the next upload.
  w->unflushed_ = tail->appended;
  return w;
}

bool BackupWriter::manifest_due() const {
  if (!manifest_stored_ || !registered_) return true;  // a lineage is readable only once named
  if (unflushed_ >= options_.manifest_every_batches) return true;
  return manifest_written_us_ == 0 ||
         steady_us() - manifest_written_us_ >= options_.manifest_every_us;
}

BackupResult<void> BackupWriter::flush_manifest() {
  // Registration is not this call's business: every upload that succeeded registered the
  // lineage, and one that failed is retried by the next upload.
  if (unflushed_ == 0) return {};
  return write_manifest();
}

std::unique_ptr<detail::ChunkSealer> BackupWriter::start_sealing(
    detail::ObjectHeader& header, std::uint8_t* encoded_header) const {
  if (!options_.encryption_key) {
    detail::encode_header(header, encoded_header);
    return nullptr;
  }
  header.flags |= detail::kFlagEncrypted;
  header.chunk_bytes = options_.encryption_chunk_bytes;
  header.key_id = options_.encryption_key->id();
  header.nonce = detail::random_nonce();
  detail::encode_header(header, encoded_header);
  return std::make_unique<detail::ChunkSealer>(*options_.encryption_key, encoded_header,
                                               header.chunk_bytes, header.nonce);
}

std::string BackupWriter::lineage_key(const std::string& rel) const {
  return detail::lineage_dir(prefix_, manifest_.log_id) + rel;
}

BackupResult<IndexEntry> BackupWriter::put_index(IndexEntry entry, const std::string& body) {
  entry.key = index_key(entry.first_frame, entry.last_frame, entry.level);
  detail::Sha256 sha;
  sha.update(body.data(), body.size());
  const auto digest = sha.finish();
  entry.size = body.size();
  entry.sha256 = detail::to_hex(digest.data(), digest.size());
  const std::string key = lineage_key(entry.key);
  // Immutable once named: a retry after a failed manifest write PUTs the same bytes again.
  auto put = store_.put(key, body);
  if (!put) return unexpected(storage_failure("writing " + key, put.error()));
  ++objects_written_;
  return entry;
}

BackupResult<void> BackupWriter::seal_batches() {
  auto& batches = manifest_.batches;
  const auto& snaps = manifest_.snapshots;
  // A run ends after batch i when batch i+1 does not follow it directly or a snapshot's frame
  // lies between them: so no level-1 index straddles a snapshot, and retention drops whole
  // ones exactly.
  auto run_ends_after = [&](std::size_t i) {
    if (batches[i + 1].first_frame != batches[i].last_frame + 1) return true;
    auto s = std::lower_bound(snaps.begin(), snaps.end(), batches[i].last_frame,
                              [](const SnapshotEntry& e, log::Frame f) { return e.frame < f; });
    return s != snaps.end() && s->frame < batches[i + 1].first_frame;
  };
  while (batches.size() >= options_.index_batches) {
    std::size_t n = 1;
    while (n < options_.index_batches && !run_ends_after(n - 1)) ++n;
    const std::span<const BatchEntry> run(batches.data(), n);
    auto put = put_index(detail::summarise_index(run), index_to_json(manifest_.log_id, run));
    if (!put) return unexpected(std::move(put).error());
    // Level-1 entries follow every higher-level one: append.
    manifest_.indexes.push_back(std::move(*put));
    batches.erase(batches.begin(), batches.begin() + static_cast<std::ptrdiff_t>(n));
  }
  for (std::uint32_t level = 1; level < options_.index_levels; ++level)
    if (auto r = seal_indexes(level); !r) return r;
  return {};
}

BackupResult<void> BackupWriter::seal_indexes(std::uint32_t level) {
  auto& indexes = manifest_.indexes;
  // The entries of `level` are consecutive (older entries have higher levels).
  for (;;) {
    auto first = std::find_if(indexes.begin(), indexes.end(),
                              [&](const IndexEntry& e) { return e.level == level; });
    const auto count = static_cast<std::size_t>(
        std::find_if(first, indexes.end(), [&](const IndexEntry& e) { return e.level != level; }) -
        first);
    if (count < options_.index_fanout) return {};
    // A run ends at a gap only: a snapshot inside is fine (retention keeps an index it
    // straddles, so up to one such index's frames longer than needed).
    std::size_t n = 1;
    while (n < options_.index_fanout && first[n].first_frame == first[n - 1].last_frame + 1) ++n;
    const std::span<const IndexEntry> run(&*first, n);
    auto put =
        put_index(detail::summarise_index(run), index_to_json(manifest_.log_id, level + 1, run));
    if (!put) return unexpected(std::move(put).error());
    const auto at = first - indexes.begin();
    indexes.erase(first, first + static_cast<std::ptrdiff_t>(n));
    indexes.insert(indexes.begin() + at, std::move(*put));
  }
}

BackupResult<void> BackupWriter::write_manifest() {
  if (auto r = seal_batches(); !r) return r;
  const std::string key = detail::manifest_key(prefix_, manifest_.log_id);
  auto put = store_.put(key, manifest_to_json(manifest_));
  if (!put) return unexpected(storage_failure("writing " + key, put.error()));
  ++objects_written_;
  manifest_stored_ = true;
  unflushed_ = 0;
  manifest_written_us_ = steady_us();
  return {};
}

BackupResult<void> BackupWriter::register_lineage() {
  if (registered_) return {};
  auto lineages = detail::read_lineages(store_, prefix_);
  if (!lineages) return unexpected(std::move(lineages).error());
  std::vector<detail::LineageEntry> list = lineages->value_or(std::vector<detail::LineageEntry>{});
  // A lineage that was current before, then replaced, then resumed moves to the end again.
  std::erase_if(list, [&](const auto& l) { return l.log_id == manifest_.log_id; });
  list.push_back({manifest_.log_id, now_us()});
  const std::string key = detail::lineages_key(prefix_);
  auto put = store_.put(key, detail::lineages_to_json(list));
  if (!put) return unexpected(storage_failure("writing " + key, put.error()));
  ++objects_written_;
  registered_ = true;
  return {};
}

BackupResult<SnapshotEntry> BackupWriter::upload_snapshot(const log::PageSource& pages,
                                                          log::Frame frame,
                                                          std::int64_t commit_time_us,
                                                          const ProgressFn& progress) {
  const std::uint32_t n = pages.page_count();
  if (frame == 0 || n == 0)
    return unexpected(error(BackupErrc::kInvalidArgument, "snapshot needs a frame >= 1 and pages"));
  SnapshotEntry entry;
  entry.key = snapshot_key(frame);
  entry.frame = frame;
  entry.db_size = n;
  entry.commit_time_us = commit_time_us;
  const std::string key = lineage_key(entry.key);

  auto writer = store_.open_writer(key);
  if (!writer) return unexpected(storage_failure("uploading " + key, writer.error()));
  detail::Sha256 object_sha;
  std::uint64_t total = 0;
  auto emit = [&](const void* data, std::size_t len) -> BackupResult<void> {
    object_sha.update(data, len);
    total += len;
    auto w = (*writer)->write(std::string_view(static_cast<const char*>(data), len));
    if (!w) return unexpected(storage_failure("uploading " + key, w.error()));
    return {};
  };

  std::uint8_t header[detail::kHeaderSize];
  detail::ObjectHeader h{detail::ObjectKind::kSnapshot, manifest_.log_id, frame, frame, n, 0,
                         commit_time_us, commit_time_us};
  h.flags = detail::kFlagZstdChecksum;  // one frame, checksummed: no content SHA-256
  auto sealer = start_sealing(h, header);
  if (auto r = emit(header, sizeof header); !r) return unexpected(std::move(r.error()));
  // The body (payload ‖ trailer), sealed chunk by chunk when encrypting.
  auto emit_body = [&](const void* data, std::size_t len) -> BackupResult<void> {
    if (!sealer) return emit(data, len);
    const std::string sealed = sealer->update(data, len);
    if (sealed.empty()) return {};
    return emit(sealed.data(), sealed.size());
  };
  if (progress) progress(0, n);

  CCtx cctx;
  ZSTD_CCtx_setParameter(cctx.p, ZSTD_c_compressionLevel, zstd_level);
  ZSTD_CCtx_setParameter(cctx.p, ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setPledgedSrcSize(cctx.p, static_cast<unsigned long long>(n) * log::kPageSize);
  constexpr std::uint32_t kPagesPerChunk = 256;  // 1 MiB of input at a time
  std::vector<std::byte> in(kPagesPerChunk * log::kPageSize);
  std::vector<char> out(ZSTD_CStreamOutSize());
  for (std::uint32_t p = 1; p <= n;) {
    const std::uint32_t count = std::min(kPagesPerChunk, n - p + 1);
    for (std::uint32_t i = 0; i < count; ++i) {
      auto r = pages.read_page(p + i, std::span(in.data() + i * log::kPageSize, log::kPageSize));
      if (!r)
        return unexpected(error(BackupErrc::kIo, "reading page " + std::to_string(p + i) +
                                                     " for " + key + ": " + r.error().message));
    }
    p += count;
    const bool last = p > n;
    ZSTD_inBuffer ib{in.data(), count * log::kPageSize, 0};
    for (;;) {
      ZSTD_outBuffer ob{out.data(), out.size(), 0};
      const std::size_t rem = ZSTD_compressStream2(cctx.p, &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
      if (ZSTD_isError(rem))
        return unexpected(error(BackupErrc::kIo, key + ": zstd: " + ZSTD_getErrorName(rem)));
      if (ob.pos > 0)
        if (auto r = emit_body(out.data(), ob.pos); !r) return unexpected(std::move(r.error()));
      if (last ? rem == 0 : ib.pos == ib.size) break;
    }
    if (progress) progress(p - 1, n);
  }
  std::uint8_t trailer[detail::kTrailerSize];
  detail::encode_trailer({static_cast<std::uint64_t>(n) * log::kPageSize, {}}, trailer);
  if (auto r = emit_body(trailer, sizeof trailer); !r) return unexpected(std::move(r.error()));
  if (sealer) {
    const std::string last = sealer->finish();
    if (auto r = emit(last.data(), last.size()); !r) return unexpected(std::move(r.error()));
  }
  auto done = (*writer)->complete();
  if (!done) return unexpected(storage_failure("uploading " + key, done.error()));
  ++objects_written_;
  auto sha = object_sha.finish();
  entry.size = total;
  entry.sha256 = detail::to_hex(sha.data(), sha.size());

  auto& snaps = manifest_.snapshots;
  const auto saved = snaps;
  auto it = std::lower_bound(snaps.begin(), snaps.end(), frame,
                             [](const SnapshotEntry& s, log::Frame f) { return s.frame < f; });
  if (it != snaps.end() && it->frame == frame) *it = entry;
  else snaps.insert(it, entry);
  if (auto r = write_manifest(); !r) {
    snaps = saved;
    return unexpected(std::move(r.error()));
  }
  if (auto r = register_lineage(); !r) return unexpected(std::move(r.error()));
  return entry;
}

BackupResult<BatchEntry> BackupWriter::upload_batch(std::span<const log::Transaction> txns,
                                                    log::Frame first_frame) {
  if (txns.empty()) return unexpected(error(BackupErrc::kInvalidArgument, "empty batch"));
  if (auto r = start_batch(first_frame); !r) return unexpected(std::move(r.error()));
  for (const auto& t : txns) {
    if (t.pages.size() != t.page_count() * log::kPageSize) {
      building_.reset();
      return unexpected(error(BackupErrc::kInvalidArgument, "malformed transaction"));
    }
    if (auto r = add_to_batch(log::TransactionView::of(t)); !r) return unexpected(std::move(r.error()));
  }
  return finish_batch();
}

BackupResult<void> BackupWriter::start_batch(log::Frame first_frame) {
  building_.reset();
  const log::Frame expect = last_frame() + 1;
  if (first_frame != expect)
    return unexpected(error(
        BackupErrc::kInvalidArgument,
        last_frame() == 0
            ? "the first batch of a lineage must start at frame 1 (or upload a snapshot first)"
            : "batch starts at frame " + std::to_string(first_frame) + ", expected " +
                  std::to_string(expect)));
  BatchScratch& scratch = batch_scratch();
  scratch.owner = this;
  Building b;
  b.generation = ++scratch.generation;
  b.first_frame = first_frame;
  b.next_frame = first_frame;
  b.last_commit_time_us = std::numeric_limits<std::int64_t>::min();
  if (auto e = manifest_.batch_extent()) b.last_commit_time_us = e->last_commit_time_us;
  building_ = b;
  return {};
}

BackupResult<void> BackupWriter::add_to_batch(const log::TransactionView& t) {
  auto bad = [this](std::string m) {
    building_.reset();
    return unexpected(error(BackupErrc::kInvalidArgument, std::move(m)));
  };
  if (!building_) return bad("add_to_batch without start_batch");
  Building& b = *building_;
  BatchScratch& scratch = batch_scratch();
  if (scratch.owner != this || scratch.generation != b.generation)
    return bad("the batch was abandoned: another batch was started on this thread");
  if (t.page_count() == 0 || t.db_size == 0) return bad("malformed transaction");
  for (auto p : t.pgnos)
    if (p == 0) return bad("page number 0");
  if (t.commit_time_us < b.last_commit_time_us) return bad("commit times decrease");

  // The content: per transaction a header, then (page number, image) per page.
  const std::size_t len = detail::kTxnHeaderSize + t.page_count() * detail::kPageRecordSize;
  ScratchBuffer& content = scratch.content;
  auto* w = reinterpret_cast<std::uint8_t*>(content.grow(b.content_len + len)) +
            b.content_len;
  detail::put_u64(w, b.next_frame);
  detail::put_u32(w + 8, static_cast<std::uint32_t>(t.page_count()));
  detail::put_u32(w + 12, t.db_size);
  detail::put_u64(w + 16, static_cast<std::uint64_t>(t.commit_time_us));
  w += detail::kTxnHeaderSize;
  for (std::size_t i = 0; i < t.page_count(); ++i) {
    detail::put_u32(w, t.pgnos[i]);
    std::memcpy(w + 4, t.page(i).data(), log::kPageSize);
    w += detail::kPageRecordSize;
  }
  if (b.txns == 0) {
    b.first_page_count = static_cast<std::uint32_t>(t.page_count());
    b.first_commit_time_us = t.commit_time_us;
  }
  b.content_len += len;
  b.next_frame += t.page_count();
  b.last_commit_time_us = t.commit_time_us;
  b.db_size = t.db_size;
  ++b.txns;
  return {};
}

BackupResult<BatchEntry> BackupWriter::finish_batch() {
  if (!building_ || building_->txns == 0) {
    building_.reset();
    return unexpected(error(BackupErrc::kInvalidArgument, "empty batch"));
  }
  const Building b = *building_;
  building_.reset();
  BatchScratch& scratch = batch_scratch();
  if (scratch.owner != this || scratch.generation != b.generation)
    return unexpected(error(BackupErrc::kInvalidArgument,
                            "the batch was abandoned: another batch was started on this thread"));
  const std::string_view content(scratch.content.data(), b.content_len);
  const log::Frame first_frame = b.first_frame;
  const log::Frame f = b.next_frame;

  BatchEntry entry;
  entry.first_frame = first_frame;
  entry.last_frame = f - 1;
  entry.first_commit_frame = first_frame + b.first_page_count - 1;
  entry.first_commit_time_us = b.first_commit_time_us;
  entry.last_commit_time_us = b.last_commit_time_us;
  entry.txns = b.txns;
  entry.db_size = b.db_size;
  entry.key = batch_key(entry.first_frame);
  const std::string key = lineage_key(entry.key);

  // object = header ‖ body, body = zstd payload ‖ trailer (sealed when encrypting). Unencrypted,
  // the payload is compressed in place behind the header; encrypted, the body is sealed from
  // there into a string of its own.
  const std::size_t body_cap = ZSTD_compressBound(content.size()) + detail::kTrailerSize;
  auto* obj = reinterpret_cast<std::uint8_t*>(
      scratch.object.reserve(detail::kHeaderSize + body_cap));
  std::uint8_t* body = obj + detail::kHeaderSize;
  ZSTD_CCtx_reset(scratch.cctx.p, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(scratch.cctx.p, ZSTD_c_compressionLevel, zstd_level);
  ZSTD_CCtx_setParameter(scratch.cctx.p, ZSTD_c_checksumFlag, 1);
  const std::size_t clen = ZSTD_compress2(scratch.cctx.p, body, body_cap - detail::kTrailerSize,
                                          content.data(), content.size());
  if (ZSTD_isError(clen))
    return unexpected(error(BackupErrc::kIo, key + ": zstd: " + ZSTD_getErrorName(clen)));
  // The content's integrity check is zstd's own checksum (kFlagZstdChecksum), computed as it
  // compresses: a SHA-256 over every page image as well cost a third of this thread's CPU.
  detail::encode_trailer({content.size(), {}}, body + clen);
  const std::size_t body_len = clen + detail::kTrailerSize;
  detail::ObjectHeader h{detail::ObjectKind::kBatch, manifest_.log_id, entry.first_frame,
                         entry.last_frame, entry.db_size, entry.txns, entry.first_commit_time_us,
                         entry.last_commit_time_us};
  h.flags = detail::kFlagZstdChecksum;
  h.first_commit_frame = entry.first_commit_frame;  // so that a tail entry is whole from its header
  std::string sealed_object;
  std::string_view object;
  if (auto sealer = start_sealing(h, obj)) {
    sealed_object.reserve(detail::kHeaderSize +
                          detail::sealed_length(body_len, options_.encryption_chunk_bytes));
    sealed_object.assign(reinterpret_cast<const char*>(obj), detail::kHeaderSize);
    sealed_object += sealer->update(body, body_len);
    sealed_object += sealer->finish();
    object = sealed_object;
  } else {
    object = std::string_view(reinterpret_cast<const char*>(obj), detail::kHeaderSize + body_len);
  }
  detail::Sha256 object_sha;
  object_sha.update(object.data(), object.size());
  auto sha = object_sha.finish();
  entry.size = object.size();
  entry.sha256 = detail::to_hex(sha.data(), sha.size());

  auto put = store_.put_large(key, object);
  scratch.trim();
  if (!put) return unexpected(storage_failure("uploading " + key, put.error()));
  ++objects_written_;
  // From here the batch is in the store at a key readers predict: it belongs to the lineage
  // whether or not the manifest names it yet.
  manifest_.batches.push_back(entry);
  ++unflushed_;
  if (manifest_due())
    if (auto r = write_manifest(); !r) return unexpected(std::move(r.error()));
  if (auto r = register_lineage(); !r) return unexpected(std::move(r.error()));
  return entry;
}

}  // namespace quire::backup
