#include "common/write_mirror.h"

#include <gtest/gtest.h>

#include <string>

namespace quire {
namespace {

void write(WriteMirror& m, const std::string& bytes, std::uint64_t offset) {
  m.wrote(bytes.data(), bytes.size(), offset);
}

// What the mirror answers for [offset, offset + n), or "<miss>".
std::string read(WriteMirror& m, std::size_t n, std::uint64_t offset) {
  std::string out(n, '?');
  return m.read(out.data(), n, offset) ? out : "<miss>";
}

TEST(WriteMirror, AnswersOnlyForWhatWasWrittenSinceItWasEmpty) {
  WriteMirror m;
  EXPECT_EQ(read(m, 1, 0), "<miss>");
  write(m, "abcd", 100);
  EXPECT_EQ(read(m, 4, 100), "abcd");
  EXPECT_EQ(read(m, 2, 101), "bc");
  EXPECT_EQ(read(m, 0, 104), "");
  EXPECT_EQ(read(m, 1, 99), "<miss>");   // before the range
  EXPECT_EQ(read(m, 2, 103), "<miss>");  // runs past it: all or nothing
  EXPECT_EQ(read(m, 1, 105), "<miss>");
  const auto stats = m.stats();
  EXPECT_EQ(stats.reads_served, 3u);
  EXPECT_EQ(stats.reads_missed, 4u);
}

TEST(WriteMirror, WritesThatTouchTheRangeExtendOrOverwriteIt) {
  WriteMirror m;
  write(m, "abcd", 100);
  write(m, "efgh", 104);  // appends
  write(m, "XY", 102);    // overwrites inside
  write(m, "Z", 107);     // overwrites the last byte
  write(m, "12", 107);    // overwrites and extends
  EXPECT_EQ(read(m, 9, 100), "abXYefg12");
  EXPECT_EQ(m.held(), 9u);
}

TEST(WriteMirror, AWriteAwayFromTheRangeReplacesIt) {
  WriteMirror m;
  write(m, "abcd", 100);
  write(m, "wxyz", 201);  // a gap after the range: one range cannot hold both
  EXPECT_EQ(read(m, 1, 100), "<miss>");
  EXPECT_EQ(read(m, 4, 201), "wxyz");
  write(m, "HEADER", 198);  // starts before the range: only this write is known as a run
  EXPECT_EQ(read(m, 6, 198), "HEADER");
  EXPECT_EQ(read(m, 2, 203), "<miss>");  // the 'z' at 204 is no longer held
  EXPECT_EQ(m.held(), 6u);
}

TEST(WriteMirror, TruncationCutsTheRange) {
  WriteMirror m;
  write(m, "abcdefgh", 100);
  m.truncated(104);
  EXPECT_EQ(read(m, 4, 100), "abcd");
  EXPECT_EQ(read(m, 1, 104), "<miss>");
  m.truncated(1000);  // growing the file adds zeros after the range, not inside it
  EXPECT_EQ(read(m, 4, 100), "abcd");
  m.truncated(100);
  EXPECT_EQ(m.held(), 0u);
  EXPECT_EQ(read(m, 1, 100), "<miss>");
  write(m, "abcd", 0);
  m.truncated(0);
  EXPECT_EQ(read(m, 1, 0), "<miss>");
}

TEST(WriteMirror, ForgettingDropsThePrefixAndClearingEverything) {
  WriteMirror m;
  write(m, "abcdefgh", 100);
  m.forget_before(50);  // nothing before the range: no change
  EXPECT_EQ(read(m, 8, 100), "abcdefgh");
  m.forget_before(103);
  EXPECT_EQ(read(m, 1, 102), "<miss>");
  EXPECT_EQ(read(m, 5, 103), "defgh");
  write(m, "XY", 108);  // still extends what is left
  EXPECT_EQ(read(m, 7, 103), "defghXY");
  m.forget_before(110);
  EXPECT_EQ(m.held(), 0u);
  write(m, "abcd", 100);
  m.clear();
  EXPECT_EQ(read(m, 1, 100), "<miss>");
}

TEST(WriteMirror, NeverHoldsMoreThanItsLimit) {
  WriteMirror m(/*limit=*/10);
  write(m, "0123456789", 0);
  EXPECT_EQ(read(m, 10, 0), "0123456789");
  write(m, "ab", 10);  // would exceed the limit: this write alone is held
  EXPECT_EQ(read(m, 1, 9), "<miss>");
  EXPECT_EQ(read(m, 2, 10), "ab");
  write(m, std::string(11, 'x'), 12);  // larger than the limit: nothing is held
  EXPECT_EQ(m.held(), 0u);
  EXPECT_EQ(read(m, 1, 12), "<miss>");
}

TEST(WriteMirror, TheRewriteGuardAnswersAndOnlyItsOwnerClearsIt) {
  WriteMirror m;
  EXPECT_TRUE(m.before_rewrite());  // no guard
  int first = 0, second = 0;
  bool allow = false;
  m.set_before_rewrite(&first, [&] {
    ++first;
    return allow;
  });
  EXPECT_FALSE(m.before_rewrite());
  allow = true;
  EXPECT_TRUE(m.before_rewrite());
  EXPECT_EQ(first, 2);
  // A newer owner replaces it; the older owner's clear leaves the newer guard in place.
  m.set_before_rewrite(&second, [&] {
    ++second;
    return false;
  });
  m.clear_before_rewrite(&first);
  EXPECT_FALSE(m.before_rewrite());
  EXPECT_EQ(second, 1);
  m.clear_before_rewrite(&second);
  EXPECT_TRUE(m.before_rewrite());
  EXPECT_EQ(second, 1);
}

TEST(WriteMirror, TheRegistryFindsAMirrorWhileSomeoneHoldsIt) {
  const std::string path = "/nonexistent/quire-write-mirror-test-wal";
  EXPECT_EQ(WriteMirror::find(path), nullptr);
  auto held = WriteMirror::acquire(path);
  ASSERT_NE(held, nullptr);
  EXPECT_EQ(WriteMirror::find(path), held);
  EXPECT_EQ(WriteMirror::acquire(path), held);
  EXPECT_EQ(WriteMirror::find(path + "2"), nullptr);
  held.reset();
  EXPECT_EQ(WriteMirror::find(path), nullptr);
}

}  // namespace
}  // namespace quire
