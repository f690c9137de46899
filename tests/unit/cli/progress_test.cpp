#include "cli/progress.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace quire::cli {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kMiB = 1u << 20;

// A Progress with a hand-moved clock; what it prints is collected in `out`, one entry per write.
struct Harness {
  explicit Harness(ProgressStyle style, ProgressUnit unit = ProgressUnit::kBytes)
      : progress(
            "restoring", unit, style, [this](std::string_view s) { out.emplace_back(s); },
            [this] { return now; }) {}

  std::string all() const {
    std::string s;
    for (const auto& o : out) s += o;
    return s;
  }
  std::size_t lines() const {
    std::size_t n = 0;
    for (char c : all()) n += c == '\n';
    return n;
  }

  std::chrono::steady_clock::time_point now{};
  std::vector<std::string> out;
  Progress progress;
};

TEST(ProgressLines, PrintsNothingBeforeTwoSecondsEvenAfterATenth) {
  Harness h(ProgressStyle::kLines);
  h.progress.update(0, 100 * kMiB);
  h.now += 1900ms;
  h.progress.update(50 * kMiB, 100 * kMiB);
  EXPECT_EQ(h.all(), "");
}

TEST(ProgressLines, PrintsNothingBeforeATenthEvenAfterTwoSeconds) {
  Harness h(ProgressStyle::kLines);
  h.progress.update(0, 100 * kMiB);
  h.now += 30s;
  h.progress.update(9 * kMiB, 100 * kMiB);
  EXPECT_EQ(h.all(), "");
}

TEST(ProgressLines, PrintsALineOnceBothATenthAndTwoSecondsHavePassed) {
  Harness h(ProgressStyle::kLines);
  h.progress.update(0, 100 * kMiB);
  h.now += 2s;
  h.progress.update(10 * kMiB, 100 * kMiB);
  EXPECT_EQ(h.all(), "restoring: 10% (10.0 MiB of 100.0 MiB), 5.0 MiB/s, ETA 18s\n");
}

TEST(ProgressLines, CountsBothLimitsFromTheLastLine) {
  Harness h(ProgressStyle::kLines);
  h.progress.update(0, 100 * kMiB);
  h.now += 2s;
  h.progress.update(20 * kMiB, 100 * kMiB);  // line 1
  h.now += 1s;
  h.progress.update(40 * kMiB, 100 * kMiB);  // a fifth more, but only 1 s later
  h.now += 1s;
  h.progress.update(41 * kMiB, 100 * kMiB);  // 2 s later: a line
  h.now += 5s;
  h.progress.update(50 * kMiB, 100 * kMiB);  // 5 s later, but less than a tenth more
  EXPECT_EQ(h.lines(), 2u) << h.all();
  EXPECT_NE(h.out[1].find("41%"), std::string::npos) << h.out[1];
}

TEST(ProgressLines, AFastSteadyOperationPrintsAtMostTenLinesAndTheFinalOne) {
  Harness h(ProgressStyle::kLines);
  const std::uint64_t total = 1000 * kMiB;
  for (std::uint64_t done = 0; done < total; done += kMiB) {
    h.progress.update(done, total);
    h.now += 1s;  // 1000 s in all: the tenths are what limit it
  }
  h.progress.update(total, total);
  EXPECT_LE(h.lines(), 11u) << h.all();
  EXPECT_GE(h.lines(), 10u) << h.all();
}

TEST(ProgressLines, ASlowOperationPrintsAtMostOneLineEveryTwoSeconds) {
  Harness h(ProgressStyle::kLines);
  const std::uint64_t total = 100 * kMiB;
  h.progress.update(0, total);
  for (int i = 1; i <= 10; ++i) {  // a tenth every 0.5 s
    h.now += 500ms;
    h.progress.update(total / 10 * i, total);
  }
  // 5 s: lines at 2 s and 4 s, then the final one.
  EXPECT_EQ(h.lines(), 3u) << h.all();
}

TEST(ProgressLines, TheFinalLineSaysHowLongItTook) {
  Harness h(ProgressStyle::kLines);
  h.progress.update(0, 64 * kMiB);
  h.now += 8s;
  h.progress.update(64 * kMiB, 64 * kMiB);
  EXPECT_EQ(h.all(), "restoring: 100% (64.0 MiB) in 8.0s, 8.0 MiB/s\n");
}

TEST(ProgressLines, TheFinalLineIsPrintedOnce) {
  Harness h(ProgressStyle::kLines);
  h.progress.update(64 * kMiB, 64 * kMiB);
  h.progress.update(64 * kMiB, 64 * kMiB);
  h.progress.finish();
  EXPECT_EQ(h.lines(), 1u) << h.all();
}

TEST(ProgressLines, HaveNoControlCharacters) {
  Harness h(ProgressStyle::kLines);
  const std::uint64_t total = 100 * kMiB;
  for (std::uint64_t done = 0; done <= total; done += kMiB) {
    h.progress.update(done, total);
    h.now += 300ms;
  }
  const std::string text = h.all();
  ASSERT_FALSE(text.empty());
  for (char c : text) {
    EXPECT_TRUE(c == '\n' || (c >= 0x20 && c < 0x7f)) << static_cast<int>(c);
  }
}

TEST(ProgressLines, AFailedOperationEndsWithoutAFinalLine) {
  Harness h(ProgressStyle::kLines);
  h.progress.update(0, 100 * kMiB);
  h.now += 3s;
  h.progress.update(30 * kMiB, 100 * kMiB);
  h.progress.finish();
  EXPECT_EQ(h.lines(), 1u) << h.all();
  EXPECT_EQ(h.all().find("100%"), std::string::npos) << h.all();
}

TEST(ProgressLines, CountsPagesAsPages) {
  Harness h(ProgressStyle::kLines, ProgressUnit::kPages);
  h.progress.update(0, 20000);
  h.now += 2s;
  h.progress.update(5000, 20000);
  h.now += 2s;
  h.progress.update(20000, 20000);
  EXPECT_EQ(h.all(),
            "restoring: 25% (5000 of 20000 pages), 2500 pages/s, ETA 6s\n"
            "restoring: 100% (20000 pages) in 4.0s, 5000 pages/s\n");
}

TEST(Progress, SmallOperationsPrintNothing) {
  for (auto style : {ProgressStyle::kLines, ProgressStyle::kBar}) {
    Harness bytes(style);
    bytes.progress.update(0, 4 * kMiB - 1);
    bytes.now += 10s;
    bytes.progress.update(4 * kMiB - 1, 4 * kMiB - 1);
    bytes.progress.finish();
    EXPECT_EQ(bytes.all(), "");

    Harness pages(style, ProgressUnit::kPages);
    pages.progress.update(0, 999);
    pages.now += 10s;
    pages.progress.update(999, 999);
    EXPECT_EQ(pages.all(), "");
  }
}

TEST(Progress, OffPrintsNothing) {
  Harness h(ProgressStyle::kOff);
  h.progress.update(0, 100 * kMiB);
  h.now += 5s;
  h.progress.update(100 * kMiB, 100 * kMiB);
  EXPECT_EQ(h.all(), "");
}

TEST(Progress, ANewTotalStartsANewOperation) {
  Harness h(ProgressStyle::kLines, ProgressUnit::kPages);
  h.progress.update(2000, 2000);
  h.progress.update(0, 3000);
  h.now += 1s;
  h.progress.update(3000, 3000);
  EXPECT_EQ(h.all(),
            "restoring: 100% (2000 pages) in 0.0s\n"
            "restoring: 100% (3000 pages) in 1.0s, 3000 pages/s\n");
}

TEST(ProgressBar, RedrawsInPlaceAndEndsWithANewline) {
  Harness h(ProgressStyle::kBar);
  h.progress.update(0, 100 * kMiB);
  h.now += 2s;
  h.progress.update(40 * kMiB, 100 * kMiB);
  h.now += 2s;
  h.progress.update(100 * kMiB, 100 * kMiB);
  ASSERT_EQ(h.out.size(), 3u);
  for (const auto& o : h.out) EXPECT_EQ(o[0], '\r') << o;
  EXPECT_EQ(h.out[1],
            "\rrestoring [############------------------]  40%  40.0 MiB / 100.0 MiB  "
            "20.0 MiB/s  ETA 3s");
  EXPECT_EQ(h.out[2].back(), '\n');
  EXPECT_NE(h.out[2].find("100%  100.0 MiB in 4.0s  25.0 MiB/s"), std::string::npos) << h.out[2];
  EXPECT_EQ(h.lines(), 1u);
}

TEST(ProgressBar, RedrawsAtMostTenTimesASecond) {
  Harness h(ProgressStyle::kBar);
  const std::uint64_t total = 1000 * kMiB;
  for (std::uint64_t done = 0; done < total; done += kMiB) {
    h.progress.update(done, total);
    h.now += 10ms;  // 10 s in all
  }
  h.progress.update(total, total);
  EXPECT_LE(h.out.size(), 102u);
  EXPECT_GE(h.out.size(), 90u);
}

TEST(ProgressBar, BlanksWhatALongerLineLeftBehind) {
  Harness h(ProgressStyle::kBar);
  h.progress.update(0, 100 * kMiB);
  h.now += 1s;
  h.progress.update(1 * kMiB, 100 * kMiB);  // "... 1.0 MiB/s  ETA 1m39s"
  h.now += 1s;
  h.progress.update(99 * kMiB, 100 * kMiB);  // "... 49.5 MiB/s  ETA 1s": one shorter
  ASSERT_EQ(h.out.size(), 3u);
  EXPECT_EQ(h.out[2].size(), h.out[1].size()) << h.out[1] << "\n" << h.out[2];
  EXPECT_EQ(h.out[2].substr(h.out[2].size() - 7), "ETA 1s ");
}

TEST(ProgressBar, AFailedOperationGetsItsNewlineSoTheErrorStartsALine) {
  Harness h(ProgressStyle::kBar);
  h.progress.update(0, 100 * kMiB);
  h.now += 1s;
  h.progress.update(30 * kMiB, 100 * kMiB);
  EXPECT_EQ(h.lines(), 0u);
  h.progress.finish();
  EXPECT_EQ(h.all().back(), '\n');
  h.progress.finish();
  EXPECT_EQ(h.lines(), 1u);
}

TEST(ProgressBar, TheDestructorEndsAnOpenBar) {
  std::string text;
  {
    std::chrono::steady_clock::time_point now{};
    Progress p(
        "restoring", ProgressUnit::kBytes, ProgressStyle::kBar,
        [&](std::string_view s) { text += s; }, [&] { return now; });
    p.update(0, 100 * kMiB);
  }
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
}

TEST(Progress, TheCallbackForwardsToUpdate) {
  Harness h(ProgressStyle::kLines);
  auto fn = h.progress.callback();
  fn(0, 64 * kMiB);
  fn(64 * kMiB, 64 * kMiB);
  EXPECT_EQ(h.lines(), 1u);
}

}  // namespace
}  // namespace quire::cli
