#include "common/scratch_buffer.h"

#include <gtest/gtest.h>

#include <cstring>

namespace quire {
namespace {

TEST(ScratchBuffer, GrowsInWholeHugePagesAndKeepsItsMemoryBetweenUses) {
  ScratchBuffer b;
  EXPECT_EQ(b.capacity(), 0u);
  char* p = b.reserve(100);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(b.capacity(), 2u << 20);  // never less than one huge page
  std::memset(p, 0x5a, b.capacity());  // all of it is writable
  EXPECT_EQ(b.reserve(b.capacity()), p);  // fits: the same memory, nothing mapped again
  EXPECT_EQ(p[123], 0x5a);                // and what was written is still there

  char* q = b.reserve((3u << 20) + 1);
  ASSERT_NE(q, nullptr);
  EXPECT_GE(b.capacity(), (3u << 20) + 1);
  EXPECT_EQ(b.capacity() % (2u << 20), 0u);
  std::memset(q, 1, b.capacity());

  b.release_over(64u << 20);  // under the limit: kept
  EXPECT_EQ(b.reserve(1), q);
  b.release_over((3u << 20) + 1);  // grown for exactly that (the slack beyond is not counted)
  EXPECT_EQ(b.reserve(1), q);
  b.release_over(1u << 20);  // over it: given back
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_NE(b.reserve(10), nullptr);
  b.release_over(0);  // 0: always
  EXPECT_EQ(b.capacity(), 0u);
}

}  // namespace
}  // namespace quire
