#include "common/scratch_buffer.h"

#include <sys/mman.h>

#include <algorithm>
#include <new>

namespace quire {

namespace {

constexpr std::size_t kHugePage = 2u << 20;

}  // namespace

ScratchBuffer::~ScratchBuffer() { release_over(0); }

char* ScratchBuffer::reserve(std::size_t n) {
  if (n <= capacity_) return data_;
  release_over(0);
  // Room to grow (a batch a little larger than the last does not map again), in whole huge
  // pages. Linux places anonymous mappings of 2 MiB or more on a 2 MiB boundary.
  const std::size_t want = std::max(n + n / 4, kHugePage);
  const std::size_t size = (want + kHugePage - 1) / kHugePage * kHugePage;
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  (void)::madvise(p, size, MADV_HUGEPAGE);  // a hint: without it (or THP off) 4 KiB pages
  data_ = static_cast<char*>(p);
  capacity_ = size;
  grown_for_ = n;
  return data_;
}

char* ScratchBuffer::grow(std::size_t n) {
  if (n <= capacity_) return data_;
  if (data_ == nullptr) return reserve(n);
  const std::size_t want = std::max(n + n / 4, kHugePage);
  const std::size_t size = (want + kHugePage - 1) / kHugePage * kHugePage;
  // mremap moves the pages instead of copying them.
  void* p = ::mremap(data_, capacity_, size, MREMAP_MAYMOVE);
  if (p == MAP_FAILED) throw std::bad_alloc();
  (void)::madvise(p, size, MADV_HUGEPAGE);
  data_ = static_cast<char*>(p);
  capacity_ = size;
  grown_for_ = n;
  return data_;
}

void ScratchBuffer::release_over(std::size_t keep) {
  if (data_ == nullptr || (keep > 0 && grown_for_ <= keep)) return;
  ::munmap(data_, capacity_);
  data_ = nullptr;
  capacity_ = 0;
  grown_for_ = 0;
}

}  // namespace quire
