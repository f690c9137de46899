// Shared by the benchmark programs in bench/: a fixed-size log-linear latency histogram
// (nanosecond samples, under 1% relative error), the one-line JSON result format, and a reader
// for a block device's completed-flush counter (to report device flushes per commit).
#ifndef QUIRE_BENCH_BENCH_COMMON_H_
#define QUIRE_BENCH_BENCH_COMMON_H_

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace quire::bench {

// Values below 2^kSubBits are kept exactly; above that every power-of-two range is split into
// 2^(kSubBits-1) equal buckets, so a bucket is at most 1/64 of its value wide.
class LatencyHistogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr uint64_t kHalf = uint64_t{1} << (kSubBits - 1);
  static constexpr size_t kBuckets = (66 - kSubBits) * kHalf;

  void Record(uint64_t ns) {
    ++counts_[Index(ns)];
    ++total_;
  }

  void Merge(const LatencyHistogram& other) {
    for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
  }

  uint64_t total() const { return total_; }

  // The value (ns, bucket midpoint) below which the fraction q of the samples lie.
  double Quantile(double q) const {
    if (total_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total_));
    rank = std::clamp<uint64_t>(rank, 1, total_);
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        auto [low, width] = Bounds(i);
        return static_cast<double>(low) + static_cast<double>(width - 1) / 2.0;
      }
    }
    return 0;
  }

 private:
  static size_t Index(uint64_t v) {
    if (v < (uint64_t{1} << kSubBits)) return static_cast<size_t>(v);
    const int msb = std::bit_width(v) - 1;
    const int shift = msb - (kSubBits - 1);
    const uint64_t top = v >> shift;  // in [kHalf, 2 * kHalf)
    return static_cast<size_t>((msb - kSubBits + 2) * kHalf + (top - kHalf));
  }

  // Lowest value and width of bucket i.
  static std::pair<uint64_t, uint64_t> Bounds(size_t i) {
    if (i < (size_t{1} << kSubBits)) return {i, 1};
    const uint64_t group = i / kHalf;
    const uint64_t top = i % kHalf + kHalf;
    const int shift = static_cast<int>(group) - 1;
    return {top << shift, uint64_t{1} << shift};
  }

  std::array<uint64_t, kBuckets> counts_{};
  uint64_t total_ = 0;
};

using Tags = std::vector<std::pair<std::string, std::string>>;
using Numbers = std::vector<std::pair<std::string, double>>;

// One result line; `tags` are extra string fields (peer, round, placement, ...) and `numbers`
// extra numeric ones.
inline std::string ResultJson(const std::string& scenario, int conns, uint64_t requests,
                              uint64_t errors, double seconds, const LatencyHistogram& h,
                              const Tags& tags, const Numbers& numbers = {}) {
  auto escape = [](const std::string& s) {
    std::string out;
    for (char c : s) {
      if (c == '"' || c == '\\') out += '\\';
      if (static_cast<unsigned char>(c) >= 0x20) out += c;
    }
    return out;
  };
  std::string out = "{\"scenario\":\"" + escape(scenario) + "\"";
  char buf[512];
  std::snprintf(buf, sizeof buf,
                ",\"conns\":%d,\"requests\":%llu,\"errors\":%llu,\"seconds\":%.3f,\"rps\":%.1f,"
                "\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f",
                conns, static_cast<unsigned long long>(requests),
                static_cast<unsigned long long>(errors), seconds,
                seconds > 0 ? static_cast<double>(requests) / seconds : 0.0,
                h.Quantile(0.50) / 1000.0, h.Quantile(0.90) / 1000.0, h.Quantile(0.99) / 1000.0);
  out += buf;
  for (const auto& [k, v] : numbers) {
    std::snprintf(buf, sizeof buf, "%.17g", v);
    out += ",\"" + escape(k) + "\":" + buf;
  }
  for (const auto& [k, v] : tags) out += ",\"" + escape(k) + "\":\"" + escape(v) + "\"";
  out += "}";
  return out;
}

// Parses "key=value" into a tag; returns false when there is no '='.
// The calling thread's CPU time (user + system), in µs.
inline double ThreadCpuUs() {
  timespec ts;
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

inline bool ParseTag(const std::string& arg, Tags* tags) {
  const auto eq = arg.find('=');
  if (eq == std::string::npos || eq == 0) return false;
  tags->emplace_back(arg.substr(0, eq), arg.substr(eq + 1));
  return true;
}

// Flush requests completed by block device `dev` (field 19 of /proc/diskstats, Linux 5.5+),
// or -1 when unknown.
inline int64_t DiskFlushes(const std::string& dev) {
  if (dev.empty()) return -1;
  std::ifstream in("/proc/diskstats");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string x; fields >> x;) f.push_back(x);
    if (f.size() >= 19 && f[2] == dev) return std::stoll(f[18]);
  }
  return -1;
}

}  // namespace quire::bench

#endif  // QUIRE_BENCH_BENCH_COMMON_H_
