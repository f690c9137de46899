#include "cli/log_cmd.h"

#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/namespace_log.h"
#include "common/rfc3339.h"
#include "log/log.h"
#include "log/materialize.h"

namespace quire::cli {

namespace fs = std::filesystem;

namespace {

struct LogOptions {
  std::string data = "data";
  std::string ns = "default";
  bool json = false;
};

std::unique_ptr<log::ReplicationLog> open_log(const LogOptions& o) {
  auto opened = open_namespace_log(o.data, o.ns);
  if (!opened) {
    std::cerr << "quire log: " << opened.error() << "\n";
    return nullptr;
  }
  return std::move(opened).value();
}

int run_info(const LogOptions& o) {
  auto log = open_log(o);
  if (!log) return kExitFailure;
  const auto snapshots = log->snapshots();
  if (o.json) {
    boost::json::object out;
    out["namespace"] = o.ns;
    out["log_id"] = log::format_log_id(log->log_id());
    out["last_frame"] = log->last_frame();
    out["first_available_frame"] = log->first_available_frame();
    out["db_size_pages"] = log->db_size();
    out["last_commit_time_us"] = log->last_commit_time_us();
    boost::json::array snaps;
    for (const auto& s : snapshots) {
      snaps.push_back(boost::json::object{
          {"frame", s.frame}, {"db_size_pages", s.db_size}, {"commit_time_us", s.commit_time_us}});
    }
    out["snapshots"] = std::move(snaps);
    std::cout << boost::json::serialize(out) << "\n";
    return kExitOk;
  }
  std::cout << "namespace:        " << o.ns << "\n"
            << "log id:           " << log::format_log_id(log->log_id()) << "\n"
            << "frames:           " << log->first_available_frame() << " .. " << log->last_frame()
            << "\n"
            << "database size:    " << log->db_size() << " pages\n"
            << "last commit:      "
            << (log->last_frame() ? format_rfc3339_us(log->last_commit_time_us()) : "-") << "\n"
            << "snapshots:        " << snapshots.size() << "\n";
  for (const auto& s : snapshots) {
    std::cout << "  frame " << s.frame << ", " << s.db_size << " pages, "
              << format_rfc3339_us(s.commit_time_us) << "\n";
  }
  return kExitOk;
}

int run_verify(const LogOptions& o) {
  auto log = open_log(o);
  if (!log) return kExitFailure;
  const fs::path db = namespace_dir(o.data, o.ns) / "data";
  std::error_code ec;
  if (fs::exists(db.string() + "-wal", ec) && fs::file_size(db.string() + "-wal", ec) > 0) {
    std::cerr << "quire log verify: " << db.string()
              << "-wal is not empty: stop the server first (it folds the WAL into the file)\n";
    return kExitFailure;
  }
  const fs::path rebuilt =
      fs::temp_directory_path() / ("quire-log-verify-" + std::to_string(::getpid()));
  auto done = log::materialize(*log, rebuilt);
  if (!done) {
    std::cerr << "quire log verify: cannot rebuild the database from the log: "
              << done.error().message << "\n";
    return kExitFailure;
  }
  auto read_all = [](const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string a = read_all(rebuilt), b = read_all(db);
  fs::remove(rebuilt, ec);
  if (a == b) {
    std::cout << "ok: the log (frames " << log->first_available_frame() << ".." << done->frame
              << ", " << done->db_size << " pages) rebuilds " << db.string() << " byte for byte\n";
    return kExitOk;
  }
  std::vector<std::size_t> differing;
  const std::size_t pages = std::max(a.size(), b.size()) / 4096;
  for (std::size_t p = 0; p < pages && differing.size() < 10; ++p) {
    if (a.compare(p * 4096, 4096, b, p * 4096, 4096) != 0) differing.push_back(p + 1);
  }
  std::cout << "MISMATCH: the log rebuilds " << a.size() / 4096 << " pages, the file has "
            << b.size() / 4096 << "; first differing pages:";
  for (auto p : differing) std::cout << " " << p;
  std::cout << "\n";
  return kExitFailure;
}

}  // namespace

Command add_log_command(CLI::App& parent) {
  auto options = std::make_shared<LogOptions>();
  auto* cmd = parent.add_subcommand("log", "Inspect a namespace's replication log on disk");
  cmd->require_subcommand(1);
  auto add_common = [&](CLI::App* sub) {
    sub->add_option("--data", options->data, "The server's data directory")->capture_default_str();
    sub->add_option("--namespace,-n", options->ns, "The namespace")->capture_default_str();
  };
  auto* info = cmd->add_subcommand("info", "Log id, frame range, snapshots, last commit time");
  add_common(info);
  info->add_flag("--json", options->json, "Print JSON");
  auto* verify = cmd->add_subcommand("verify",
                                     "Rebuild the database from the log and compare it byte for "
                                     "byte with the file (stopped server)");
  add_common(verify);
  return Command{cmd, [options, info, verify]() -> int {
                   if (info->parsed()) return run_info(*options);
                   if (verify->parsed()) return run_verify(*options);
                   return kExitUsage;
                 }};
}

}  // namespace quire::cli
