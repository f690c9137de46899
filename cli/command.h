// How cli/main.cpp wires in a subcommand defined elsewhere: the add_*_command() functions add
// the subcommand and its options to the app, and hand back what to run once CLI11 has parsed.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace quire::cli {

// Exit codes shared by the subcommands.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the operation failed (server error, I/O error)
inline constexpr int kExitUsage = 2;    // the command line was wrong

// An option value that must not be empty (`--log-id ""` is a mistake, not "the default").
inline CLI::Validator non_empty() {
  return CLI::Validator(
      [](std::string& v) { return v.empty() ? std::string("must not be empty") : std::string(); },
      "");
}

struct Command {
  CLI::App* app = nullptr;   // owned by the parent app; app->parsed() says whether it was given
  std::function<int()> run;  // the exit code
};

}  // namespace quire::cli
