#include "common/write_mirror.h"

#include <cstring>
#include <unordered_map>

namespace quire {

namespace {

// A buffer grown past this by a large transaction is released when the mirror empties.
constexpr std::size_t kKeptCapacity = 256u << 10;

struct Registry {
  std::mutex mu;
  std::unordered_map<std::string, std::weak_ptr<WriteMirror>> mirrors;
  std::size_t sweep_at = 64;  // sweep expired entries when the map grows past this
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: mirrors may outlive static teardown
  return *r;
}

}  // namespace

std::shared_ptr<WriteMirror> WriteMirror::acquire(const std::string& path) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  auto& slot = r.mirrors[path];
  if (auto alive = slot.lock()) return alive;
  auto created = std::make_shared<WriteMirror>();
  slot = created;
  if (r.mirrors.size() > r.sweep_at) {
    std::erase_if(r.mirrors, [](const auto& entry) { return entry.second.expired(); });
    r.sweep_at = 2 * r.mirrors.size() + 64;
  }
  return created;
}

std::shared_ptr<WriteMirror> WriteMirror::find(const std::string& path) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  auto it = r.mirrors.find(path);
  return it == r.mirrors.end() ? nullptr : it->second.lock();
}

void WriteMirror::clear_locked() {
  data_.clear();
  if (data_.capacity() > kKeptCapacity) std::vector<unsigned char>().swap(data_);
  base_ = 0;
}

void WriteMirror::wrote(const void* data, std::size_t n, std::uint64_t offset) {
  std::lock_guard lock(mu_);
  const std::uint64_t end = base_ + data_.size();
  if (!data_.empty() && offset >= base_ && offset <= end && offset - base_ + n <= limit_) {
    // Overwrites or extends the range held.
    const std::size_t at = static_cast<std::size_t>(offset - base_);
    if (at + n > data_.size()) data_.resize(at + n);
    std::memcpy(data_.data() + at, data, n);
    return;
  }
  // Disjoint from the range held (or too large to add to it): this write becomes the range.
  clear_locked();
  if (n == 0 || n > limit_) return;
  base_ = offset;
  const auto* p = static_cast<const unsigned char*>(data);
  data_.assign(p, p + n);
}

void WriteMirror::truncated(std::uint64_t size) {
  std::lock_guard lock(mu_);
  if (size <= base_) {
    clear_locked();
  } else if (size < base_ + data_.size()) {
    data_.resize(static_cast<std::size_t>(size - base_));
  }
  // Extending the file adds zeros past the range held: the range itself is unchanged.
}

void WriteMirror::clear() {
  std::lock_guard lock(mu_);
  clear_locked();
}

void WriteMirror::forget_before(std::uint64_t offset) {
  std::lock_guard lock(mu_);
  if (offset <= base_ || data_.empty()) return;
  if (offset >= base_ + data_.size()) {
    clear_locked();
    return;
  }
  const auto drop = static_cast<std::size_t>(offset - base_);
  data_.erase(data_.begin(), data_.begin() + static_cast<std::ptrdiff_t>(drop));
  base_ = offset;
}

bool WriteMirror::read(void* out, std::size_t n, std::uint64_t offset) {
  std::lock_guard lock(mu_);
  if (data_.empty() || offset < base_ || offset - base_ > data_.size() ||
      n > data_.size() - (offset - base_)) {
    ++stats_.reads_missed;
    return false;
  }
  std::memcpy(out, data_.data() + (offset - base_), n);
  ++stats_.reads_served;
  return true;
}

void WriteMirror::set_before_rewrite(const void* owner, std::function<bool()> guard) {
  std::lock_guard lock(guard_mu_);
  guard_ = std::move(guard);
  guard_owner_ = owner;
}

void WriteMirror::clear_before_rewrite(const void* owner) {
  std::lock_guard lock(guard_mu_);
  if (guard_owner_ != owner) return;
  guard_ = nullptr;
  guard_owner_ = nullptr;
}

bool WriteMirror::before_rewrite() {
  std::lock_guard lock(guard_mu_);
  return !guard_ || guard_();
}

WriteMirror::Stats WriteMirror::stats() {
  std::lock_guard lock(mu_);
  return stats_;
}

std::size_t WriteMirror::held() {
  std::lock_guard lock(mu_);
  return data_.size();
}

}  // namespace quire
