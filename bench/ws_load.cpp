// WebSocket load test for quire: many Hrana-over-WebSocket connections held open at once.
//
// One thread runs one Boost.Asio io_context; every connection is a C++20 coroutine with a
// Boost.Beast websocket client. The run has three phases, each printing one JSON line in the
// format of bench_common.h (scenario, conns, requests, errors, seconds, rps, p50/p90/p99 in µs,
// plus phase-specific numbers and the tags):
//
//  1. open  (ws-open-cN): opens N connections (at most --open-concurrency handshakes at a time),
//     each doing the WebSocket upgrade (--subprotocol hrana2 or hrana3), hello and open_stream.
//     Once all are open it waits --idle seconds and reads the server's memory (/proc/PID/status
//     of --pid) again: kib_per_idle_conn = (VmRSS with N idle connections - VmRSS before any) / N,
//     also split into anonymous (heap) and file-backed pages. Latencies are from connect to
//     open_stream's answer.
//  2. load  (ws-point-read-cN): every connection sends `SELECT v FROM t WHERE id = ?` with a
//     random id in 1..rows and waits for the answer, back to back (closed loop), or paced at
//     --rate requests/s in total (ws-paced-point-read-cN: each connection keeps its own schedule
//     and latency counts from the scheduled send time, so a slow server cannot hide behind a
//     client that waits for it). Requests finished in the first --warmup seconds are not counted.
//     A response counts as an error unless it is response_ok with the request's request_id and a
//     row. Reports ops/s, latencies, served_conns (connections that completed at least one
//     measured request), min/median/max measured requests per connection, connections lost, the
//     CPU used by the server and by this program in the window (which side was saturated), and
//     the server's memory at the end of the load, while every stream is still open.
//  3. close (ws-close-cN): closes every connection with a WebSocket close handshake (1000) and
//     reports how many closed cleanly, how long it took, and the server's memory a second later.
//
// Every line carries the tag `loadavg` (/proc/loadavg when it was printed): the machine is shared.
// Exit status: 0 when every connection opened, was served and closed cleanly without errors;
// 1 when any of that failed; 2 on bad arguments. Traffic goes only to --host (an IP address).
//
//   ws_load --port P --pid SERVER_PID [--conns 2000] [--seconds 10] [--warmup 2] [--idle 2]
//           [--rate R] [--tag key=value]...
#include <unistd.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bench_common.h"

namespace quire::bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

struct Options {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  int pid = 0;  // the server's, for its RSS; 0 = do not measure memory
  int conns = 2000;
  double seconds = 10;
  double warmup = 2;
  double idle = 2;             // seconds all connections sit idle before RSS is read
  double rate = 0;             // requests/s in total; 0 = closed loop
  int open_concurrency = 100;  // handshakes in flight at once
  double open_timeout = 60;    // seconds for phase 1 before stragglers are given up
  int64_t rows = 100000;
  std::string subprotocol = "hrana2";
  Tags tags;
};

Clock::duration Seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

double SecondsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

uint64_t NanosBetween(Clock::time_point a, Clock::time_point b) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

// A field of /proc/PID/status in KiB ("VmRSS:", "RssAnon:"), or -1.
double StatusKib(int pid, const std::string& field) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(field)) return std::strtod(line.c_str() + field.size(), nullptr);
  }
  return -1;
}

// Kernel memory held by all TCP sockets of the machine (both ends of every connection), KiB.
double TcpMemKib() {
  std::ifstream in("/proc/net/sockstat");
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("TCP:")) continue;
    std::istringstream fields(line);
    for (std::string word; fields >> word;) {
      std::string value;
      if (word == "mem" && fields >> value) return std::strtod(value.c_str(), nullptr) * 4.0;
    }
  }
  return -1;
}

// The three load averages as /proc/loadavg gives them ("1.02 0.80 0.61").
std::string LoadAverages() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

// CPU time (user + system) a process has used so far, in seconds, or -1. pid 0 = this one.
double CpuSeconds(int pid) {
  std::ifstream in(pid > 0 ? "/proc/" + std::to_string(pid) + "/stat" : "/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return -1;
  const size_t paren = line.rfind(')');  // the command name may hold spaces
  if (paren == std::string::npos) return -1;
  std::istringstream fields(line.substr(paren + 2));
  std::string f;
  double ticks = 0;
  // Fields 3.. follow the name; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i >= 14) ticks += std::strtod(f.c_str(), nullptr);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Rounds to 1/8 so that the JSON shows a short, exact number (4.125, not 4.1239999999999997).
double Eighths(double v) { return std::round(v * 8.0) / 8.0; }

// A one-shot barrier: Wait() suspends until Open() has been called.
class Gate {
 public:
  explicit Gate(asio::io_context& io) : timer_(io, Clock::time_point::max()) {}

  asio::awaitable<void> Wait() {
    while (!open_) co_await timer_.async_wait(kTuple);
  }
  void Open() {
    open_ = true;
    timer_.cancel();
  }

 private:
  asio::steady_timer timer_;
  bool open_ = false;
};

// Returns once `count` reaches `target` (checked when Note() is called).
class Countdown {
 public:
  explicit Countdown(asio::io_context& io) : gate_(io) {}
  void SetTarget(int target) {
    target_ = target;
    if (count_ >= target_) gate_.Open();
  }
  void Note() {
    if (++count_ >= target_) gate_.Open();
  }
  asio::awaitable<void> Wait() { return gate_.Wait(); }

 private:
  Gate gate_;
  int count_ = 0;
  int target_ = 1 << 30;
};

// State shared by every connection (one thread, so no locking).
struct Run {
  explicit Run(asio::io_context& context)
      : io(context),
        opened_or_failed(context),
        start_load(context),
        loaded(context),
        start_close(context),
        closed(context) {}

  void ShowError(const std::string& what) {
    if (errors_shown < 5) {
      ++errors_shown;
      std::cerr << "ws_load: " << what << "\n";
    }
  }

  asio::io_context& io;
  Options opt;
  tcp::endpoint endpoint;
  std::mt19937_64 rng{std::random_device{}()};
  int errors_shown = 0;

  // Phase 1.
  int in_flight = 0;
  int opened = 0;
  int open_failed = 0;
  LatencyHistogram open_hist;
  Countdown opened_or_failed;

  // Phase 2.
  Gate start_load;
  Clock::time_point load_start, measure_start, end;
  LatencyHistogram hist;
  uint64_t requests = 0;
  uint64_t errors = 0;
  uint64_t warmup_errors = 0;
  int dropped = 0;
  Countdown loaded;

  // Phase 3.
  Gate start_close;
  Clock::time_point close_start;
  LatencyHistogram close_hist;
  int closed_clean = 0;
  int close_failed = 0;
  Countdown closed;
};

// The message carries response_ok for `request_id` (and a row, when `want_row`).
bool ResponseOk(std::string_view msg, int64_t request_id, bool want_row) {
  if (msg.find(R"("type":"response_ok")") == std::string_view::npos) return false;
  const std::string id = "\"request_id\":" + std::to_string(request_id);
  const size_t at = msg.find(id);
  if (at == std::string_view::npos) return false;
  const size_t after = at + id.size();
  if (after < msg.size() && msg[after] >= '0' && msg[after] <= '9') return false;
  return !want_row || msg.find(R"("rows":[[)") != std::string_view::npos;
}

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  enum class State { kOpening, kOpen, kLoading, kLoaded, kClosing, kDone, kFailed };

  Connection(Run& run, int index) : run_(run), index_(index), ws_(run.io) {}

  State state() const { return state_; }
  bool opened() const { return opened_; }
  uint64_t measured() const { return measured_; }

  // Tears the TCP connection down; whatever the connection is waiting for fails.
  void Abort() {
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).close(ignored);
  }

  asio::awaitable<void> Serve() {
    auto self = shared_from_this();
    const auto began = Clock::now();
    const bool ok = co_await Open();
    --run_.in_flight;
    if (ok) {
      ++run_.opened;
      run_.open_hist.Record(NanosBetween(began, Clock::now()));
      state_ = State::kOpen;
      opened_ = true;
    } else {
      ++run_.open_failed;
      state_ = State::kFailed;
      Abort();
    }
    run_.opened_or_failed.Note();
    if (!ok) co_return;

    co_await run_.start_load.Wait();
    state_ = State::kLoading;
    const bool alive = co_await Load();
    state_ = alive ? State::kLoaded : State::kFailed;
    run_.loaded.Note();

    if (alive) {
      co_await run_.start_close.Wait();
      state_ = State::kClosing;
      auto [ec] = co_await ws_.async_close(websocket::close_code::normal, kTuple);
      if (ec) {
        ++run_.close_failed;
        run_.ShowError("connection " + std::to_string(index_) + ": close: " + ec.message());
      } else {
        ++run_.closed_clean;
        run_.close_hist.Record(NanosBetween(run_.close_start, Clock::now()));
      }
      state_ = State::kDone;
    } else {
      ++run_.close_failed;
    }
    Abort();
    run_.closed.Note();
  }

 private:
  // Connects, upgrades, says hello and opens stream 1.
  asio::awaitable<bool> Open() {
    auto& socket = beast::get_lowest_layer(ws_);
    auto [cec] = co_await socket.async_connect(run_.endpoint, kTuple);
    if (cec) co_return Fail("connect: " + cec.message());
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);

    ws_.set_option(websocket::stream_base::decorator(
        [proto = run_.opt.subprotocol](websocket::request_type& req) {
          req.set(http::field::sec_websocket_protocol, proto);
          req.set(http::field::user_agent, "quire-ws_load");
        }));
    websocket::response_type res;
    const std::string host = run_.opt.host + ":" + std::to_string(run_.opt.port);
    auto [hec] = co_await ws_.async_handshake(res, host, "/", kTuple);
    if (hec) co_return Fail("handshake: " + hec.message());
    if (res[http::field::sec_websocket_protocol] != run_.opt.subprotocol) {
      co_return Fail("the server chose subprotocol '" +
                     std::string(res[http::field::sec_websocket_protocol]) + "'");
    }
    ws_.text(true);

    if (!co_await Send(R"({"type":"hello","jwt":null})")) co_return false;
    if (!co_await Receive()) co_return false;
    if (Message().find(R"("type":"hello_ok")") == std::string_view::npos) {
      co_return Fail("hello answered with " + std::string(Message().substr(0, 200)));
    }
    const std::string open_stream =
        R"({"type":"request","request_id":1,"request":{"type":"open_stream","stream_id":1}})";
    if (!co_await Send(open_stream)) co_return false;
    if (!co_await Receive()) co_return false;
    if (!ResponseOk(Message(), 1, false)) {
      co_return Fail("open_stream answered with " + std::string(Message().substr(0, 200)));
    }
    co_return true;
  }

  // Runs point reads until the end of the measurement; false when the connection was lost.
  asio::awaitable<bool> Load() {
    const bool paced = run_.opt.rate > 0;
    Clock::duration interval{};
    Clock::time_point next = run_.load_start;
    asio::steady_timer pace(run_.io);
    if (paced) {
      interval = Seconds(run_.opt.conns / run_.opt.rate);
      // Spread the connections' schedules over one interval.
      next += std::chrono::duration_cast<Clock::duration>(
          interval * std::uniform_real_distribution<double>(0, 1)(run_.rng));
    }
    std::uniform_int_distribution<int64_t> pick(1, run_.opt.rows);
    std::string request;
    int64_t request_id = 1;
    for (;;) {
      Clock::time_point started;
      if (paced) {
        if (next >= run_.end) break;
        if (next > Clock::now()) {
          pace.expires_at(next);
          co_await pace.async_wait(kTuple);
        }
        started = next;
        next += interval;
      } else {
        started = Clock::now();
        if (started >= run_.end) break;
      }
      ++request_id;
      request.clear();
      request.append(R"({"type":"request","request_id":)")
          .append(std::to_string(request_id))
          .append(R"(,"request":{"type":"execute","stream_id":1,"stmt":{"sql":)")
          .append(R"("SELECT v FROM t WHERE id = ?","args":[{"type":"integer","value":")")
          .append(std::to_string(pick(run_.rng)))
          .append(R"("}],"want_rows":true}}})");
      if (!co_await Send(request) || !co_await Receive()) {
        if (Clock::now() >= run_.measure_start && Clock::now() < run_.end) ++run_.errors;
        ++run_.dropped;
        co_return false;
      }
      const auto done = Clock::now();
      const bool ok = ResponseOk(Message(), request_id, true);
      if (started >= run_.measure_start && done <= run_.end) {
        if (ok) {
          ++run_.requests;
          ++measured_;
          run_.hist.Record(NanosBetween(started, done));
        } else {
          ++run_.errors;
          run_.ShowError("bad response: " + std::string(Message().substr(0, 300)));
        }
      } else if (!ok) {
        ++run_.warmup_errors;
      }
    }
    co_return true;
  }

  asio::awaitable<bool> Send(std::string_view text) {
    auto [ec, n] = co_await ws_.async_write(asio::buffer(text.data(), text.size()), kTuple);
    if (ec) co_return Fail("write: " + ec.message());
    co_return true;
  }

  asio::awaitable<bool> Receive() {
    buffer_.clear();
    auto [ec, n] = co_await ws_.async_read(buffer_, kTuple);
    if (ec) co_return Fail("read: " + ec.message());
    co_return true;
  }

  std::string_view Message() const {
    const auto data = buffer_.cdata();
    return {static_cast<const char*>(data.data()), data.size()};
  }

  bool Fail(const std::string& what) {
    run_.ShowError("connection " + std::to_string(index_) + ": " + what);
    return false;
  }

  Run& run_;
  int index_;
  websocket::stream<tcp::socket> ws_;
  beast::flat_buffer buffer_;
  State state_ = State::kOpening;
  bool opened_ = false;
  uint64_t measured_ = 0;  // requests completed in the measured window
};

asio::awaitable<void> Sleep(asio::io_context& io, Clock::duration d) {
  asio::steady_timer timer(io, d);
  co_await timer.async_wait(kTuple);
}

// Aborts the connections still in `state` once `deadline` passes (until cancelled).
class Watchdog {
 public:
  Watchdog(asio::io_context& io, std::vector<std::shared_ptr<Connection>>& conns)
      : timer_(io), conns_(conns) {}
  void Arm(Clock::time_point deadline, Connection::State state, const char* phase) {
    timer_.expires_at(deadline);
    timer_.async_wait([this, state, phase](boost::system::error_code ec) {
      if (ec) return;
      int stuck = 0;
      for (auto& c : conns_) {
        if (c && c->state() == state) {
          ++stuck;
          c->Abort();
        }
      }
      if (stuck > 0) {
        std::cerr << "ws_load: gave up on " << stuck << " connection(s) in " << phase << "\n";
      }
    });
  }
  void Cancel() { timer_.cancel(); }

 private:
  asio::steady_timer timer_;
  std::vector<std::shared_ptr<Connection>>& conns_;
};

// The server's memory at one moment (KiB, -1 when unknown).
struct Memory {
  double rss = -1, anon = -1, file = -1;
};

Memory ServerMemory(int pid) {
  return {StatusKib(pid, "VmRSS:"), StatusKib(pid, "RssAnon:"), StatusKib(pid, "RssFile:")};
}

// The tags of one line: the user's, the phase, and the load average when the line is printed.
Tags LineTags(const Tags& tags, const char* phase) {
  Tags out = tags;
  out.emplace_back("phase", phase);
  out.emplace_back("loadavg", LoadAverages());
  return out;
}

// Drives the three phases; sets `*ok` when every requirement held.
asio::awaitable<void> Control(Run& run, bool* ok) {
  const Options& o = run.opt;
  const std::string suffix = "-c" + std::to_string(o.conns);
  std::vector<std::shared_ptr<Connection>> conns(static_cast<size_t>(o.conns));
  Watchdog watchdog(run.io, conns);

  // --- phase 1: open N connections, let them idle, weigh them --------------------------------
  const Memory before = ServerMemory(o.pid);
  const double tcp_before = TcpMemKib();
  const auto open_start = Clock::now();
  watchdog.Arm(open_start + Seconds(o.open_timeout), Connection::State::kOpening, "opening");
  run.opened_or_failed.SetTarget(o.conns);
  for (int i = 0; i < o.conns; ++i) {
    while (run.in_flight >= o.open_concurrency) {
      co_await Sleep(run.io, std::chrono::milliseconds(1));
    }
    ++run.in_flight;
    conns[static_cast<size_t>(i)] = std::make_shared<Connection>(run, i);
    asio::co_spawn(run.io, conns[static_cast<size_t>(i)]->Serve(), asio::detached);
  }
  co_await run.opened_or_failed.Wait();
  watchdog.Cancel();
  const double open_seconds = SecondsBetween(open_start, Clock::now());
  co_await Sleep(run.io, Seconds(o.idle));
  const Memory idle = ServerMemory(o.pid);
  const double tcp_idle = TcpMemKib();
  Numbers open_numbers{
      {"opened", run.opened}, {"open_failed", run.open_failed}, {"idle_seconds", o.idle}};
  if (before.rss >= 0 && idle.rss >= 0 && run.opened > 0) {
    open_numbers.insert(
        open_numbers.end(),
        {{"server_rss_before_kib", before.rss},
         {"server_rss_idle_kib", idle.rss},
         {"kib_per_idle_conn", Eighths((idle.rss - before.rss) / run.opened)},
         {"anon_kib_per_idle_conn", Eighths((idle.anon - before.anon) / run.opened)},
         {"file_kib_per_idle_conn", Eighths((idle.file - before.file) / run.opened)}});
  }
  if (tcp_before >= 0 && tcp_idle >= 0) {
    open_numbers.emplace_back("tcp_kernel_kib_delta", tcp_idle - tcp_before);
  }
  std::cout << ResultJson("ws-open" + suffix, o.conns, static_cast<uint64_t>(run.opened),
                          static_cast<uint64_t>(run.open_failed), open_seconds, run.open_hist,
                          LineTags(o.tags, "open"), open_numbers)
            << std::endl;
  if (run.opened == 0) {
    *ok = false;
    co_return;
  }

  // --- phase 2: point reads on every connection -----------------------------------------------
  run.load_start = Clock::now();
  run.measure_start = run.load_start + Seconds(o.warmup);
  run.end = run.measure_start + Seconds(o.seconds);
  run.loaded.SetTarget(run.opened);
  watchdog.Arm(run.end + std::chrono::seconds(5), Connection::State::kLoading, "the load phase");
  run.start_load.Open();
  // CPU used by the server and by this program over the measured window: shows which side
  // was saturated.
  asio::steady_timer at(run.io, run.measure_start);
  co_await at.async_wait(kTuple);
  const double server_cpu_start = CpuSeconds(o.pid), client_cpu_start = CpuSeconds(0);
  at.expires_at(run.end);
  co_await at.async_wait(kTuple);
  const double server_cpu_end = CpuSeconds(o.pid), client_cpu_end = CpuSeconds(0);
  co_await run.loaded.Wait();
  watchdog.Cancel();
  // The streams are still open, so each still holds whatever it acquired while serving.
  const Memory loaded = ServerMemory(o.pid);
  std::vector<uint64_t> per_conn;
  for (const auto& c : conns) {
    if (c && c->opened()) per_conn.push_back(c->measured());
  }
  std::sort(per_conn.begin(), per_conn.end());
  const auto served =
      std::count_if(per_conn.begin(), per_conn.end(), [](uint64_t n) { return n > 0; });
  auto at_rank = [&](size_t i) {
    return per_conn.empty() ? 0.0 : static_cast<double>(per_conn[i]);
  };
  Numbers load_numbers{
      {"served_conns", static_cast<double>(served)},
      {"dropped_conns", run.dropped},
      {"min_per_conn", at_rank(0)},
      {"median_per_conn", at_rank(per_conn.size() / 2)},
      {"max_per_conn", per_conn.empty() ? 0.0 : at_rank(per_conn.size() - 1)},
      {"warmup_errors", static_cast<double>(run.warmup_errors)},
      {"client_cpu_pct", std::round(100 * (client_cpu_end - client_cpu_start) / o.seconds)}};
  if (server_cpu_start >= 0 && server_cpu_end >= 0) {
    load_numbers.emplace_back("server_cpu_pct",
                              std::round(100 * (server_cpu_end - server_cpu_start) / o.seconds));
  }
  if (o.rate > 0) load_numbers.emplace_back("target_rps", o.rate);
  if (loaded.rss >= 0 && before.rss >= 0) {
    load_numbers.insert(
        load_numbers.end(),
        {{"server_rss_loaded_kib", loaded.rss},
         {"server_anon_loaded_kib", loaded.anon},
         {"server_file_loaded_kib", loaded.file},
         {"kib_per_active_conn", Eighths((loaded.rss - before.rss) / run.opened)},
         {"anon_kib_per_active_conn", Eighths((loaded.anon - before.anon) / run.opened)}});
  }
  std::cout << ResultJson((o.rate > 0 ? "ws-paced-point-read" : "ws-point-read") + suffix, o.conns,
                          run.requests, run.errors, o.seconds, run.hist, LineTags(o.tags, "load"),
                          load_numbers)
            << std::endl;

  // --- phase 3: close every connection cleanly ----------------------------------------------
  run.close_start = Clock::now();
  run.closed.SetTarget(run.opened);
  watchdog.Arm(run.close_start + std::chrono::seconds(30), Connection::State::kClosing, "closing");
  run.start_close.Open();
  co_await run.closed.Wait();
  watchdog.Cancel();
  const double close_seconds = SecondsBetween(run.close_start, Clock::now());
  co_await Sleep(run.io, std::chrono::seconds(1));
  const Memory after = ServerMemory(o.pid);
  Numbers close_numbers{{"closed_clean", run.closed_clean}};
  if (after.rss >= 0) {
    close_numbers.emplace_back("server_rss_after_close_kib", after.rss);
    close_numbers.emplace_back("server_anon_after_close_kib", after.anon);
  }
  std::cout << ResultJson("ws-close" + suffix, o.conns, static_cast<uint64_t>(run.closed_clean),
                          static_cast<uint64_t>(run.close_failed), close_seconds, run.close_hist,
                          LineTags(o.tags, "close"), close_numbers)
            << std::endl;

  *ok = run.opened == o.conns && served == o.conns && run.errors == 0 && run.dropped == 0 &&
        run.closed_clean == o.conns;
}

[[noreturn]] void Usage(const std::string& why) {
  std::cerr << "ws_load: " << why
            << "\nusage: ws_load --port P [--host 127.0.0.1] [--pid SERVER_PID] [--conns 2000]"
               " [--seconds 10] [--warmup 2] [--idle 2] [--rate R] [--open-concurrency 100]"
               " [--open-timeout 60] [--rows 100000] [--subprotocol hrana2|hrana3]"
               " [--tag key=value]...\n";
  std::exit(2);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Usage("missing value for " + a);
      return argv[++i];
    };
    try {
      if (a == "--host") {
        o.host = next();
      } else if (a == "--port") {
        o.port = static_cast<uint16_t>(std::stoi(next()));
      } else if (a == "--pid") {
        o.pid = std::stoi(next());
      } else if (a == "--conns") {
        o.conns = std::stoi(next());
      } else if (a == "--seconds") {
        o.seconds = std::stod(next());
      } else if (a == "--warmup") {
        o.warmup = std::stod(next());
      } else if (a == "--idle") {
        o.idle = std::stod(next());
      } else if (a == "--rate") {
        o.rate = std::stod(next());
      } else if (a == "--open-concurrency") {
        o.open_concurrency = std::stoi(next());
      } else if (a == "--open-timeout") {
        o.open_timeout = std::stod(next());
      } else if (a == "--rows") {
        o.rows = std::stoll(next());
      } else if (a == "--subprotocol") {
        o.subprotocol = next();
      } else if (a == "--tag") {
        if (!ParseTag(next(), &o.tags)) Usage("--tag wants key=value");
      } else {
        Usage("unknown argument " + a);
      }
    } catch (const std::logic_error&) {
      Usage("bad value for " + a);
    }
  }
  if (o.port == 0) Usage("--port is required");
  if (o.conns < 1 || o.seconds <= 0 || o.warmup < 0 || o.idle < 0 || o.rate < 0 ||
      o.open_concurrency < 1 || o.open_timeout <= 0 || o.rows < 1) {
    Usage("bad numbers");
  }
  if (o.subprotocol != "hrana2" && o.subprotocol != "hrana3") {
    Usage("--subprotocol is hrana2 or hrana3 (JSON)");
  }
  return o;
}

int Main(int argc, char** argv) {
  asio::io_context io(1);
  Run run(io);
  run.opt = ParseArgs(argc, argv);
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(run.opt.host, ec);
  if (ec) Usage("--host must be an IP address");
  run.endpoint = tcp::endpoint(addr, run.opt.port);

  bool ok = false;
  asio::co_spawn(io, Control(run, &ok), [&](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        std::cerr << "ws_load: " << x.what() << "\n";
      }
    }
    io.stop();
  });
  io.run();
  if (run.warmup_errors > 0) {
    std::cerr << "ws_load: " << run.warmup_errors << " error(s) during warm-up\n";
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace quire::bench

int main(int argc, char** argv) { return quire::bench::Main(argc, argv); }
