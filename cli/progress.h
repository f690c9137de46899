// Progress output for the long operations of the `quire` command (snapshot uploads, restores),
// written to stderr so stdout stays what scripts parse.
//
// On a terminal, one line redrawn in place with '\r', at most kRedrawInterval apart:
//
//   restoring [############------------------]  40%  120.5 MiB / 301.2 MiB  35.2 MiB/s  ETA 5s
//
// ending, when the operation reaches its total, with the whole bar, the time taken and a newline.
// Anywhere else (a pipe, a log file, TERM=dumb) plain lines without control characters: one when
// at least kLineInterval has passed AND the operation has moved at least a tenth of its total
// since the last line (so at most one a tenth and one per kLineInterval), and a final line:
//
//   restoring: 40% (120.5 MiB of 301.2 MiB), 35.2 MiB/s, ETA 5s
//   restoring: 100% (301.2 MiB) in 8.6s, 35.0 MiB/s
//
// Operations smaller than kMinBytes / kMinPages print nothing: they end before anyone would read
// it. One Progress may report several operations in turn (a callback whose total changes, or
// whose `done` goes back, starts a new one).
//
// Thread model: not thread-safe; update() and finish() from the thread running the operation
// (the backup library calls its ProgressFn on the calling thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace quire::cli {

enum class ProgressUnit { kBytes, kPages };

enum class ProgressStyle {
  kOff,    // print nothing
  kBar,    // a line redrawn in place (a terminal)
  kLines,  // plain lines (anything else)
};

class Progress {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  using Sink = std::function<void(std::string_view)>;  // receives finished text, '\r' or '\n'

  static constexpr std::uint64_t kMinBytes = 4u << 20;
  static constexpr std::uint64_t kMinPages = 1000;
  static constexpr std::chrono::milliseconds kRedrawInterval{100};
  static constexpr std::chrono::seconds kLineInterval{2};
  static constexpr int kBarWidth = 30;

  // Writes to stderr: kBar when stderr is a terminal and TERM is not "dumb", kLines otherwise;
  // kOff when !enabled (--no-progress).
  Progress(std::string label, ProgressUnit unit, bool enabled = true);
  // The seam for tests: a given style, where the text goes, and what time it is.
  Progress(std::string label, ProgressUnit unit, ProgressStyle style, Sink sink, Clock clock);
  // Calls finish().
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // `done` of `total` units so far. The call that reaches `total` prints the final line.
  void update(std::uint64_t done, std::uint64_t total);
  // Ends the output of an operation that stopped short of its total (it failed): a bar still
  // on screen gets its newline, so the error printed next starts a line of its own. Nothing
  // otherwise; safe to call more than once.
  void finish();
  // A callback for the backup library (backup::ProgressFn has this type) forwarding to
  // update(); *this must outlive every call.
  std::function<void(std::uint64_t, std::uint64_t)> callback();

  ProgressStyle style() const { return style_; }

 private:
  using TimePoint = std::chrono::steady_clock::time_point;

  void start(std::uint64_t total, TimePoint now);
  void draw_bar(TimePoint now, bool final);
  void print_line(TimePoint now, bool final);
  // "120.5 MiB" or "1200" (pages); with_unit appends " pages" to a page count.
  std::string quantity(std::uint64_t n, bool with_unit) const;
  // Units per second since the start, "" until it means something.
  std::string rate(TimePoint now) const;
  // "ETA 5s", "" while the rate is unknown.
  std::string eta(TimePoint now) const;

  std::string label_;
  ProgressUnit unit_;
  ProgressStyle style_;
  Sink sink_;
  Clock clock_;

  // The operation being reported.
  bool started_ = false;
  bool shown_ = false;     // big enough to report
  bool complete_ = false;  // reached its total; the final line is out
  std::uint64_t total_ = 0;
  std::uint64_t done_ = 0;
  TimePoint start_{};
  // kBar: when it was last drawn, and how wide (to blank what a shorter line leaves behind).
  bool bar_open_ = false;  // a bar is on screen without its newline
  TimePoint last_draw_{};
  std::size_t last_width_ = 0;
  // kLines: when the last line was printed and what it said.
  TimePoint last_line_{};
  std::uint64_t last_line_done_ = 0;
};

}  // namespace quire::cli
