#include "cli/namespace_log.h"

#include <utility>

namespace quire::cli {

std::filesystem::path namespace_dir(const std::string& data, const std::string& ns) {
  return std::filesystem::path(data) / "dbs" / ns;
}

Expected<std::unique_ptr<log::ReplicationLog>, std::string> open_namespace_log(
    const std::string& data, const std::string& ns) {
  const std::filesystem::path dir = namespace_dir(data, ns) / "log";
  // Read only: a server may be running and appending to this log.
  log::LogOptions options;
  options.recover = false;
  auto opened = log::ReplicationLog::open(dir, options);
  if (!opened) {
    return unexpected("cannot open the log of namespace '" + ns + "' in " + dir.string() + ": " +
                      opened.error().message);
  }
  return std::move(opened).value();
}

}  // namespace quire::cli
