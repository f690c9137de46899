// Closed-loop Hrana-over-HTTP load generator for the quire benchmarks.
//
// Opens N keep-alive HTTP/1.1 connections from one single-threaded io_context; each connection
// sends one POST /v2/pipeline (an execute plus a close), waits for the whole response, and
// repeats until the run ends. Point reads pick a random id in 1..rows; inserts add a random
// short text. Requests completed during the warm-up are not counted. A response counts as an
// error unless its status is 200 and its first pipeline result is "ok" (and, for reads, it has
// a row). Prints one JSON line: scenario, conns, requests, errors, seconds, rps, p50/p90/p99 (µs),
// and acked_all (successful answers at any time, warm-up and tail included, for checking the
// database afterwards).
//
// --workload txn runs short interactive transactions instead, each statement its own round trip
// on one Hrana stream (the baton of one answer goes with the next request):
//   BEGIN IMMEDIATE|CONCURRENT; SELECT v FROM acct WHERE id = ?; UPDATE acct SET v = v + 1
//   WHERE id = ?; COMMIT (with a close).
// Table acct(id INTEGER PRIMARY KEY, v INTEGER NOT NULL) holds ids 1..accounts. With --hot 0
// every connection k has ids of its own (the block k*B+1 .. (k+1)*B, B = accounts / conns, one
// picked at random per transaction); with --hot N every transaction picks a random id in 1..N.
// A transaction whose step fails (an error result, a status other than 200, a broken
// connection) is tried again from BEGIN, after a ROLLBACK on the stream when the stream is still
// open; after --max-tries attempts it is given up ("failed"). `requests` (and rps) count the
// transactions committed in the measured window (by the time the COMMIT was answered), the
// latencies run from the first BEGIN to that answer (retries included), `errors` counts failed
// steps, `retries` restarted attempts, and the error codes seen are listed in the tag
// error_codes. After the end no new transaction starts and one not yet committed is rolled back.
//
//   loadgen --port 8080 --conns 64 --seconds 10 --warmup 2 --workload read
//           --scenario point-read-c64 --tag peer=quire
//   loadgen --port 8080 --conns 32 --workload txn --begin immediate --hot 0 --accounts 10000
#include <algorithm>
#include <boost/asio.hpp>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
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

enum class Workload { kRead, kInsert, kTxn };

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
  // --workload txn
  bool begin_concurrent = false;
  int64_t hot = 0;  // 0: every connection has ids of its own
  int64_t accounts = 10000;
  int max_tries = 100;
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
  uint64_t acked_all = 0;  // successful answers (commits for txn) at any time
  uint64_t retries = 0;    // txn: attempts aborted and tried again, in the window
  uint64_t failed = 0;     // txn: transactions given up after max_tries, in the window
  std::map<std::string, uint64_t> error_codes;  // in the window
  std::mt19937_64 rng{std::random_device{}()};
  int open = 0;

  bool InWindow(Clock::time_point t) const { return t >= measure_start && t <= end; }
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

// The value of the first string field `name` at or after `from`, or "" (no escapes expected).
std::string StringField(std::string_view body, std::string_view name, size_t from = 0) {
  const std::string key = "\"" + std::string(name) + "\"";
  size_t pos = body.find(key, from);
  if (pos == std::string_view::npos) return "";
  pos += key.size();
  while (pos < body.size() && (body[pos] == ' ' || body[pos] == ':')) ++pos;
  if (pos >= body.size() || body[pos] != '"') return "";  // null or not a string
  const size_t close = body.find('"', pos + 1);
  if (close == std::string_view::npos) return "";
  return std::string(body.substr(pos + 1, close - pos - 1));
}

// What went wrong in an answer: the extended code, else the code, of its first error.
std::string ErrorCode(std::string_view body) {
  const size_t error = body.find("\"error\"");
  if (error == std::string_view::npos) return "UNKNOWN";
  std::string code = StringField(body, "extended_code", error);
  if (code.empty()) code = StringField(body, "code", error);
  return code.empty() ? "UNKNOWN" : code;
}

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::io_context& io, Run& run, tcp::endpoint ep, int index)
      : io_(io), run_(run), ep_(ep), socket_(io), retry_(io), index_(index) {
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
      self->header_len_ = 0;
      if (self->run_.opt.workload != Workload::kTxn) return self->SendNext();
      if (self->attempt_broken_) return self->AttemptFailed();
      switch (self->next_) {  // what the last answer decided (the first time: a transaction)
        case Next::kFinish:
          return self->Finish();
        case Next::kSend:
          return self->Write();
        case Next::kStartTxn:
        case Next::kDefault:
          return self->StartTxn();
      }
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
    Write();
  }

  void Write() {
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
    if (run_.opt.workload == Workload::kTxn) {
      OnTxnAnswer(body, done);  // decides what is sent next, after the buffer is consumed
    } else {
      OnAnswer(body, done);
    }
    const size_t used = header_len_ + content_length_;
    std::memmove(rbuf_.data(), rbuf_.data() + used, rlen_ - used);
    rlen_ -= used;
    header_len_ = 0;
    if (close_after_) {
      boost::system::error_code ignored;
      socket_.close(ignored);
      if (next_ == Next::kFinish) return Finish();
      // The stream outlives the connection (the baton names it), so go on where we were.
      return Connect();
    }
    switch (next_) {
      case Next::kFinish:
        return Finish();
      case Next::kSend:
        return Write();
      case Next::kStartTxn:
        return StartTxn();
      case Next::kDefault:
        return SendNext();
    }
  }

  void OnAnswer(std::string_view body, Clock::time_point done) {
    next_ = Next::kDefault;
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
    if (ok) ++run_.acked_all;
    if (close_after_ && Clock::now() >= run_.end) next_ = Next::kFinish;
  }

  // --- the txn workload ---------------------------------------------------------------------

  enum class Step { kBegin, kSelect, kUpdate, kCommit, kRollback };

  // A new transaction (a new stream unless a rollback left one open), or the end of the run.
  void StartTxn() {
    const auto now = Clock::now();
    if (now >= run_.end) return FinishTxnRun();
    const Options& o = run_.opt;
    if (o.hot > 0) {
      id_ = std::uniform_int_distribution<int64_t>(1, o.hot)(run_.rng);
    } else {
      const int64_t block = o.accounts / o.conns;
      id_ = index_ * block + std::uniform_int_distribution<int64_t>(1, block)(run_.rng);
    }
    tries_ = 0;
    txn_start_ = now;
    Attempt();
  }

  void Attempt() {
    ++tries_;
    SendStep(Step::kBegin, false);
    Write();
  }

  // Builds the request for `step` into req_; Write sends it (Parse calls it after an answer).
  void SendStep(Step step, bool close) {
    step_ = step;
    next_ = Next::kSend;
    std::string body = "{\"baton\":";
    body += baton_.empty() ? "null" : "\"" + baton_ + "\"";
    body += R"(,"requests":[{"type":"execute","stmt":{"sql":")";
    const std::string id = std::to_string(id_);
    switch (step) {
      case Step::kBegin:
        body += run_.opt.begin_concurrent ? "BEGIN CONCURRENT" : "BEGIN IMMEDIATE";
        body += R"(","want_rows":false}})";
        break;
      case Step::kSelect:
        body += R"(SELECT v FROM acct WHERE id = ?","args":[{"type":"integer","value":")" + id +
                R"("}],"want_rows":true}})";
        break;
      case Step::kUpdate:
        body += R"(UPDATE acct SET v = v + 1 WHERE id = ?","args":[{"type":"integer","value":")" +
                id + R"("}],"want_rows":false}})";
        break;
      case Step::kCommit:
        body += R"(COMMIT","want_rows":false}})";
        close = true;
        break;
      case Step::kRollback:
        body += R"(ROLLBACK","want_rows":false}})";
        break;
    }
    if (close) body += R"(,{"type":"close"})";
    body += "]}";
    req_.clear();
    req_.append(head_).append(std::to_string(body.size())).append("\r\n\r\n").append(body);
  }

  void OnTxnAnswer(std::string_view body, Clock::time_point done) {
    // A status other than 200 is a protocol error: the server has dropped the stream.
    baton_ = status_ == 200 ? StringField(body, "baton") : "";
    if (step_ == Step::kRollback) {  // its outcome does not matter (there may be no transaction)
      if (finishing_) {
        next_ = Next::kFinish;
      } else if (tries_ >= run_.opt.max_tries) {
        next_ = Next::kStartTxn;
      } else {
        ++tries_;
        SendStep(Step::kBegin, false);
      }
      return;
    }
    const bool ok = status_ == 200 && ExecuteOk(body, step_ == Step::kSelect);
    if (!ok) {
      const std::string code = status_ == 200 ? ErrorCode(body) : "HTTP_" + std::to_string(status_);
      if (run_.InWindow(done)) {
        ++run_.errors;
        ++run_.error_codes[code];
        if (run_.first_errors_shown < 3) {
          ++run_.first_errors_shown;
          std::cerr << "loadgen: failed step: status " << status_ << " body " << body.substr(0, 300)
                    << "\n";
        }
      } else if (done < run_.measure_start) {
        ++run_.warmup_errors;
      }
      return PlanRetry(done);
    }
    if (step_ == Step::kCommit) {
      ++run_.acked_all;
      if (run_.InWindow(done)) {
        ++run_.requests;
        run_.hist.Record(
            std::chrono::duration_cast<std::chrono::nanoseconds>(done - txn_start_).count());
      }
      next_ = Next::kStartTxn;
      return;
    }
    if (done >= run_.end) {  // the run is over: do not commit what is left
      finishing_ = true;
      SendStep(Step::kRollback, true);
      return;
    }
    if (step_ == Step::kUpdate && !warned_missing_row_ &&
        body.find("\"affected_row_count\":1") == std::string_view::npos) {
      // Not an error the server reports, but the benchmark would be wrong: say so once.
      warned_missing_row_ = true;
      std::cerr << "loadgen: the UPDATE of id " << id_ << " changed no row\n";
    }
    SendStep(step_ == Step::kBegin    ? Step::kSelect
             : step_ == Step::kSelect ? Step::kUpdate
                                      : Step::kCommit,
             false);
  }

  // After a failed step: roll back when the stream is still open, then BEGIN again (or give the
  // transaction up after max_tries, or stop when the run is over). Sets next_ and req_.
  void PlanRetry(Clock::time_point now) {
    if (now >= run_.end) {
      finishing_ = true;
      if (baton_.empty()) {
        next_ = Next::kFinish;
      } else {
        SendStep(Step::kRollback, true);
      }
      return;
    }
    if (tries_ >= run_.opt.max_tries) {
      if (run_.InWindow(now)) ++run_.failed;
    } else if (run_.InWindow(now)) {
      ++run_.retries;
    }
    if (!baton_.empty()) {
      SendStep(Step::kRollback, false);
    } else if (tries_ >= run_.opt.max_tries) {
      next_ = Next::kStartTxn;
    } else {
      ++tries_;
      SendStep(Step::kBegin, false);
    }
  }

  // The connection broke during an attempt; we are connected again.
  void AttemptFailed() {
    attempt_broken_ = false;
    PlanRetry(Clock::now());
    switch (next_) {
      case Next::kFinish:
        return Finish();
      case Next::kStartTxn:
        return StartTxn();
      default:
        return Write();
    }
  }

  // No transaction is left open when the run ends.
  void FinishTxnRun() {
    if (baton_.empty()) return Finish();
    finishing_ = true;
    SendStep(Step::kRollback, true);
    Write();
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
      if (run_.opt.workload == Workload::kTxn) ++run_.error_codes["CONNECTION"];
    }
    if (run_.opt.workload == Workload::kTxn) {
      if (finishing_) return Finish();
      attempt_broken_ = true;  // on reconnecting, roll back (if the stream survives) and retry
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
  // What Parse does once an answer is consumed.
  enum class Next { kDefault, kSend, kStartTxn, kFinish };
  Next next_ = Next::kDefault;
  // txn workload
  int index_;
  Step step_ = Step::kBegin;
  std::string baton_;  // empty: null (a new stream)
  int64_t id_ = 0;
  int tries_ = 0;
  Clock::time_point txn_start_;
  bool finishing_ = false;       // the last rollback (with a close) is on its way
  bool attempt_broken_ = false;  // the connection broke in the middle of an attempt
  bool warned_missing_row_ = false;
};

[[noreturn]] void Usage(const char* why) {
  std::cerr << "loadgen: " << why
            << "\nusage: loadgen --port P [--host 127.0.0.1] [--conns N] [--seconds S]"
               " [--warmup W] [--workload read|insert|txn] [--rows 100000] [--scenario NAME]"
               " [--path /v2/pipeline] [--no-check] [--disk DEV] [--tag key=value]..."
               " [--begin immediate|concurrent] [--hot N] [--accounts 10000] [--max-tries 100]\n";
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
      } else if (w == "txn") {
        o.workload = Workload::kTxn;
      } else {
        Usage("--workload is read, insert or txn");
      }
    } else if (a == "--begin") {
      const std::string b = next();
      if (b != "immediate" && b != "concurrent") Usage("--begin is immediate or concurrent");
      o.begin_concurrent = b == "concurrent";
    } else if (a == "--hot") {
      o.hot = std::stoll(next());
    } else if (a == "--accounts") {
      o.accounts = std::stoll(next());
    } else if (a == "--max-tries") {
      o.max_tries = std::stoi(next());
    } else {
      Usage(("unknown argument " + a).c_str());
    }
  }
  if (o.port == 0) Usage("--port is required");
  if (o.conns < 1 || o.seconds <= 0 || o.warmup < 0 || o.rows < 1) Usage("bad numbers");
  if (o.hot < 0 || o.hot > o.accounts || o.max_tries < 1) Usage("bad --hot or --max-tries");
  if (o.workload == Workload::kTxn && o.hot == 0 && o.accounts < o.conns) {
    Usage("--hot 0 needs at least one account per connection");
  }
  if (o.scenario.empty()) {
    if (o.workload == Workload::kTxn) {
      o.scenario = o.hot > 0 ? "txn-hot" : "txn-distinct";
    } else {
      o.scenario = std::string(o.workload == Workload::kRead ? "point-read" : "insert") + "-c" +
                   std::to_string(o.conns);
    }
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
    std::make_shared<Connection>(io, run, ep, i)->Start();
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
  // (A transaction waits at most the server's transaction timeout, 5 s, for the write lock.)
  watchdog.expires_at(run.end + std::chrono::seconds(run.opt.workload == Workload::kTxn ? 10 : 5));
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
  numbers.emplace_back("acked_all", static_cast<double>(run.acked_all));
  Tags tags = run.opt.tags;
  if (run.opt.workload == Workload::kTxn) {
    numbers.emplace_back("committed", static_cast<double>(run.requests));
    numbers.emplace_back("retries", static_cast<double>(run.retries));
    numbers.emplace_back("failed", static_cast<double>(run.failed));
    std::string codes;
    for (const auto& [code, n] : run.error_codes) {
      codes += (codes.empty() ? "" : ",") + code + ":" + std::to_string(n);
    }
    if (!codes.empty()) tags.emplace_back("error_codes", codes);
  }
  std::cout << ResultJson(run.opt.scenario, run.opt.conns, run.requests, run.errors,
                          run.opt.seconds, run.hist, tags, numbers)
            << std::endl;
  return run.requests > 0 ? 0 : 1;
}

}  // namespace
}  // namespace quire::bench

int main(int argc, char** argv) { return quire::bench::Main(argc, argv); }
