// BackupReader and restore (docs/formats/backup.md, "Restore"): every object is checked against
// the manifest (size, SHA-256; not for a tail object, which has no entry yet), its header, its
// trailer and its decompressed content (length; zstd's checksum; in older objects without that
// flag, their content SHA-256, compared only for a tail object, where nothing else covers it)
// before any of it counts; a missing or damaged object is an error naming its
// key. Each lineage's tail is followed at open ("Manifest cadence").
//
// Thread model: restore() runs on the calling thread, which verifies, decompresses and writes;
// while it does, background threads of its own (an OrderedFetcher) fetch ahead, a bounded
// distance, into buffers the calling thread hands back: one for the ranges of the snapshot,
// hashing them in order as they arrive, then two for the batches, each fetching and hashing
// whole objects. They are joined before restore() returns, on every path.
#include <fcntl.h>
#include <zstd.h>

#include <algorithm>
#include <cassert>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <iterator>
#include <limits>
#include <map>
#include <mutex>
#include <thread>

#include "backup/backup.h"
#include "backup/chunk_cipher.h"
#include "backup/object_format.h"
#include "common/thread_name.h"
#include "log/file.h"

namespace quire::backup {

using detail::error;
using detail::storage_failure;

namespace {

struct DCtx {
  ZSTD_DCtx* p = ZSTD_createDCtx();
  ~DCtx() { ZSTD_freeDCtx(p); }
};

BackupError corrupt(const std::string& key, const std::string& why) {
  return error(BackupErrc::kCorrupt, key + ": " + why);
}

BackupError io(const std::string& what, const log::LogError& e) {
  return error(BackupErrc::kIo, what + ": " + e.message);
}

const Manifest* find_lineage(const std::vector<Manifest>& ls, const log::LogId& id) {
  for (const auto& m : ls)
    if (m.log_id == id) return &m;
  return nullptr;
}

// The error for a log id that names none of `lineages`: names the ones there are.
BackupError no_such_lineage(const std::vector<Manifest>& lineages, const log::LogId& id) {
  std::string known;
  for (const auto& l : lineages) known += (known.empty() ? "" : ", ") + log::format_log_id(l.log_id);
  return error(BackupErrc::kNoBackup,
               "no lineage " + log::format_log_id(id) + " (this backup has: " + known + ")");
}

// Checks an object's header against what the manifest says about it.
BackupResult<detail::ObjectHeader> check_header(const std::string& key, const std::uint8_t* bytes,
                                                detail::ObjectKind kind, const log::LogId& id) {
  std::string why;
  auto h = detail::decode_header(bytes, why);
  if (!h) return unexpected(corrupt(key, why));
  if (h->kind != kind) return unexpected(corrupt(key, "wrong object kind"));
  if (h->log_id != id) return unexpected(corrupt(key, "belongs to another log id"));
  return *h;
}

// How the reader's key (if any) fits the object: kEncryption when it needs a key that was not
// given or is another one, or is in clear while a key was given (unless that is allowed).
BackupResult<void> check_encryption(const std::string& key, const detail::ObjectHeader& h,
                                    const EncryptionKey* k, bool allow_unencrypted) {
  if (h.encrypted()) {
    const std::string id = detail::to_hex(h.key_id.data(), h.key_id.size());
    if (k == nullptr)
      return unexpected(error(BackupErrc::kEncryption,
                              key + ": encrypted (AES-256-GCM, key id " + id +
                                  ") and no encryption key was given"));
    if (h.key_id != k->id())
      return unexpected(error(BackupErrc::kEncryption,
                              key + ": encrypted with another key (key id " + id +
                                  "; the given key's id is " + k->id_hex() + ")"));
    return {};
  }
  if (k != nullptr && !allow_unencrypted)
    return unexpected(error(BackupErrc::kEncryption,
                            key + ": not encrypted, but an encryption key was given (refusing an "
                                  "object anyone with write access to the store could have made)"));
  return {};
}

// How far ahead a restore fetches: whole batches (on kBatchFetchers threads), or ranges of a
// snapshot (read_chunk_bytes each, on one thread: its SHA-256 runs over the ranges in order). No
// fetch starts once kPrefetchBytes are waiting, so at most that plus a piece per fetching thread
// is held ahead of the one being applied.
constexpr std::size_t kPrefetchBatches = 4;
constexpr std::size_t kBatchFetchers = 2;  // batches are fetched and hashed two at a time
constexpr std::size_t kPrefetchChunks = 3;
constexpr std::uint64_t kPrefetchBytes = 48u << 20;

// A piece of an object fetched ahead: a whole object (offset 0) or a range of one.
struct Piece {
  std::string key;
  std::uint64_t offset = 0;
  storage::StorageResult<std::string> got;
  std::string sha256;  // of a whole object fetched ahead, in hex, when the fetcher computed it
};

std::string sha256_hex(std::string_view bytes) {
  detail::Sha256 h;
  h.update(bytes.data(), bytes.size());
  const auto sha = h.finish();
  return detail::to_hex(sha.data(), sha.size());
}

// Buffers handed from the thread that applies pieces back to the one that fetches them, so a
// restore reads a snapshot through a few reused buffers instead of a fresh (zero-filled,
// page-faulted) allocation per range. Thread-safe.
class BufferPool {
 public:
  std::string take() {
    std::lock_guard lk(mu_);
    if (free_.empty()) return {};
    std::string b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  void give(std::string b) {
    std::lock_guard lk(mu_);
    free_.push_back(std::move(b));
  }

 private:
  std::mutex mu_;
  std::vector<std::string> free_;
};

// Fetches pieces 0..count-1, each on its own (`fetch(i)`), on `workers` background threads, and
// hands them out in order with next(): at most `max_ahead` pieces are fetched or being fetched
// beyond the last one taken, and none starts once `max_bytes` are waiting. For a restore's
// batches, whose GETs and SHA-256s are independent: on object storage a restore is bound by
// request latency, which two requests in flight halve.
//
// Thread model: next() from the thread that made it only; `fetch` runs on the workers,
// concurrently for different pieces. The destructor stops the workers (a fetch in flight
// finishes, none starts) and joins them.
class OrderedFetcher {
 public:
  using FetchFn = std::function<Piece(std::size_t)>;

  OrderedFetcher(std::size_t count, FetchFn fetch, std::size_t workers, std::size_t max_ahead,
                 std::uint64_t max_bytes)
      : count_(count), fetch_(std::move(fetch)), max_ahead_(max_ahead), max_bytes_(max_bytes) {
    assert(workers > 0 && max_ahead_ > 0);
    for (std::size_t i = 0; i < workers; ++i)
      workers_.emplace_back([this] {
        name_this_thread("quire-fetch");
        run();
      });
  }
  ~OrderedFetcher() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  OrderedFetcher(const OrderedFetcher&) = delete;
  OrderedFetcher& operator=(const OrderedFetcher&) = delete;

  // Piece i, for i = 0, 1, ... in turn, waiting for it; nullopt after the last. An exception
  // thrown by `fetch` (out of memory) is rethrown here, in its place in the order.
  std::optional<Piece> next() {
    std::unique_lock lk(mu_);
    if (next_out_ == count_) return std::nullopt;
    cv_.wait(lk, [&] { return done_.count(next_out_) > 0 || thrown_.count(next_out_) > 0; });
    if (auto t = thrown_.find(next_out_); t != thrown_.end()) std::rethrow_exception(t->second);
    auto it = done_.find(next_out_);
    Piece p = std::move(it->second);
    done_.erase(it);
    ++next_out_;
    ready_bytes_ -= p.got ? p.got->size() : 0;
    lk.unlock();
    cv_.notify_all();
    return p;
  }

 private:
  void run() {
    for (;;) {
      std::size_t i;
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] {
          return stop_ || next_claim_ == count_ ||
                 (next_claim_ < next_out_ + max_ahead_ && ready_bytes_ < max_bytes_);
        });
        if (stop_ || next_claim_ == count_) return;
        i = next_claim_++;
      }
      std::optional<Piece> p;
      std::exception_ptr thrown;
      try {
        p = fetch_(i);
      } catch (...) {
        thrown = std::current_exception();
      }
      {
        std::lock_guard lk(mu_);
        if (thrown) {
          thrown_.emplace(i, thrown);
        } else {
          ready_bytes_ += p->got ? p->got->size() : 0;
          done_.emplace(i, std::move(*p));
        }
      }
      cv_.notify_all();
    }
  }

  const std::size_t count_;
  FetchFn fetch_;
  const std::size_t max_ahead_;
  const std::uint64_t max_bytes_;
  std::mutex mu_;
  std::condition_variable cv_;  // every way: a piece done, one taken, stop
  std::size_t next_claim_ = 0;  // guarded by mu_, as are the five below
  std::size_t next_out_ = 0;
  std::map<std::size_t, Piece> done_;
  std::map<std::size_t, std::exception_ptr> thrown_;
  std::uint64_t ready_bytes_ = 0;
  bool stop_ = false;
  std::vector<std::thread> workers_;  // last: started once everything above exists
};

// Starts writeback of the restored file while it is being written: after every kWriteBehind
// bytes, sync_file_range(SYNC_FILE_RANGE_WRITE) over the range written since the last one, so
// that the disk writes overlap the rest of the restore and the final fdatasync finds little
// left. Best effort: a failure here leaves the writeback to the kernel, and a write error
// surfaces from that fdatasync anyway.
class WriteBehind {
 public:
  explicit WriteBehind(const log::File& f) : fd_(f.fd()) {}
  void wrote(off_t offset, std::uint64_t n) {
    lo_ = std::min(lo_, offset);
    hi_ = std::max(hi_, offset + static_cast<off_t>(n));
    pending_ += n;
    if (pending_ < kWriteBehind) return;
    ::sync_file_range(fd_, lo_, hi_ - lo_, SYNC_FILE_RANGE_WRITE);
    lo_ = std::numeric_limits<off_t>::max();
    hi_ = 0;
    pending_ = 0;
  }

 private:
  static constexpr std::uint64_t kWriteBehind = 64u << 20;
  const int fd_;
  off_t lo_ = std::numeric_limits<off_t>::max();
  off_t hi_ = 0;
  std::uint64_t pending_ = 0;
};

// The body of a snapshot (zstd payload ‖ trailer) fed in order: the payload is decompressed into
// `out`, the trailer kept. The content's SHA-256 is computed and compared only when
// `check_content_sha` (see read_snapshot); with `zstd_checksum` (kFlagZstdChecksum) the payload
// must start with a frame that carries zstd's content checksum, which zstd verifies.
class SnapshotBody {
 public:
  SnapshotBody(const std::string& key, const log::File& out, WriteBehind& behind,
               std::uint64_t body_len, std::uint64_t content_len, bool check_content_sha,
               bool zstd_checksum)
      : key_(key), out_(out), behind_(behind), payload_len_(body_len - detail::kTrailerSize),
        content_len_(content_len), check_content_sha_(check_content_sha),
        zstd_checksum_(zstd_checksum),
        outbuf_(std::max<std::size_t>(ZSTD_DStreamOutSize(), kOutBytes)) {}

  BackupResult<void> feed(const std::uint8_t* d, std::size_t len) {
    while (len > 0) {
      if (pos_ < payload_len_) {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(len, payload_len_ - pos_));
        if (pos_ == 0 && zstd_checksum_) {  // the first piece holds at least the frame's header
          const std::string bad = detail::check_checksummed_zstd(d, n, /*whole=*/false);
          if (!bad.empty()) return unexpected(corrupt(key_, bad));
        }
        ZSTD_inBuffer ib{d, n, 0};
        while (ib.pos < ib.size)
          if (auto r = step(ib); !r) return r;
        d += n;
        len -= n;
        pos_ += n;
      } else {
        const std::size_t at = static_cast<std::size_t>(pos_ - payload_len_);
        if (len > detail::kTrailerSize - at) return unexpected(corrupt(key_, "body too long"));
        std::memcpy(trailer_ + at, d, len);
        pos_ += len;
        len = 0;
      }
    }
    return {};
  }

  // After the whole body: flushes zstd and checks the trailer.
  BackupResult<void> finish() {
    while (last_ret_ != 0) {
      ZSTD_inBuffer ib{nullptr, 0, 0};
      const std::uint64_t before = written_;
      if (auto r = step(ib); !r) return r;
      if (written_ == before) break;
    }
    if (last_ret_ != 0) return unexpected(corrupt(key_, "truncated zstd stream"));
    if (pos_ != payload_len_ + detail::kTrailerSize) return unexpected(corrupt(key_, "body too short"));
    std::string why;
    auto t = detail::decode_trailer(trailer_, why);
    if (!t) return unexpected(corrupt(key_, why));
    if (t->content_length != content_len_ || written_ != content_len_)
      return unexpected(corrupt(key_, "content length mismatch"));
    if (check_content_sha_ && content_sha_.finish() != t->content_sha256)
      return unexpected(corrupt(key_, "content SHA-256 mismatch"));
    return {};
  }

 private:
  BackupResult<void> step(ZSTD_inBuffer& ib) {
    ZSTD_outBuffer ob{outbuf_.data(), outbuf_.size(), 0};
    last_ret_ = ZSTD_decompressStream(dctx_.p, &ob, &ib);
    if (ZSTD_isError(last_ret_))
      return unexpected(corrupt(key_, std::string("zstd: ") + ZSTD_getErrorName(last_ret_)));
    if (ob.pos > 0) {
      if (written_ + ob.pos > content_len_)
        return unexpected(corrupt(key_, "more pages than the header says"));
      if (check_content_sha_) content_sha_.update(outbuf_.data(), ob.pos);
      auto w = out_.write_at(outbuf_.data(), ob.pos, static_cast<off_t>(written_));
      if (!w) return unexpected(io("writing restored pages", w.error()));
      behind_.wrote(static_cast<off_t>(written_), ob.pos);
      written_ += ob.pos;
    }
    return {};
  }

  static constexpr std::size_t kOutBytes = 1u << 20;  // decompressed bytes per pwrite

  const std::string& key_;
  const log::File& out_;
  WriteBehind& behind_;
  const std::uint64_t payload_len_;
  const std::uint64_t content_len_;
  const bool check_content_sha_;
  const bool zstd_checksum_;
  std::uint64_t pos_ = 0;  // body bytes fed
  std::uint64_t written_ = 0;
  std::size_t last_ret_ = 1;
  DCtx dctx_;
  std::vector<char> outbuf_;
  detail::Sha256 content_sha_;
  std::uint8_t trailer_[detail::kTrailerSize];
};

// Streams a snapshot object into `out` at offset 0 with every check. `progress` gets the stored
// bytes read so far. The ranges are fetched ahead (kPrefetchChunks) while earlier ones are
// verified and written.
BackupResult<void> read_snapshot(storage::ObjectStore& store, const std::string& key,
                                 const SnapshotEntry& e, const log::LogId& id,
                                 const log::File& out, WriteBehind& behind, std::uint64_t chunk,
                                 const EncryptionKey* enc_key, bool allow_unencrypted,
                                 const std::function<void(std::uint64_t)>& progress) {
  chunk = std::max<std::uint64_t>(chunk, 4096);
  auto head = store.head(key);
  if (!head) return unexpected(storage_failure("snapshot " + key, head.error()));
  if (head->size != e.size)
    return unexpected(corrupt(key, "size " + std::to_string(head->size) + ", manifest says " +
                                       std::to_string(e.size)));
  const std::uint64_t size = e.size;
  if (size < detail::kHeaderSize + detail::kTrailerSize)
    return unexpected(corrupt(key, "too short"));
  const std::uint64_t content_len = static_cast<std::uint64_t>(e.db_size) * log::kPageSize;
  // One fetching thread, so that fetch(i) runs for i = 0, 1, ... in turn: the SHA-256 of the
  // stored bytes is computed there as each range arrives, overlapping decompressing and writing.
  // It is read here only after the last piece was taken, which orders it after the last update.
  detail::Sha256 object_sha;
  BufferPool buffers;
  OrderedFetcher ahead(
      static_cast<std::size_t>((size + chunk - 1) / chunk),
      [&](std::size_t i) -> Piece {
        const std::uint64_t at = i * chunk;
        std::string buf = buffers.take();
        auto r = store.get_range_into(key, at, std::min(chunk, size - at), buf);
        if (!r) return Piece{key, at, unexpected(std::move(r).error()), {}};
        object_sha.update(reinterpret_cast<const std::uint8_t*>(buf.data()), buf.size());
        return Piece{key, at, std::move(buf), {}};
      },
      1, kPrefetchChunks, kPrefetchBytes);
  // The object's SHA-256 against the manifest's covers every stored byte, so the trailer's
  // SHA-256 of the decompressed content in older objects adds nothing to it (zstd and the chunk
  // cipher are deterministic: the same stored bytes always give the same content) and is not
  // computed; its length is still checked. Computing it cost a second pass over the whole
  // database.
  const bool check_content_sha = e.sha256.empty();
  std::optional<SnapshotBody> body;
  std::unique_ptr<detail::ChunkOpener> opener;
  std::string plain;
  for (std::uint64_t off = 0; off < size;) {
    auto piece = ahead.next();
    // The pieces are the ranges this loop walks, in order, each one chunk (the last one shorter).
    assert(piece && piece->offset == off);
    if (!piece) return unexpected(corrupt(key, "shorter than the manifest says"));
    auto& got = piece->got;
    if (!got) return unexpected(storage_failure("snapshot " + key, got.error()));
    const auto* d = reinterpret_cast<const std::uint8_t*>(got->data());
    std::uint64_t len = got->size();
    if (len < std::min(chunk, size - off))
      return unexpected(corrupt(key, "shorter than the manifest says"));
    if (len > size - off) return unexpected(corrupt(key, "longer than the manifest says"));
    const bool first = off == 0;
    off += len;
    if (first) {  // the header is in the first piece (chunk >= 4096)
      if (len < detail::kHeaderSize) return unexpected(corrupt(key, "short read"));
      auto h = check_header(key, d, detail::ObjectKind::kSnapshot, id);
      if (!h) return unexpected(std::move(h).error());
      if (h->first_frame != e.frame || h->last_frame != e.frame || h->db_size != e.db_size ||
          h->first_time_us != e.commit_time_us)
        return unexpected(corrupt(key, "header disagrees with the manifest"));
      if (auto r = check_encryption(key, *h, enc_key, allow_unencrypted); !r)
        return unexpected(std::move(r.error()));
      std::uint64_t body_len = size - detail::kHeaderSize;
      if (h->encrypted()) {
        auto opened = detail::opened_length(body_len, h->chunk_bytes);
        if (!opened || *opened < detail::kTrailerSize)
          return unexpected(corrupt(key, "size does not fit its encrypted chunks"));
        opener = std::make_unique<detail::ChunkOpener>(*enc_key, d, h->chunk_bytes, h->nonce,
                                                       body_len);
        body_len = *opened;
      }
      body.emplace(key, out, behind, body_len, content_len,
                   check_content_sha && !h->zstd_checksum(), h->zstd_checksum());
      d += detail::kHeaderSize;
      len -= detail::kHeaderSize;
    }
    if (opener) {
      plain.clear();
      std::string why;
      if (!opener->update(d, len, plain, why)) return unexpected(corrupt(key, why));
      if (auto r = body->feed(reinterpret_cast<const std::uint8_t*>(plain.data()), plain.size()); !r)
        return r;
    } else if (auto r = body->feed(d, len); !r) {
      return r;
    }
    buffers.give(std::move(got.value()));
    if (progress) progress(off);
  }
  auto sha = object_sha.finish();
  if (detail::to_hex(sha.data(), sha.size()) != e.sha256)
    return unexpected(corrupt(key, "SHA-256 does not match the manifest"));
  if (opener && !opener->done()) return unexpected(corrupt(key, "truncated encrypted body"));
  return body->finish();
}

struct BatchTxn {
  log::Frame first_frame;
  std::uint32_t pages;
  std::uint32_t db_size;
  std::int64_t commit_time_us;
  const std::uint8_t* records;  // pages × (pgno, image)
};

// Verifies and decodes a batch, `got` being the store's answer to a GET of it and `got_sha256`
// the SHA-256 of those bytes in hex when the caller computed it already (empty otherwise);
// `content` keeps the bytes the result points into.
BackupResult<std::vector<BatchTxn>> read_batch(const storage::StorageResult<std::string>& got,
                                               const std::string& got_sha256,
                                               const std::string& key, const BatchEntry& e,
                                               const log::LogId& id, std::string& content,
                                               const EncryptionKey* enc_key,
                                               bool allow_unencrypted, std::uint64_t& stored_size) {
  if (!got) return unexpected(storage_failure("batch " + key, got.error()));
  const std::string& obj = got.value();
  stored_size = obj.size();
  // A tail entry (not in the stored manifest yet) has no size or hash to compare: the header,
  // the trailer and the content's checksum below (zstd's, or a SHA-256 in older objects) still
  // check every byte.
  const bool tail = e.sha256.empty();
  if (!tail && obj.size() != e.size)
    return unexpected(corrupt(key, "size " + std::to_string(obj.size()) + ", manifest says " +
                                       std::to_string(e.size)));
  if (!tail && (got_sha256.empty() ? sha256_hex(obj) : got_sha256) != e.sha256)
    return unexpected(corrupt(key, "SHA-256 does not match the manifest"));
  if (obj.size() < detail::kHeaderSize + detail::kTrailerSize)
    return unexpected(corrupt(key, "too short"));
  const auto* d = reinterpret_cast<const std::uint8_t*>(obj.data());
  auto h = check_header(key, d, detail::ObjectKind::kBatch, id);
  if (!h) return unexpected(std::move(h).error());
  if (h->first_frame != e.first_frame || h->last_frame != e.last_frame || h->txns != e.txns ||
      h->db_size != e.db_size || h->first_time_us != e.first_commit_time_us ||
      h->last_time_us != e.last_commit_time_us ||
      (h->first_commit_frame != 0 && h->first_commit_frame != e.first_commit_frame))
    return unexpected(corrupt(key, tail ? "header changed since it was first read"
                                        : "header disagrees with the manifest"));
  if (auto r = check_encryption(key, *h, enc_key, allow_unencrypted); !r)
    return unexpected(std::move(r.error()));
  // The body: zstd payload ‖ trailer (opened first when encrypted).
  const std::uint8_t* body = d + detail::kHeaderSize;
  std::size_t body_len = obj.size() - detail::kHeaderSize;
  std::string plain;
  std::string why;
  if (h->encrypted()) {
    auto opened = detail::opened_length(body_len, h->chunk_bytes);
    if (!opened || *opened < detail::kTrailerSize)
      return unexpected(corrupt(key, "size does not fit its encrypted chunks"));
    detail::ChunkOpener opener(*enc_key, d, h->chunk_bytes, h->nonce, body_len);
    plain.reserve(*opened);
    if (!opener.update(body, body_len, plain, why)) return unexpected(corrupt(key, why));
    body = reinterpret_cast<const std::uint8_t*>(plain.data());
    body_len = plain.size();
  }
  auto t = detail::decode_trailer(body + body_len - detail::kTrailerSize, why);
  if (!t) return unexpected(corrupt(key, why));
  const std::uint64_t frames = e.last_frame - e.first_frame + 1;
  if (t->content_length !=
      e.txns * detail::kTxnHeaderSize + frames * detail::kPageRecordSize)
    return unexpected(corrupt(key, "content length disagrees with its frames"));
  if (h->zstd_checksum()) {
    const std::string bad =
        detail::check_checksummed_zstd(body, body_len - detail::kTrailerSize, /*whole=*/true);
    if (!bad.empty()) return unexpected(corrupt(key, bad));
  }
  // Sized, not cleared: the decompression below writes every byte (n is checked), and a buffer
  // reused from the previous batch is then neither zero-filled nor reallocated.
  content.resize(t->content_length);
  const std::size_t n = ZSTD_decompress(content.data(), content.size(), body,
                                        body_len - detail::kTrailerSize);
  if (ZSTD_isError(n)) return unexpected(corrupt(key, std::string("zstd: ") + ZSTD_getErrorName(n)));
  if (n != content.size()) return unexpected(corrupt(key, "content length mismatch"));
  // Only for a tail entry is the content's SHA-256 computed: otherwise the object's SHA-256
  // matched the manifest's above, which covers every stored byte, and the content is a
  // deterministic function of them (zstd, the chunk cipher), so its hash would check nothing
  // more, for the cost of a second pass over every page.
  // Objects since kFlagZstdChecksum carry no content SHA-256: zstd verified its own checksum of
  // the content above (ZSTD_decompress fails on a mismatch), and the frame was checked to have one.
  if (tail && !h->zstd_checksum()) {
    detail::Sha256 content_sha;
    content_sha.update(content.data(), content.size());
    if (content_sha.finish() != t->content_sha256)
      return unexpected(corrupt(key, "content SHA-256 mismatch"));
  }

  std::vector<BatchTxn> txns;
  const auto* p = reinterpret_cast<const std::uint8_t*>(content.data());
  const auto* end = p + content.size();
  log::Frame next = e.first_frame;
  std::int64_t prev_time = std::numeric_limits<std::int64_t>::min();
  for (std::uint32_t i = 0; i < e.txns; ++i) {
    if (end - p < static_cast<std::ptrdiff_t>(detail::kTxnHeaderSize))
      return unexpected(corrupt(key, "truncated transaction"));
    BatchTxn x{detail::get_u64(p), detail::get_u32(p + 8), detail::get_u32(p + 12),
               static_cast<std::int64_t>(detail::get_u64(p + 16)), p + detail::kTxnHeaderSize};
    if (x.first_frame != next || x.pages == 0 || x.db_size == 0 || x.commit_time_us < prev_time)
      return unexpected(corrupt(key, "transaction " + std::to_string(i) + " is malformed"));
    p += detail::kTxnHeaderSize;
    if (static_cast<std::uint64_t>(end - p) < std::uint64_t{x.pages} * detail::kPageRecordSize)
      return unexpected(corrupt(key, "truncated transaction"));
    for (std::uint32_t k = 0; k < x.pages; ++k)
      if (detail::get_u32(p + k * detail::kPageRecordSize) == 0)
        return unexpected(corrupt(key, "page number 0"));
    p += std::uint64_t{x.pages} * detail::kPageRecordSize;
    next += x.pages;
    prev_time = x.commit_time_us;
    txns.push_back(x);
  }
  if (p != end || next != e.last_frame + 1 || txns.back().db_size != e.db_size ||
      txns.front().first_frame + txns.front().pages - 1 != e.first_commit_frame ||
      txns.front().commit_time_us != e.first_commit_time_us ||
      txns.back().commit_time_us != e.last_commit_time_us)
    return unexpected(corrupt(key, "transactions disagree with the header"));
  return txns;
}

// The batches step 3 of restore() reads, in its order, when every transaction up to the target
// applies: it reads a prefix of them (all of them unless it stops inside one or fails). Follows
// the loop's rules: from frame `from`, skip batches that end before the next frame, stop at the
// target or at a hole (the loop reports the hole).
std::vector<const BatchEntry*> batches_to_read(const std::vector<BatchEntry>& batches,
                                               log::Frame from, log::Frame limit_frame,
                                               std::int64_t limit_time) {
  std::vector<const BatchEntry*> v;
  log::Frame expected = from;
  for (const auto& b : batches) {
    if (expected > limit_frame) break;
    if (b.last_frame < expected) continue;
    if (b.first_commit_time_us > limit_time && b.first_frame >= expected) break;
    if (b.first_frame > expected) break;
    v.push_back(&b);
    expected = b.last_frame + 1;
  }
  return v;
}

// Writes a transaction's pages, each run of consecutive page numbers with one gathered write.
// `parts` is scratch space kept between calls. Returns the highest page number written.
BackupResult<std::uint32_t> write_pages(const log::File& file, WriteBehind& behind,
                                        const BatchTxn& t,
                                        std::vector<std::span<const std::byte>>& parts) {
  std::uint32_t max_pgno = 0;
  for (std::uint32_t k = 0; k < t.pages;) {
    const std::uint32_t first = detail::get_u32(t.records + k * detail::kPageRecordSize);
    parts.clear();
    std::uint32_t pgno = first;
    do {
      const std::uint8_t* image = t.records + k * detail::kPageRecordSize + 4;
      parts.emplace_back(reinterpret_cast<const std::byte*>(image), log::kPageSize);
      ++k;
      ++pgno;
    } while (k < t.pages && detail::get_u32(t.records + k * detail::kPageRecordSize) == pgno);
    const off_t at = static_cast<off_t>(first - 1) * log::kPageSize;
    auto w = file.write_gather_at(parts, at);
    if (!w) return unexpected(io("writing restored pages", w.error()));
    behind.wrote(at, std::uint64_t{parts.size()} * log::kPageSize);
    max_pgno = std::max(max_pgno, pgno - 1);
  }
  return max_pgno;
}

// The batches step 3 of restore() goes through from start frame `from`: those under the indexes
// it may need, fetched (an index of level k > 1 by its entries, in turn), then the unsealed ones.
// An index it cannot need (one that begins past the target) is not fetched; in its place goes
// one entry with its first frame and first commit time, at which the loop stops (or reports the
// hole before it), and nothing after it.
class BatchLister {
 public:
  BatchLister(storage::ObjectStore& store, const std::string& dir, const log::LogId& log_id,
              log::Frame from, log::Frame limit_frame, std::int64_t limit_time)
      : store_(store), dir_(dir), log_id_(log_id), from_(from), limit_frame_(limit_frame),
        limit_time_(limit_time) {}

  BackupResult<std::vector<BatchEntry>> list(const Manifest& m) {
    auto walked = walk(m.indexes);
    if (!walked) return unexpected(std::move(walked).error());
    if (*walked) out_.insert(out_.end(), m.batches.begin(), m.batches.end());
    return std::move(out_);
  }

 private:
  // false once it stopped at an index past the target.
  BackupResult<bool> walk(const std::vector<IndexEntry>& entries) {
    for (const auto& i : entries) {
      if (i.last_frame <= from_) continue;
      if (i.first_frame > limit_frame_ || i.first_commit_time_us > limit_time_) {
        BatchEntry stop;
        stop.key = i.key;
        stop.first_frame = i.first_frame;
        stop.last_frame = i.last_frame;
        stop.first_commit_time_us = i.first_commit_time_us;
        out_.push_back(std::move(stop));
        return false;
      }
      if (i.level <= 1) {
        auto listed = read_index(store_, dir_, log_id_, i);
        if (!listed) return unexpected(std::move(listed).error());
        std::move(listed->begin(), listed->end(), std::back_inserter(out_));
      } else {
        auto listed = read_index_entries(store_, dir_, log_id_, i);
        if (!listed) return unexpected(std::move(listed).error());
        auto below = walk(*listed);
        if (!below || !*below) return below;
      }
    }
    return true;
  }

  storage::ObjectStore& store_;
  const std::string& dir_;
  const log::LogId& log_id_;
  const log::Frame from_, limit_frame_;
  const std::int64_t limit_time_;
  std::vector<BatchEntry> out_;
};

}  // namespace

namespace detail {

BackupResult<RestorableRange> range_of(const Manifest& m) {
  RestorableRange r;
  r.log_id = m.log_id;
  const auto extent = m.batch_extent();
  const bool from_empty = extent && extent->first_frame == 1;
  if (m.snapshots.empty() && !from_empty)
    return unexpected(error(BackupErrc::kOutOfRange,
                            "lineage " + log::format_log_id(m.log_id) + " has no restorable point"));
  // Earliest start point.
  if (from_empty &&
      (m.snapshots.empty() || extent->first_commit_frame <= m.snapshots.front().frame)) {
    r.first_frame = extent->first_commit_frame;
    r.first_time_us = extent->first_commit_time_us;
  } else {
    r.first_frame = m.snapshots.front().frame;
    r.first_time_us = m.snapshots.front().commit_time_us;
  }
  // Furthest point reachable through contiguous batches from some start point. An index stands
  // for its batches, which are contiguous.
  bool reach = from_empty;
  log::Frame end = 0;
  std::int64_t end_time = 0;
  std::size_t si = 0;
  auto step = [&](log::Frame first, log::Frame last, std::int64_t last_time) {
    while (si < m.snapshots.size() && m.snapshots[si].frame <= last) {
      if (!reach || m.snapshots[si].frame > end) {
        end = m.snapshots[si].frame;
        end_time = m.snapshots[si].commit_time_us;
        reach = true;
      }
      ++si;
    }
    if (reach && first <= end + 1 && last > end) {
      end = last;
      end_time = last_time;
    }
  };
  for (const auto& i : m.indexes) step(i.first_frame, i.last_frame, i.last_commit_time_us);
  for (const auto& b : m.batches) step(b.first_frame, b.last_frame, b.last_commit_time_us);
  for (; si < m.snapshots.size(); ++si) {
    end = m.snapshots[si].frame;
    end_time = m.snapshots[si].commit_time_us;
  }
  r.last_frame = end;
  r.last_time_us = end_time;
  return r;
}

}  // namespace detail

using detail::range_of;

BackupResult<BackupReader> BackupReader::open(storage::ObjectStore& store, std::string prefix,
                                              const EncryptionKey* key) {
  auto norm = detail::normalize_prefix(std::move(prefix));
  if (!norm) return unexpected(std::move(norm).error());
  BackupReader r(store, *norm);
  if (key != nullptr) r.key_ = *key;
  auto lineages = detail::read_lineages(store, *norm);
  if (!lineages) return unexpected(std::move(lineages).error());
  if (!*lineages || (*lineages)->empty())
    return unexpected(error(BackupErrc::kNoBackup, "no backup under '" + *norm + "' (" +
                                                       detail::lineages_key(*norm) +
                                                       " not found in " + store.describe() + ")"));
  for (const auto& l : **lineages) {
    const std::string key = detail::manifest_key(*norm, l.log_id);
    auto got = store.get(key);
    if (!got) return unexpected(storage_failure("manifest " + key, got.error()));
    auto m = manifest_from_json(*got, key);
    if (!m) return unexpected(std::move(m).error());
    if (m->log_id != l.log_id) return unexpected(corrupt(key, "names another log id"));
    // Every lineage, not only the current one: a lineage that was current when its writer died
    // may have a tail too. One "not found" GET when there is none.
    auto tail = detail::follow_tail(store, detail::lineage_dir(*norm, l.log_id), *m,
                                    detail::TailRead::kHeader);
    if (!tail) return unexpected(std::move(tail).error());
    r.lineages_.push_back(std::move(*m));
    r.broken_tails_.push_back(std::move(tail->broken));
  }
  return r;
}

const BackupError* BackupReader::broken_tail(const Manifest& m) const {
  const auto i = static_cast<std::size_t>(&m - lineages_.data());
  return broken_tails_[i] ? &*broken_tails_[i] : nullptr;
}

BackupResult<RestorableRange> BackupReader::restorable_range(
    const std::optional<log::LogId>& log_id) const {
  const Manifest* m = log_id ? find_lineage(lineages_, *log_id) : &lineages_.back();
  if (m == nullptr) return unexpected(no_such_lineage(lineages_, *log_id));
  if (const BackupError* broken = broken_tail(*m)) return unexpected(*broken);
  return range_of(*m);
}

BackupResult<RestoreResult> BackupReader::restore(const RestoreTarget& target,
                                                  const std::filesystem::path& out_path,
                                                  const ProgressFn& progress) const {
  using Kind = RestoreTarget::Kind;
  // 1. The lineage.
  const Manifest* m = nullptr;
  if (target.log_id) {
    m = find_lineage(lineages_, *target.log_id);
    if (m == nullptr) return unexpected(no_such_lineage(lineages_, *target.log_id));
  } else if (target.kind == Kind::kTime) {
    for (auto it = lineages_.rbegin(); it != lineages_.rend() && m == nullptr; ++it) {
      auto r = range_of(*it);
      if (r && r->first_time_us <= target.time_us) m = &*it;
    }
    if (m == nullptr)
      return unexpected(error(BackupErrc::kOutOfRange,
                              "timestamp " + std::to_string(target.time_us) +
                                  " is before the earliest restorable commit"));
  } else {
    m = &lineages_.back();
  }
  auto range = range_of(*m);
  if (!range) return unexpected(std::move(range).error());
  // A broken tail: only a target that cannot need a frame past the last good one is restorable
  // (a commit at the same time as the last good one could be in the broken object).
  if (const BackupError* broken = broken_tail(*m)) {
    if (target.kind == Kind::kLatest ||
        (target.kind == Kind::kFrame && target.frame > range->last_frame) ||
        (target.kind == Kind::kTime && target.time_us >= range->last_time_us))
      return unexpected(*broken);
  }
  const log::Frame limit_frame =
      target.kind == Kind::kFrame ? target.frame : std::numeric_limits<log::Frame>::max();
  const std::int64_t limit_time = target.kind == Kind::kTime
                                      ? target.time_us
                                      : std::numeric_limits<std::int64_t>::max();
  if (target.kind == Kind::kFrame &&
      (target.frame < range->first_frame || target.frame > range->last_frame))
    return unexpected(error(BackupErrc::kOutOfRange,
                            "frame " + std::to_string(target.frame) + " is outside the restorable range " +
                                std::to_string(range->first_frame) + ".." +
                                std::to_string(range->last_frame)));
  if (target.kind == Kind::kTime && target.time_us < range->first_time_us)
    return unexpected(error(BackupErrc::kOutOfRange,
                            "timestamp " + std::to_string(target.time_us) +
                                " is before the earliest restorable commit (" +
                                std::to_string(range->first_time_us) + ")"));

  // 2. The start point.
  const SnapshotEntry* start = nullptr;
  for (const auto& s : m->snapshots)
    if (s.frame <= limit_frame && s.commit_time_us <= limit_time) start = &s;
  const auto extent = m->batch_extent();
  const bool from_empty = extent && extent->first_frame == 1;
  if (start == nullptr && !from_empty)
    return unexpected(error(BackupErrc::kOutOfRange, "no snapshot at or before the target"));

  const std::string dir = detail::lineage_dir(prefix_, m->log_id);
  const EncryptionKey* enc_key = key_ ? &*key_ : nullptr;
  const log::Frame start_frame = start != nullptr ? start->frame : 0;
  auto listed = BatchLister(*store_, dir, m->log_id, start_frame, limit_frame, limit_time).list(*m);
  if (!listed) return unexpected(std::move(listed).error());
  const std::vector<BatchEntry>& batches = *listed;
  // Progress: the stored bytes of the start snapshot and of the batches that may be needed.
  std::uint64_t total = start != nullptr ? start->size : 0, done_bytes = 0;
  for (const auto& b : batches)
    if (b.last_frame > start_frame && b.first_frame <= limit_frame &&
        b.first_commit_time_us <= limit_time)
      total += b.size;
  // A tail entry's size is not known from its header: ask the store, so that the total stays
  // what it was planned to be (only when someone watches the progress).
  if (progress)
    for (const auto& b : batches)
      if (b.size == 0 && b.last_frame > start_frame && b.first_frame <= limit_frame &&
          b.first_commit_time_us <= limit_time) {
        auto head = store_->head(dir + b.key);
        if (!head) return unexpected(storage_failure("batch " + dir + b.key, head.error()));
        total += head->size;
      }
  auto report = [&](std::uint64_t bytes) {
    if (progress) progress(std::min(bytes, total), total);
  };
  report(0);
  std::filesystem::path tmp = out_path;
  tmp += ".restore-tmp";
  auto file = log::File::open(tmp, O_RDWR | O_CREAT | O_TRUNC);
  if (!file) return unexpected(io("creating " + tmp.string(), file.error()));
  RestoreResult res;
  res.log_id = m->log_id;
  auto fail = [&](BackupError e) -> BackupResult<RestoreResult> {
    file->close();
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    return unexpected(std::move(e));
  };
  WriteBehind behind(*file);
  std::uint64_t file_pages = 0;
  if (start != nullptr) {
    const std::string key = dir + start->key;
    auto snapshot_progress = [&](std::uint64_t bytes) { report(bytes); };
    if (auto r = read_snapshot(*store_, key, *start, m->log_id, *file, behind, read_chunk_bytes,
                               enc_key,
                               allow_unencrypted,
                               progress ? std::function<void(std::uint64_t)>(snapshot_progress)
                                        : std::function<void(std::uint64_t)>());
        !r)
      return fail(std::move(r.error()));
    done_bytes = start->size;
    res.frame = start->frame;
    res.db_size = start->db_size;
    res.commit_time_us = start->commit_time_us;
    res.snapshot_key = key;
    file_pages = start->db_size;
  }

  // 3. The batches after it, fetched ahead (kPrefetchBatches) while earlier ones are applied.
  log::Frame expected = res.frame + 1;
  const auto plan = batches_to_read(batches, expected, limit_frame, limit_time);
  // The fetching threads also compute each object's SHA-256 (when the manifest has one to
  // compare), so hashing overlaps decompressing and writing; objects are read into buffers the
  // loop below hands back.
  BufferPool buffers;
  std::optional<OrderedFetcher> ahead;
  if (!plan.empty())
    ahead.emplace(
        plan.size(),
        [&](std::size_t i) -> Piece {
          const BatchEntry& entry = *plan[i];
          std::string key = dir + entry.key;
          std::string buf = buffers.take();
          if (auto r = store_->get_into(key, buf); !r)
            return Piece{std::move(key), 0, unexpected(std::move(r).error()), {}};
          std::string sha = entry.sha256.empty() ? std::string() : sha256_hex(buf);
          return Piece{std::move(key), 0, std::move(buf), std::move(sha)};
        },
        kBatchFetchers, kPrefetchBatches, kPrefetchBytes);
  bool done = false;
  std::string content;
  std::vector<std::span<const std::byte>> parts;
  for (const auto& b : batches) {
    if (done || expected > limit_frame) break;
    if (b.last_frame < expected) continue;
    if (b.first_commit_time_us > limit_time && b.first_frame >= expected) break;
    if (b.first_frame > expected)
      return fail(error(BackupErrc::kGap, "frames " + std::to_string(expected) + ".." +
                                               std::to_string(b.first_frame - 1) +
                                               " are in no batch (next is " + dir + b.key + ")"));
    const std::string key = dir + b.key;
    std::optional<Piece> piece = ahead ? ahead->next() : std::nullopt;
    assert(piece && piece->key == key);  // the loop reads a prefix of `plan`
    const bool fetched_ahead = piece && piece->key == key;
    storage::StorageResult<std::string> got =
        fetched_ahead ? std::move(piece->got) : store_->get(key);
    const std::string got_sha256 = fetched_ahead ? std::move(piece->sha256) : std::string();
    piece.reset();
    std::uint64_t stored_size = 0;
    auto txns = read_batch(got, got_sha256, key, b, m->log_id, content, enc_key,
                           allow_unencrypted, stored_size);
    // The stored bytes are not needed past read_batch: their buffer goes back to the worker.
    if (got) buffers.give(std::move(got.value()));
    if (!txns) return fail(std::move(txns).error());
    ++res.batches_read;
    done_bytes += stored_size;
    report(done_bytes);
    for (const auto& t : *txns) {
      const log::Frame commit = t.first_frame + t.pages - 1;
      if (t.first_frame < expected) {
        if (commit >= expected)
          return fail(corrupt(key, "a transaction straddles snapshot frame " +
                                       std::to_string(expected - 1)));
        continue;
      }
      if (commit > limit_frame || t.commit_time_us > limit_time) {
        done = true;
        break;
      }
      auto top = write_pages(*file, behind, t, parts);
      if (!top) return fail(std::move(top).error());
      file_pages = std::max<std::uint64_t>(file_pages, *top);
      if (t.db_size < file_pages) {
        auto tr = file->truncate(static_cast<off_t>(t.db_size) * log::kPageSize);
        if (!tr) return fail(io("truncating " + tmp.string(), tr.error()));
        file_pages = t.db_size;
      }
      res.frame = commit;
      res.db_size = t.db_size;
      res.commit_time_us = t.commit_time_us;
      ++res.txns_applied;
      expected = commit + 1;
    }
  }
  if (target.kind == Kind::kLatest && res.frame < range->last_frame)
    return fail(error(BackupErrc::kGap, "restore stopped at frame " + std::to_string(res.frame) +
                                            " before the last backed-up frame " +
                                            std::to_string(range->last_frame)));

  // 4. Final size, durability, rename.
  if (auto tr = file->truncate(static_cast<off_t>(res.db_size) * log::kPageSize); !tr)
    return fail(io("truncating " + tmp.string(), tr.error()));
  if (auto s = file->datasync(); !s) return fail(io("syncing " + tmp.string(), s.error()));
  file->close();
  if (auto r = log::rename_file(tmp, out_path); !r) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    return unexpected(io("renaming to " + out_path.string(), r.error()));
  }
  auto parent = out_path.parent_path();
  if (parent.empty()) parent = ".";
  if (auto s = log::sync_directory(parent); !s)
    return unexpected(io("syncing " + parent.string(), s.error()));
  if (progress) progress(total, total);
  return res;
}

BackupResult<RestoreResult> restore(storage::ObjectStore& store, const std::string& prefix,
                                    const RestoreTarget& target,
                                    const std::filesystem::path& out_path,
                                    const EncryptionKey* key, const ProgressFn& progress) {
  auto r = BackupReader::open(store, prefix, key);
  if (!r) return unexpected(std::move(r).error());
  return r->restore(target, out_path, progress);
}

BackupResult<RestorableRange> restorable_range(storage::ObjectStore& store,
                                               const std::string& prefix) {
  auto r = BackupReader::open(store, prefix);
  if (!r) return unexpected(std::move(r).error());
  return r->restorable_range();
}

}  // namespace quire::backup
