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

TEST(ScratchBuffer, GrowKeepsWhatWasWritten) {
  ScratchBuffer b;
  char* p = b.grow(1000);
  ASSERT_NE(p, nullptr);
  for (std::size_t i = 0; i < b.capacity(); ++i) p[i] = static_cast<char>(i * 7);
  const std::size_t had = b.capacity();
  EXPECT_EQ(b.grow(had), p);  // fits: nothing moves
  char* q = b.grow(had * 3 + 5);
  ASSERT_NE(q, nullptr);
  EXPECT_GE(b.capacity(), had * 3 + 5);
  for (std::size_t i = 0; i < had; ++i) ASSERT_EQ(q[i], static_cast<char>(i * 7)) << i;
  std::memset(q, 0, b.capacity());  // all of it is writable
  EXPECT_EQ(b.data(), q);
}

}  // namespace
}  // namespace quire
