#include "cli/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <utility>

#include "cli/units.h"

namespace quire::cli {

namespace {

ProgressStyle stderr_style(bool enabled) {
  if (!enabled) return ProgressStyle::kOff;
  if (!::isatty(STDERR_FILENO)) return ProgressStyle::kLines;
  const char* term = std::getenv("TERM");
  if (term && std::strcmp(term, "dumb") == 0) return ProgressStyle::kLines;
  return ProgressStyle::kBar;
}

double seconds_between(std::chrono::steady_clock::time_point a,
                       std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// "7s", "1m05s", "2h03m": what is left, rounded up to the second.
std::string format_eta(double seconds) {
  const auto s = static_cast<std::uint64_t>(std::ceil(std::max(seconds, 0.0)));
  char buf[48];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%llus", static_cast<unsigned long long>(s));
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%llum%02llus", static_cast<unsigned long long>(s / 60),
                  static_cast<unsigned long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lluh%02llum", static_cast<unsigned long long>(s / 3600),
                  static_cast<unsigned long long>(s / 60 % 60));
  return buf;
}

// "8.6s" under a minute, then as format_eta.
std::string format_elapsed(double seconds) {
  if (seconds >= 60) return format_eta(seconds);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", std::max(seconds, 0.0));
  return buf;
}

// Whole percent, rounded down, so 100 means done.
unsigned percent(std::uint64_t done, std::uint64_t total) {
  if (total == 0 || done >= total) return 100;
  const auto p =
      static_cast<unsigned>(static_cast<double>(done) * 100 / static_cast<double>(total));
  return std::min(p, 99u);
}

// Below this the average rate says more about start-up than about the transfer.
constexpr double kMinRateSeconds = 0.25;

}  // namespace

Progress::Progress(std::string label, ProgressUnit unit, bool enabled)
    : Progress(
          std::move(label), unit, stderr_style(enabled),
          [](std::string_view text) { std::cerr << text << std::flush; },
          [] { return std::chrono::steady_clock::now(); }) {}

Progress::Progress(std::string label, ProgressUnit unit, ProgressStyle style, Sink sink,
                   Clock clock)
    : label_(std::move(label)),
      unit_(unit),
      style_(style),
      sink_(std::move(sink)),
      clock_(std::move(clock)) {}

Progress::~Progress() { finish(); }

std::function<void(std::uint64_t, std::uint64_t)> Progress::callback() {
  return [this](std::uint64_t done, std::uint64_t total) { update(done, total); };
}

void Progress::start(std::uint64_t total, TimePoint now) {
  started_ = true;
  complete_ = false;
  total_ = total;
  done_ = 0;
  start_ = now;
  shown_ = total >= (unit_ == ProgressUnit::kBytes ? kMinBytes : kMinPages);
  last_width_ = 0;
  last_line_ = now;
  last_line_done_ = 0;
}

void Progress::update(std::uint64_t done, std::uint64_t total) {
  if (style_ == ProgressStyle::kOff) return;
  const TimePoint now = clock_();
  // A different total, or `done` going back: the next operation (a second snapshot).
  if (started_ && (total != total_ || done < done_)) finish();
  if (!started_) start(total, now);
  done_ = std::min(done, total);
  if (!shown_ || complete_) return;
  const bool final = done_ == total_;
  if (final) complete_ = true;
  if (style_ == ProgressStyle::kBar) {
    if (final || !bar_open_ || now - last_draw_ >= kRedrawInterval) draw_bar(now, final);
    return;
  }
  const std::uint64_t tenth = (total_ + 9) / 10;
  if (final || (now - last_line_ >= kLineInterval && done_ - last_line_done_ >= tenth))
    print_line(now, final);
}

void Progress::finish() {
  if (bar_open_) sink_("\n");
  bar_open_ = false;
  started_ = false;
}

std::string Progress::quantity(std::uint64_t n, bool with_unit) const {
  if (unit_ == ProgressUnit::kBytes) return format_size(n);
  return std::to_string(n) + (with_unit ? " pages" : "");
}

std::string Progress::rate(TimePoint now) const {
  const double elapsed = seconds_between(start_, now);
  if (elapsed < kMinRateSeconds || done_ == 0) return "";
  const double per_second = static_cast<double>(done_) / elapsed;
  if (unit_ == ProgressUnit::kBytes)
    return format_size(static_cast<std::uint64_t>(per_second)) + "/s";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.0f pages/s", per_second);
  return buf;
}

std::string Progress::eta(TimePoint now) const {
  const double elapsed = seconds_between(start_, now);
  if (elapsed < kMinRateSeconds || done_ == 0) return "";
  const double per_second = static_cast<double>(done_) / elapsed;
  return "ETA " + format_eta(static_cast<double>(total_ - done_) / per_second);
}

void Progress::draw_bar(TimePoint now, bool final) {
  const unsigned pct = percent(done_, total_);
  const auto filled = static_cast<int>(static_cast<double>(done_) * kBarWidth /
                                       static_cast<double>(std::max<std::uint64_t>(total_, 1)));
  std::string line = label_ + " [" + std::string(static_cast<std::size_t>(filled), '#') +
                     std::string(static_cast<std::size_t>(kBarWidth - filled), '-') + "] ";
  char pct_text[8];
  std::snprintf(pct_text, sizeof pct_text, "%3u%%", pct);
  line += pct_text;
  const std::string r = rate(now);
  if (final) {
    line += "  " + quantity(total_, true) + " in " + format_elapsed(seconds_between(start_, now));
    if (!r.empty()) line += "  " + r;
  } else {
    line += "  " + quantity(done_, false) + " / " + quantity(total_, true);
    if (!r.empty()) line += "  " + r + "  " + eta(now);
  }
  const std::size_t width = line.size();
  // Blank what a longer previous line left to the right.
  if (width < last_width_) line += std::string(last_width_ - width, ' ');
  last_width_ = width;
  sink_("\r" + line + (final ? "\n" : ""));
  bar_open_ = !final;
  last_draw_ = now;
}

void Progress::print_line(TimePoint now, bool final) {
  std::string line = label_ + ": " + std::to_string(percent(done_, total_)) + "% (";
  const std::string r = rate(now);
  if (final) {
    line += quantity(total_, true) + ") in " + format_elapsed(seconds_between(start_, now));
    if (!r.empty()) line += ", " + r;
  } else {
    line += quantity(done_, false) + " of " + quantity(total_, true) + ")";
    if (!r.empty()) line += ", " + r + ", " + eta(now);
  }
  sink_(line + "\n");
  last_line_ = now;
  last_line_done_ = done_;
}

}  // namespace quire::cli
