// Replication lag from a commit on the primary to its visibility on a read replica.
//
// Open loop: every 1/rate seconds a new sequence number is inserted on the primary
// (`INSERT INTO lag(seq) VALUES (n)`) over one of --conns keep-alive connections (a write that
// finds every connection busy waits for the first one free; the achieved rate is reported).
// Meanwhile a watcher asks the replica `SELECT max(seq) FROM lag` back to back on one connection.
// A sequence number is visible at the moment the first answer holding it arrives; its lag is
// that moment minus the moment the primary's acknowledgement arrived (an answer can come before
// the acknowledgement: the replica applied it while the answer was on its way; such lags count
// as 0 and are reported as `replica_first`). The watcher's resolution is one replica read (about
// 0.1 ms on 127.0.0.1). Only sequence numbers acknowledged inside the measured window count.
//
//   replica_lag --primary-port 8080 --replica-port 8081 --rate 1000 --seconds 10 --warmup 2
//               --scenario lag-1k --tag placement=...
// Prints one JSON line (bench_common.h's format): p50/p90/p99 of the lag in µs, plus max_us,
// achieved_rate, replica_first and the watcher's reads.
#include <boost/asio.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bench_common.h"

namespace quire::bench {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Options {
  uint16_t primary_port = 0;
  uint16_t replica_port = 0;
  double rate = 1000;
  double seconds = 10;
  double warmup = 2;
  int conns = 16;
  std::string scenario = "replica-lag";
  Tags tags;
};

std::string Pipeline(const std::string& sql) {
  return R"({"baton":null,"requests":[{"type":"execute","stmt":{"sql":")" + sql +
         R"("}},{"type":"close"}]})";
}

// One keep-alive HTTP/1.1 connection, one request at a time.
class Http : public std::enable_shared_from_this<Http> {
 public:
  using Done = std::function<void(bool ok, std::string_view body)>;
  Http(asio::io_context& io, tcp::endpoint ep) : socket_(io), ep_(ep) { buf_.resize(16384); }

  void Connect(std::function<void(bool)> then) {
    socket_.async_connect(ep_, [self = shared_from_this(), then](boost::system::error_code ec) {
      if (!ec) self->socket_.set_option(tcp::no_delay(true), ec);
      then(!ec);
    });
  }

  void Post(const std::string& body, Done done) {
    done_ = std::move(done);
    req_ = "POST /v2/pipeline HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           "Content-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
    header_len_ = 0;
    asio::async_write(socket_, asio::buffer(req_),
                      [self = shared_from_this()](boost::system::error_code ec, size_t) {
                        if (ec) return self->done_(false, "write failed");
                        self->Parse();
                      });
  }

 private:
  void ReadMore() {
    if (len_ == buf_.size()) buf_.resize(buf_.size() * 2);
    socket_.async_read_some(asio::buffer(buf_.data() + len_, buf_.size() - len_),
                            [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                              if (ec) return self->done_(false, "read failed");
                              self->len_ += n;
                              self->Parse();
                            });
  }

  void Parse() {
    const std::string_view data(buf_.data(), len_);
    if (header_len_ == 0) {
      const size_t end = data.find("\r\n\r\n");
      if (end == std::string_view::npos) return ReadMore();
      header_len_ = end + 4;
      status_ = data.size() > 12 ? std::atoi(std::string(data.substr(9, 3)).c_str()) : 0;
      content_length_ = 0;
      std::string head(data.substr(0, end));
      for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const size_t cl = head.find("content-length:");
      if (cl != std::string::npos) content_length_ = std::strtoull(head.c_str() + cl + 15, nullptr, 10);
    }
    if (len_ < header_len_ + content_length_) return ReadMore();
    const std::string body(data.substr(header_len_, content_length_));
    const size_t used = header_len_ + content_length_;
    std::memmove(buf_.data(), buf_.data() + used, len_ - used);
    len_ -= used;
    header_len_ = 0;
    done_(status_ == 200 && body.find("\"type\":\"error\"") == std::string::npos, body);
  }

  tcp::socket socket_;
  tcp::endpoint ep_;
  std::string req_;
  std::vector<char> buf_;
  size_t len_ = 0;
  size_t header_len_ = 0;
  size_t content_length_ = 0;
  int status_ = 0;
  Done done_;
};

int64_t Micros(Clock::time_point t, Clock::time_point origin) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t - origin).count();
}

int Run(const Options& o) {
  asio::io_context io(1);
  const auto addr = asio::ip::make_address("127.0.0.1");
  const tcp::endpoint primary(addr, o.primary_port), replica(addr, o.replica_port);

  const auto total = static_cast<size_t>(o.rate * (o.warmup + o.seconds)) + 1;
  std::vector<int64_t> acked(total + 1, -1), visible(total + 1, -1);
  const auto origin = Clock::now() + std::chrono::milliseconds(200);
  const auto measure_from = origin + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(o.warmup));
  const auto end = measure_from + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(o.seconds));
  uint64_t errors = 0, watcher_reads = 0;
  size_t next_seq = 1;    // the next sequence number to schedule
  size_t max_seen = 0;    // the largest seq the replica has shown
  size_t last_acked = 0;  // the largest seq acknowledged
  bool writing = true;

  std::vector<std::shared_ptr<Http>> idle;
  std::deque<size_t> backlog;  // scheduled sequence numbers waiting for a free connection
  std::function<void(std::shared_ptr<Http>, size_t)> send;
  send = [&](std::shared_ptr<Http> c, size_t seq) {
    c->Post(Pipeline("INSERT INTO lag(seq) VALUES (" + std::to_string(seq) + ")"),
            [&, c, seq](bool ok, std::string_view body) {
              if (ok) {
                acked[seq] = Micros(Clock::now(), origin);
                last_acked = std::max(last_acked, seq);
              } else if (++errors <= 3) {
                std::cerr << "write " << seq << " failed: " << body.substr(0, 200) << "\n";
              }
              if (!backlog.empty()) {
                const size_t s = backlog.front();
                backlog.pop_front();
                send(c, s);
              } else {
                idle.push_back(c);
              }
            });
  };

  // The open-loop schedule: one tick per write.
  asio::steady_timer ticker(io);
  const auto period = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / o.rate));
  std::function<void()> tick;
  auto next_at = origin;
  tick = [&]() {
    const auto now = Clock::now();
    while (next_at <= now && next_seq <= total) {
      const size_t seq = next_seq++;
      if (!idle.empty()) {
        auto c = idle.back();
        idle.pop_back();
        send(c, seq);
      } else {
        backlog.push_back(seq);
      }
      next_at += period;
    }
    if (now >= end || next_seq > total) {
      writing = false;
      return;
    }
    ticker.expires_at(next_at);
    ticker.async_wait([&](boost::system::error_code) { tick(); });
  };

  // The watcher: replica reads back to back.
  auto watcher = std::make_shared<Http>(io, replica);
  const std::string watch_body = Pipeline("SELECT max(seq) FROM lag");
  std::function<void()> watch;
  watch = [&]() {
    watcher->Post(watch_body, [&](bool ok, std::string_view body) {
      const auto now = Micros(Clock::now(), origin);
      ++watcher_reads;
      if (ok) {
        const size_t at = body.find("\"value\":\"");
        if (at != std::string_view::npos) {
          const size_t m = std::strtoull(std::string(body.substr(at + 9, 24)).c_str(), nullptr, 10);
          for (size_t s = max_seen + 1; s <= m && s <= total; ++s) visible[s] = now;
          max_seen = std::max(max_seen, m);
        }
      } else if (++errors <= 3) {
        std::cerr << "replica read failed: " << body.substr(0, 200) << "\n";
      }
      // Done once writing ended and the replica shows the last acknowledged write (or 5 s later).
      if (!writing && (max_seen >= last_acked || Clock::now() > end + std::chrono::seconds(5))) {
        io.stop();
        return;
      }
      watch();
    });
  };

  int pending = o.conns + 1;
  auto connected = [&](bool ok) {
    if (!ok) {
      std::cerr << "replica_lag: cannot connect\n";
      std::exit(1);
    }
    if (--pending == 0) {
      watch();
      ticker.expires_at(origin);
      ticker.async_wait([&](boost::system::error_code) { tick(); });
    }
  };
  for (int i = 0; i < o.conns; ++i) {
    auto c = std::make_shared<Http>(io, primary);
    idle.push_back(c);
    c->Connect(connected);
  }
  watcher->Connect(connected);
  io.run();

  LatencyHistogram hist;
  uint64_t counted = 0, replica_first = 0, never_seen = 0;
  int64_t max_lag = 0;
  const int64_t from_us = Micros(measure_from, origin), to_us = Micros(end, origin);
  for (size_t s = 1; s <= total; ++s) {
    if (acked[s] < from_us || acked[s] > to_us) continue;
    if (visible[s] < 0) {
      ++never_seen;
      continue;
    }
    int64_t lag = visible[s] - acked[s];
    if (lag < 0) {
      ++replica_first;
      lag = 0;
    }
    max_lag = std::max(max_lag, lag);
    hist.Record(lag * 1000);
    ++counted;
  }
  Numbers numbers{{"max_us", static_cast<double>(max_lag)},
                       {"achieved_rate", static_cast<double>(counted + never_seen) / o.seconds},
                       {"target_rate", o.rate},
                       {"replica_first", static_cast<double>(replica_first)},
                       {"never_seen", static_cast<double>(never_seen)},
                       {"watcher_reads", static_cast<double>(watcher_reads)}};
  std::cout << ResultJson(o.scenario, o.conns, counted, errors, o.seconds, hist, o.tags, numbers)
            << std::endl;
  return never_seen == 0 && errors == 0 ? 0 : 1;
}

}  // namespace
}  // namespace quire::bench

int main(int argc, char** argv) {
  quire::bench::Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--primary-port") o.primary_port = static_cast<uint16_t>(std::stoi(value()));
    else if (a == "--replica-port") o.replica_port = static_cast<uint16_t>(std::stoi(value()));
    else if (a == "--rate") o.rate = std::stod(value());
    else if (a == "--seconds") o.seconds = std::stod(value());
    else if (a == "--warmup") o.warmup = std::stod(value());
    else if (a == "--conns") o.conns = std::stoi(value());
    else if (a == "--scenario") o.scenario = value();
    else if (a == "--tag") {
      if (!quire::bench::ParseTag(value(), &o.tags)) {
        std::cerr << "--tag wants key=value\n";
        return 2;
      }
    } else {
      std::cerr << "usage: replica_lag --primary-port P --replica-port R [--rate N] [--seconds S] "
                   "[--warmup S] [--conns N] [--scenario NAME] [--tag k=v]\n";
      return 2;
    }
  }
  if (!o.primary_port || !o.replica_port || o.rate <= 0 || o.seconds <= 0) {
    std::cerr << "replica_lag: --primary-port, --replica-port and a positive --rate are needed\n";
    return 2;
  }
  return quire::bench::Run(o);
}
