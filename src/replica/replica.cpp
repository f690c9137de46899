// The applier side of a replica (apply, fold, reset, open/recovery) and page lookup for readers.
// The protocol and its invariants are in replica.h and docs/replica-apply.md.
#include "replica/replica.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <numeric>
#include <random>

namespace quire::replica::detail {
namespace {

constexpr std::size_t kPage = log::kPageSize;

std::filesystem::path with_suffix(const std::filesystem::path& p, const char* suffix) {
  return std::filesystem::path(p.string() + suffix);
}

void put_be32(std::byte* p, std::uint32_t v) {
  p[0] = static_cast<std::byte>(v >> 24);
  p[1] = static_cast<std::byte>(v >> 16);
  p[2] = static_cast<std::byte>(v >> 8);
  p[3] = static_cast<std::byte>(v);
}

// Presents page 1 of a version to SQLite (specs/overlay-vfs-notes.md, gotchas 1-4): rollback
// mode (18/19 = 1) so no WAL or shm is looked for; a change counter unique to the version in both
// 24..27 and 92..95 so the pager drops its cache when the version changes and trusts 28..31;
// 28..31 = the version's size so header and xFileSize agree.
void patch_page1(std::byte* page, std::uint32_t counter, std::uint32_t npages) {
  page[18] = std::byte{1};
  page[19] = std::byte{1};
  put_be32(page + 24, counter);
  put_be32(page + 28, npages);
  put_be32(page + 92, counter);
}

int open_fd(const std::filesystem::path& p, int flags, std::string* err) {
  const int fd = ::open(p.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) *err = errno_message("open", p, errno);
  return fd;
}

Expected<void, std::string> rename_path(const std::filesystem::path& from,
                                        const std::filesystem::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return unexpected(errno_message("rename to " + to.string(), from, errno));
  }
  return {};
}

// Creates `p` with `data` and makes it durable (no rename).
Expected<void, std::string> write_new_file(const std::filesystem::path& p,
                                           std::span<const std::byte> data) {
  std::string err;
  const int fd = open_fd(p, O_WRONLY | O_CREAT | O_TRUNC, &err);
  if (fd < 0) return unexpected(err);
  auto r = write_all(fd, data, 0, p);
  if (r) r = sync_fd(fd, p);
  ::close(fd);
  return r;
}

}  // namespace

BaseFile::~BaseFile() {
  if (fd >= 0) ::close(fd);
}

Expected<std::unique_ptr<Replica>, std::string> Replica::open(const std::filesystem::path& db,
                                                              const ReplicaOptions& options) {
  std::error_code ec;
  const std::filesystem::path abs = std::filesystem::absolute(db, ec);
  if (ec) return unexpected("bad path " + db.string() + ": " + ec.message());
  const std::filesystem::path dir = abs.parent_path();
  const auto overlay = with_suffix(abs, "-overlay");
  const auto overlay_new = with_suffix(abs, "-overlay.new");
  const auto reset = with_suffix(abs, "-reset");

  // Finish or discard an interrupted reset_from_snapshot(): `-reset` existing is its commit point.
  if (std::filesystem::exists(reset)) {
    if (std::filesystem::exists(overlay_new)) {
      if (auto r = rename_path(overlay_new, overlay); !r) return unexpected(r.error());
    }
    if (auto r = rename_path(reset, abs); !r) return unexpected(r.error());
    if (auto r = sync_dir(dir); !r) return unexpected(r.error());
  }
  std::filesystem::remove(overlay_new, ec);
  std::filesystem::remove(with_suffix(abs, "-reset.tmp"), ec);
  std::filesystem::remove(with_suffix(abs, "-overlay.tmp"), ec);

  std::string err;
  int base_fd = open_fd(abs, O_RDWR | O_CREAT, &err);
  if (base_fd < 0) return unexpected(err);
  auto base = std::make_shared<BaseFile>(base_fd);
  struct stat st {};
  if (::fstat(base_fd, &st) != 0) return unexpected(errno_message("stat", abs, errno));

  std::unique_ptr<Replica> r(new Replica());
  r->path_ = std::filesystem::canonical(abs, ec);
  if (ec) return unexpected("canonical " + abs.string() + ": " + ec.message());
  r->path_str_ = r->path_.string();
  r->overlay_path_ = overlay;
  r->options_ = options;
  r->salt_ = std::random_device{}();

  if (!std::filesystem::exists(overlay)) {
    OverlayHeader h;
    h.base_npages = static_cast<std::uint32_t>((st.st_size + kPage - 1) / kPage);
    auto w = replace_file(overlay, with_suffix(abs, "-overlay.tmp"), encode_overlay_header(h));
    if (!w) return unexpected(w.error());
  }
  auto contents = read_overlay(overlay);
  if (!contents) return unexpected(contents.error());
  r->overlay_fd_ = open_fd(overlay, O_RDWR, &err);
  if (r->overlay_fd_ < 0) return unexpected(err);
  if (contents->valid_end < contents->file_size) {  // cut off the torn tail
    if (::ftruncate(r->overlay_fd_, static_cast<off_t>(contents->valid_end)) != 0) {
      return unexpected(errno_message("truncate", overlay, errno));
    }
    if (auto s = sync_fd(r->overlay_fd_, overlay); !s) return unexpected(s.error());
  }
  r->overlay_end_ = contents->valid_end;

  auto bv = std::make_shared<Version>();
  bv->id = r->next_id_++;
  bv->frame = contents->header.base_frame;
  bv->npages = contents->header.base_npages;
  bv->folded = true;
  bv->base = base;
  r->chain_.push_back(bv);
  for (OverlayRecord& rec : contents->records) {
    auto v = std::make_shared<Version>();
    v->id = r->next_id_++;
    v->frame = rec.commit_frame;
    v->npages = rec.db_size;
    v->pgnos = std::move(rec.pgnos);
    v->pages = std::move(rec.pages);
    v->older = r->chain_.back();
    v->base = base;
    r->chain_.push_back(std::move(v));
  }
  r->applied_frame_ = r->chain_.back()->frame;
  if (auto reg = r->register_vfs(options.vfs_name); !reg) return unexpected(reg.error());
  return r;
}

Replica::~Replica() {
  assert(open_files_.load() == 0 && "reader connections must be closed first");
  if (registered_) sqlite3_vfs_unregister(&vfs_);
  if (overlay_fd_ >= 0) ::close(overlay_fd_);
}

Expected<void, std::string> Replica::apply(const log::Transaction& txn,
                                           std::uint64_t commit_frame) {
  std::lock_guard apply_lock(apply_mu_);
  if (commit_frame <= applied_frame_.load()) {
    return unexpected("commit frame " + std::to_string(commit_frame) + " is not after applied " +
                      std::to_string(applied_frame_.load()));
  }
  const std::size_t n = txn.page_count();
  if (n == 0 || txn.db_size == 0 || txn.pages.size() != n * kPage) {
    return unexpected(std::string("malformed transaction (no pages, db_size 0 or bad length)"));
  }
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return txn.pgnos[a] < txn.pgnos[b]; });
  auto v = std::make_shared<Version>();
  v->pgnos.reserve(n);
  v->pages.resize(n * kPage);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t pgno = txn.pgnos[order[i]];
    if (pgno == 0 || pgno > txn.db_size || (i > 0 && pgno == v->pgnos.back())) {
      return unexpected("bad page number " + std::to_string(pgno) + " (db_size " +
                        std::to_string(txn.db_size) + ")");
    }
    v->pgnos.push_back(pgno);
    std::memcpy(&v->pages[i * kPage], txn.pages.data() + order[i] * kPage, kPage);
  }
  v->frame = commit_frame;
  v->npages = txn.db_size;

  std::vector<std::byte> rec;
  encode_overlay_record(commit_frame, txn.db_size, v->pgnos, v->pages, rec);
  auto w = write_all(overlay_fd_, rec, overlay_end_, overlay_path_);
  if (w && options_.sync) w = sync_fd(overlay_fd_, overlay_path_);
  if (!w) {
    // Leave no partial record behind; a failure here only means a torn tail for recovery.
    [[maybe_unused]] int rc = ::ftruncate(overlay_fd_, static_cast<off_t>(overlay_end_));
    return unexpected(w.error());
  }
  overlay_end_ += rec.size();

  v->id = next_id_++;
  std::lock_guard lock(mu_);
  v->older = chain_.back();
  v->base = chain_.back()->base;
  chain_.push_back(std::move(v));
  applied_frame_ = commit_frame;
  return {};
}

Expected<std::size_t, std::string> Replica::checkpoint() {
  std::lock_guard apply_lock(apply_mu_);
  std::size_t folded = 0;
  std::shared_ptr<BaseFile> base;
  while (true) {
    std::shared_ptr<Version> v;
    {
      std::lock_guard lock(mu_);
      if (chain_.size() < 2 || chain_.front()->pins > 0) break;
      v = chain_[1];
      base = v->base;
    }
    // No reader is pinned below v (the base is unpinned and new pins go to the newest version),
    // so every reader finds v's pages in memory until v is marked folded below. Only this thread
    // changes v's pages, so reading them here without mu_ is safe.
    for (std::size_t i = 0; i < v->pgnos.size(); ++i) {
      auto w = write_all(base->fd, std::span(v->pages).subspan(i * kPage, kPage),
                         std::uint64_t{v->pgnos[i] - 1} * kPage, path_);
      if (!w) return unexpected(w.error());
    }
    if (::ftruncate(base->fd, static_cast<off_t>(std::uint64_t{v->npages} * kPage)) != 0) {
      return unexpected(errno_message("truncate", path_, errno));
    }
    std::vector<std::uint32_t> old_pgnos;
    std::vector<std::byte> old_pages;
    {
      std::lock_guard lock(mu_);
      assert(chain_[1] == v);
      v->folded = true;
      v->older.reset();
      old_pgnos.swap(v->pgnos);
      old_pages.swap(v->pages);
      chain_.pop_front();
    }
    ++folded;
  }
  if (folded == 0) return folded;
  // The base must be durable before the overlay stops describing the folded versions. Until the
  // rename, recovery replays them over the base again, which is idempotent (full page images,
  // applied in order).
  if (auto s = sync_fd(base->fd, path_); !s) return unexpected(s.error());
  if (auto w = rewrite_overlay(); !w) return unexpected(w.error());
  return folded;
}

Expected<void, std::string> Replica::rewrite_overlay() {
  std::vector<std::shared_ptr<Version>> chain;
  {
    std::lock_guard lock(mu_);
    chain.assign(chain_.begin(), chain_.end());
  }
  OverlayHeader h;
  h.base_frame = chain.front()->frame;
  h.base_npages = chain.front()->npages;
  std::vector<std::byte> data = encode_overlay_header(h);
  for (std::size_t i = 1; i < chain.size(); ++i) {
    encode_overlay_record(chain[i]->frame, chain[i]->npages, chain[i]->pgnos, chain[i]->pages,
                          data);
  }
  auto r = replace_file(overlay_path_, with_suffix(path_, "-overlay.tmp"), data);
  if (!r) return r;
  std::string err;
  const int fd = open_fd(overlay_path_, O_RDWR, &err);
  if (fd < 0) return unexpected(err);
  ::close(overlay_fd_);
  overlay_fd_ = fd;
  overlay_end_ = data.size();
  return {};
}

Expected<void, std::string> Replica::reset_from_snapshot(const log::PageSource& pages,
                                                         std::uint64_t frame) {
  std::lock_guard apply_lock(apply_mu_);
  const auto dir = path_.parent_path();
  const auto reset_tmp = with_suffix(path_, "-reset.tmp");
  const auto reset = with_suffix(path_, "-reset");
  const auto overlay_new = with_suffix(path_, "-overlay.new");
  const std::uint32_t n = pages.page_count();

  std::string err;
  {
    const int fd = open_fd(reset_tmp, O_WRONLY | O_CREAT | O_TRUNC, &err);
    if (fd < 0) return unexpected(err);
    std::vector<std::byte> page(kPage);
    Expected<void, std::string> w;
    for (std::uint32_t p = 1; p <= n && w; ++p) {
      auto rd = pages.read_page(p, page);
      if (!rd) {
        w = unexpected("snapshot page " + std::to_string(p) + ": " + rd.error().message);
        break;
      }
      w = write_all(fd, page, std::uint64_t{p - 1} * kPage, reset_tmp);
    }
    if (w) w = sync_fd(fd, reset_tmp);
    ::close(fd);
    if (!w) return w;
  }
  OverlayHeader h;
  h.base_frame = frame;
  h.base_npages = n;
  if (auto w = write_new_file(overlay_new, encode_overlay_header(h)); !w) return w;
  if (auto w = sync_dir(dir); !w) return w;
  // Commit point: from here on, open() completes the reset.
  if (auto w = rename_path(reset_tmp, reset); !w) return w;
  if (auto w = sync_dir(dir); !w) return w;
  if (auto w = rename_path(overlay_new, overlay_path_); !w) return w;
  if (auto w = rename_path(reset, path_); !w) return w;
  if (auto w = sync_dir(dir); !w) return w;

  const int base_fd = open_fd(path_, O_RDWR, &err);
  if (base_fd < 0) return unexpected(err);
  auto base = std::make_shared<BaseFile>(base_fd);
  const int ofd = open_fd(overlay_path_, O_RDWR, &err);
  if (ofd < 0) return unexpected(err);
  ::close(overlay_fd_);
  overlay_fd_ = ofd;
  overlay_end_ = kOverlayHeaderSize;

  auto bv = std::make_shared<Version>();
  bv->id = next_id_++;
  bv->frame = frame;
  bv->npages = n;
  bv->folded = true;
  bv->base = std::move(base);
  // Readers pinned to the old chain keep it (and the old base inode) until they unpin.
  std::deque<std::shared_ptr<Version>> old;
  {
    std::lock_guard lock(mu_);
    old.swap(chain_);
    chain_.push_back(std::move(bv));
    applied_frame_ = frame;
  }
  return {};
}

ReplicaStats Replica::stats() const {
  std::lock_guard lock(mu_);
  ReplicaStats s;
  s.applied_frame = chain_.back()->frame;
  s.base_frame = chain_.front()->frame;
  s.overlay_versions = chain_.size() - 1;
  s.pinned_readers = pinned_;
  s.db_size = chain_.back()->npages;
  return s;
}

std::shared_ptr<Version> Replica::pin_newest() {
  std::lock_guard lock(mu_);
  auto v = chain_.back();
  ++v->pins;
  ++pinned_;
  return v;
}

void Replica::unpin(std::shared_ptr<Version>& v) {
  if (!v) return;
  {
    std::lock_guard lock(mu_);
    assert(v->pins > 0);
    --v->pins;
    --pinned_;
  }
  v.reset();  // may free a chain replaced by a reset; outside the lock
}

int Replica::read_page(const std::shared_ptr<Version>& v, std::uint32_t pgno, std::byte* out) {
  std::shared_ptr<BaseFile> base;
  {
    std::lock_guard lock(mu_);
    for (const Version* cur = v.get();; cur = cur->older.get()) {
      assert(cur != nullptr);
      if (pgno > cur->npages) {  // the page does not exist as of cur (nor as of v)
        std::memset(out, 0, kPage);
        break;
      }
      if (cur->folded) {
        base = cur->base;
        break;
      }
      auto it = std::lower_bound(cur->pgnos.begin(), cur->pgnos.end(), pgno);
      if (it != cur->pgnos.end() && *it == pgno) {
        std::memcpy(out, &cur->pages[static_cast<std::size_t>(it - cur->pgnos.begin()) * kPage],
                    kPage);
        break;
      }
    }
  }
  if (base) {
    // Safe outside mu_: this reader's pin keeps every fold away from this page (replica.h).
    std::size_t done = 0;
    const off_t off = static_cast<off_t>(std::uint64_t{pgno - 1} * kPage);
    while (done < kPage) {
      const ssize_t n = ::pread(base->fd, out + done, kPage - done, off + static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return SQLITE_IOERR_READ;
      if (n == 0) break;
      done += static_cast<std::size_t>(n);
    }
    if (done < kPage) std::memset(out + done, 0, kPage - done);
  }
  if (pgno == 1) patch_page1(out, static_cast<std::uint32_t>(salt_ + v->id), v->npages);
  return SQLITE_OK;
}

int Replica::read(const std::shared_ptr<Version>& v, void* out, std::size_t amount,
                  std::uint64_t offset) {
  auto* dst = static_cast<std::byte*>(out);
  const std::uint64_t end = offset + amount;
  int rc = SQLITE_OK;
  std::vector<std::byte> tmp;
  for (std::uint64_t pos = offset; pos < end;) {
    const auto pgno = static_cast<std::uint32_t>(pos / kPage + 1);
    const std::size_t in = pos % kPage;
    const std::size_t len =
        static_cast<std::size_t>(std::min<std::uint64_t>(kPage - in, end - pos));
    std::byte* d = dst + (pos - offset);
    if (pgno > v->npages) {
      std::memset(d, 0, len);
      rc = SQLITE_IOERR_SHORT_READ;
    } else if (in == 0 && len == kPage) {
      if (int e = read_page(v, pgno, d); e != SQLITE_OK) return e;
    } else {
      tmp.resize(kPage);
      if (int e = read_page(v, pgno, tmp.data()); e != SQLITE_OK) return e;
      std::memcpy(d, tmp.data() + in, len);
    }
    pos += len;
  }
  return rc;
}

}  // namespace quire::replica::detail
