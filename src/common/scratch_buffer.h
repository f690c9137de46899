// Large scratch memory that a thread reuses: batches being built, objects being compressed.
//
// Memory fresh from the kernel costs a page fault per 4 KiB page on first touch, and on a
// virtual machine a fault is expensive: in a profile of the backup thread of a server started
// afresh, growing its batch buffer (std::string) took 40 % of the thread's CPU over the first
// five seconds of writes (2026-12-02). ScratchBuffer maps its memory with transparent huge pages
// requested (MADV_HUGEPAGE: 2 MiB per fault where the kernel has them, ordinary pages where it
// does not; with THP defrag set to "madvise" a fault may compact memory first, so this is for
// background threads, not a request path) and keeps it between uses. reserve() gives a new
// mapping when it grows (what the buffer held is lost); grow() keeps it.
//
// Thread model: one thread at a time (it is scratch space, not shared data).
#pragma once

#include <cstddef>

namespace quire {

class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  ~ScratchBuffer();
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;

  // At least `n` writable bytes, their contents unspecified. Throws std::bad_alloc when no
  // memory can be mapped.
  char* reserve(std::size_t n);
  // The same, keeping what the buffer holds (moved, not copied, when it has to grow).
  char* grow(std::size_t n);
  // Gives the memory back when it was last grown for more than `keep` bytes (what reserve()
  // maps beyond the request is not counted), or always when `keep` is 0.
  void release_over(std::size_t keep);
  char* data() const { return data_; }
  std::size_t capacity() const { return capacity_; }

 private:
  char* data_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t grown_for_ = 0;  // the request that mapped the memory
};

}  // namespace quire
