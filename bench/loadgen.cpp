// Closed-loop Hrana-over-HTTP load generator for the quire benchmarks.
//
// Opens N keep-alive HTTP/1.1 connections from one single-threaded io_context; each connection
// sends one POST /v2/pipeline (an execute plus a close), waits for the whole response, and
// repeats until the run ends. Point reads pick a random id in 1..rows; inserts add a random
// short text. Requests completed during the warm-up are not counted. A response counts as an
// error unless its status is 200 and its first pipeline result is "ok" (and, for reads, it has
// a row). Prints one JSON line: scenario, conns, requests, errors, seconds, rps, p50/p90/p99 (µs).
//
//   loadgen --port 8080 --conns 64 --seconds 10 --warmup 2 --workload read
//           --scenario point-read-c64 --tag peer=quire
#include <algorithm>
#include <boost/asio.hpp>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bench_common.h"

namespace quire::bench {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

enum class Workload { kRead, kInsert };

struct Options {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  int conns = 1;
  double seconds = 10;
  double warmup = 2;
  Workload workload = Workload::kRead;
  int64_t rows = 100000;
  std::string scenario;
  std::string path = "/v2/pipeline";
  bool check = true;
  std::string disk;  // block device whose flushes to count, e.g. vda
  Tags tags;
};

// State shared by all connections of a run (one thread, so no locking).
struct Run {
  Options opt;
  Clock::time_point measure_start;
  Clock::time_point end;
  LatencyHistogram hist;
  uint64_t requests = 0;
  uint64_t errors = 0;
  uint64_t warmup_errors = 0;
  uint64_t first_errors_shown = 0;
  std::mt19937_64 rng{std::random_device{}()};
  int open = 0;
};

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// The first "type" after "results" whose value is "ok" or "error" is the execute's outcome
// (nested response and value objects have other types).
bool ExecuteOk(std::string_view body, bool want_row) {
  size_t pos = body.find("\"results\"");
  if (pos == std::string_view::npos) return false;
  while ((pos = body.find("\"type\"", pos)) != std::string_view::npos) {
    pos += 6;
    while (pos < body.size() && (body[pos] == ' ' || body[pos] == ':')) ++pos;
    const std::string_view rest = body.substr(pos);
    if (rest.starts_with("\"error\"")) return false;
    if (rest.starts_with("\"ok\"")) {
      return !want_row || body.find("\"rows\":[]") == std::string_view::npos;
    }
  }
  return false;
}

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::io_context& io, Run& run, tcp::endpoint ep)
      : io_(io), run_(run), ep_(ep), socket_(io), retry_(io) {
    rbuf_.resize(16 * 1024);
    const char* sql = run_.opt.workload == Workload::kRead ? "SELECT v FROM t WHERE id = ?"
                                                           : "INSERT INTO t(v) VALUES (?)";
    body_prefix_ = std::string(R"({"baton":null,"requests":[{"type":"execute","stmt":{"sql":")") +
                   sql + R"(","args":[{"type":")" +
                   (run_.opt.workload == Workload::kRead ? "integer" : "text") + R"(","value":")";
    body_suffix_ = std::string(R"("}],"want_rows":)") +
                   (run_.opt.workload == Workload::kRead ? "true" : "false") +
                   R"(}},{"type":"close"}]})";
    head_ = "POST " + run_.opt.path + " HTTP/1.1\r\nHost: " + run_.opt.host + ":" +
            std::to_string(run_.opt.port) +
            "\r\nContent-Type: application/json\r\nAccept: */*\r\nContent-Length: ";
  }

  void Start() {
    ++run_.open;
    Connect();
  }

 private:
  void Connect() {
    socket_ = tcp::socket(io_);
    socket_.async_connect(ep_, [self = shared_from_this()](boost::system::error_code ec) {
      if (ec) return self->Fail("connect: " + ec.message());
      self->socket_.set_option(tcp::no_delay(true), ec);
      self->rlen_ = 0;
      self->SendNext();
    });
  }

  void SendNext() {
    if (Clock::now() >= run_.end) return Finish();
    std::string value;
    if (run_.opt.workload == Workload::kRead) {
      value = std::to_string(std::uniform_int_distribution<int64_t>(1, run_.opt.rows)(run_.rng));
    } else {
      char hex[24];
      std::snprintf(hex, sizeof hex, "v%016llx", static_cast<unsigned long long>(run_.rng()));
      value = hex;
    }
    const size_t body_len = body_prefix_.size() + value.size() + body_suffix_.size();
    req_.clear();
    req_.append(head_).append(std::to_string(body_len)).append("\r\n\r\n");
    req_.append(body_prefix_).append(value).append(body_suffix_);
    header_len_ = 0;
    started_ = Clock::now();
    asio::async_write(socket_, asio::buffer(req_),
                      [self = shared_from_this()](boost::system::error_code ec, size_t) {
                        if (ec) return self->Fail("write: " + ec.message());
                        self->Parse();
                      });
  }

  void ReadMore() {
    if (rlen_ == rbuf_.size()) rbuf_.resize(rbuf_.size() * 2);
    socket_.async_read_some(asio::buffer(rbuf_.data() + rlen_, rbuf_.size() - rlen_),
                            [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                              if (ec) return self->Fail("read: " + ec.message());
                              self->rlen_ += n;
                              self->Parse();
                            });
  }

  // Consumes one complete response from rbuf_ when it is there, else reads more.
  void Parse() {
    const std::string_view data(rbuf_.data(), rlen_);
    if (header_len_ == 0) {
      const size_t end = data.find("\r\n\r\n");
      if (end == std::string_view::npos) return ReadMore();
      header_len_ = end + 4;
      const std::string_view head = data.substr(0, end);
      status_ = 0;
      if (head.size() >= 12 && head.starts_with("HTTP/1.")) {
        status_ = std::atoi(std::string(head.substr(9, 3)).c_str());
      }
      content_length_ = std::string_view::npos;
      close_after_ = false;
      size_t line = head.find("\r\n");
      while (line != std::string_view::npos) {
        const size_t next = head.find("\r\n", line + 2);
        const std::string_view h = head.substr(
            line + 2, next == std::string_view::npos ? std::string_view::npos : next - line - 2);
        const size_t colon = h.find(':');
        if (colon != std::string_view::npos) {
          const std::string_view name = h.substr(0, colon);
          std::string_view value = h.substr(colon + 1);
          while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
          if (IEquals(name, "content-length")) {
            content_length_ = std::strtoull(std::string(value).c_str(), nullptr, 10);
          } else if (IEquals(name, "connection") && IEquals(value, "close")) {
            close_after_ = true;
          }
        }
        line = next;
      }
      if (content_length_ == std::string_view::npos) {
        return Fail("response without Content-Length");
      }
    }
    if (rlen_ < header_len_ + content_length_) return ReadMore();

    const auto done = Clock::now();
    const std::string_view body = data.substr(header_len_, content_length_);
    const bool ok = status_ == 200 &&
                    (!run_.opt.check || ExecuteOk(body, run_.opt.workload == Workload::kRead));
    if (started_ >= run_.measure_start && done <= run_.end) {
      if (ok) {
        ++run_.requests;
        run_.hist.Record(
            std::chrono::duration_cast<std::chrono::nanoseconds>(done - started_).count());
      } else {
        CountError("bad response: status " + std::to_string(status_) + " body " +
                   std::string(body.substr(0, 300)));
      }
    } else if (!ok) {
      ++run_.warmup_errors;
    }
    const size_t used = header_len_ + content_length_;
    std::memmove(rbuf_.data(), rbuf_.data() + used, rlen_ - used);
    rlen_ -= used;
    header_len_ = 0;
    if (close_after_) {
      boost::system::error_code ignored;
      socket_.close(ignored);
      if (Clock::now() >= run_.end) return Finish();
      return Connect();
    }
    SendNext();
  }

  void CountError(const std::string& what) {
    ++run_.errors;
    if (run_.first_errors_shown < 3) {
      ++run_.first_errors_shown;
      std::cerr << "loadgen: " << what << "\n";
    }
  }

  // Counts the failure, then reconnects after a short pause (unless the run is over).
  void Fail(const std::string& what) {
    const auto now = Clock::now();
    if (now < run_.measure_start) {
      ++run_.warmup_errors;
    } else if (now < run_.end) {
      CountError(what);
    }
    boost::system::error_code ignored;
    socket_.close(ignored);
    if (Clock::now() >= run_.end) return Finish();
    retry_.expires_after(std::chrono::milliseconds(10));
    retry_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->Connect();
    });
  }

  void Finish() {
    boost::system::error_code ignored;
    socket_.close(ignored);
    if (--run_.open == 0) io_.stop();
  }

  asio::io_context& io_;
  Run& run_;
  tcp::endpoint ep_;
  tcp::socket socket_;
  asio::steady_timer retry_;
  std::string head_, body_prefix_, body_suffix_, req_;
  std::vector<char> rbuf_;
  size_t rlen_ = 0;
  size_t header_len_ = 0;
  size_t content_length_ = 0;
  int status_ = 0;
  bool close_after_ = false;
  Clock::time_point started_;
};

[[noreturn]] void Usage(const char* why) {
  std::cerr << "loadgen: " << why
            << "\nusage: loadgen --port P [--host 127.0.0.1] [--conns N] [--seconds S]"
               " [--warmup W] [--workload read|insert] [--rows 100000] [--scenario NAME]"
               " [--path /v2/pipeline] [--no-check] [--disk DEV] [--tag key=value]...\n";
  std::exit(2);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--host") {
      o.host = next();
    } else if (a == "--port") {
      o.port = static_cast<uint16_t>(std::stoi(next()));
    } else if (a == "--conns") {
      o.conns = std::stoi(next());
    } else if (a == "--seconds") {
      o.seconds = std::stod(next());
    } else if (a == "--warmup") {
      o.warmup = std::stod(next());
    } else if (a == "--rows") {
      o.rows = std::stoll(next());
    } else if (a == "--scenario") {
      o.scenario = next();
    } else if (a == "--path") {
      o.path = next();
    } else if (a == "--no-check") {
      o.check = false;
    } else if (a == "--disk") {
      o.disk = next();
    } else if (a == "--tag") {
      if (!ParseTag(next(), &o.tags)) Usage("--tag wants key=value");
    } else if (a == "--workload") {
      const std::string w = next();
      if (w == "read") {
        o.workload = Workload::kRead;
      } else if (w == "insert") {
        o.workload = Workload::kInsert;
      } else {
        Usage("--workload is read or insert");
      }
    } else {
      Usage(("unknown argument " + a).c_str());
    }
  }
  if (o.port == 0) Usage("--port is required");
  if (o.conns < 1 || o.seconds <= 0 || o.warmup < 0 || o.rows < 1) Usage("bad numbers");
  if (o.scenario.empty()) {
    o.scenario = std::string(o.workload == Workload::kRead ? "point-read" : "insert") + "-c" +
                 std::to_string(o.conns);
  }
  return o;
}

int Main(int argc, char** argv) {
  Run run;
  run.opt = ParseArgs(argc, argv);
  asio::io_context io(1);
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(run.opt.host, ec);
  if (ec) Usage("--host must be an IP address");
  const tcp::endpoint ep(addr, run.opt.port);

  const auto start = Clock::now();
  run.measure_start = start + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(run.opt.warmup));
  run.end = run.measure_start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(run.opt.seconds));
  for (int i = 0; i < run.opt.conns; ++i) {
    std::make_shared<Connection>(io, run, ep)->Start();
  }
  // Device flushes during the measured window (read when the window opens and closes).
  int64_t flushes_at_start = -1, flushes_at_end = -1;
  asio::steady_timer window_open(io), window_close(io);
  if (!run.opt.disk.empty()) {
    window_open.expires_at(run.measure_start);
    window_open.async_wait([&](boost::system::error_code e) {
      if (!e) flushes_at_start = DiskFlushes(run.opt.disk);
    });
    window_close.expires_at(run.end);
    window_close.async_wait([&](boost::system::error_code e) {
      if (!e) flushes_at_end = DiskFlushes(run.opt.disk);
    });
  }
  // A server that stops answering must not hang the run.
  asio::steady_timer watchdog(io);
  watchdog.expires_at(run.end + std::chrono::seconds(5));
  watchdog.async_wait([&](boost::system::error_code e) {
    if (!e) {
      std::cerr << "loadgen: " << run.open << " connection(s) still waiting at the end\n";
      io.stop();
    }
  });
  io.run();

  if (run.warmup_errors > 0) {
    std::cerr << "loadgen: " << run.warmup_errors << " error(s) during warm-up\n";
  }
  if (flushes_at_end < 0) flushes_at_end = DiskFlushes(run.opt.disk);
  Numbers numbers;
  if (flushes_at_start >= 0 && flushes_at_end >= 0) {
    numbers.emplace_back("dev_flushes", static_cast<double>(flushes_at_end - flushes_at_start));
  }
  std::cout << ResultJson(run.opt.scenario, run.opt.conns, run.requests, run.errors,
                          run.opt.seconds, run.hist, run.opt.tags, numbers)
            << std::endl;
  return run.requests > 0 ? 0 : 1;
}

}  // namespace
}  // namespace quire::bench

int main(int argc, char** argv) { return quire::bench::Main(argc, argv); }
