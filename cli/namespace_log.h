// Where the offline commands (`quire log`, `quire backup`) find a namespace in a server's data
// directory, and how they open its replication log: DATA/dbs/NS/ holds the database file
// ("data") and the log ("log/", docs/formats/replication-log.md).
//
// Thread model: pure functions and a blocking open; call from the command's thread.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "common/expected.h"
#include "log/log.h"

namespace quire::cli {

// DATA/dbs/NS.
std::filesystem::path namespace_dir(const std::string& data, const std::string& ns);

// Opens DATA/dbs/NS/log to read (LogOptions::recover off: no torn tail is cut and no file is
// deleted, so a server may be running beside it; see log/log.h for what that still allows).
// The error is a sentence for the command to print after its name: "cannot open the log of
// namespace 'NS' in DIR: why".
Expected<std::unique_ptr<log::ReplicationLog>, std::string> open_namespace_log(
    const std::string& data, const std::string& ns);

}  // namespace quire::cli
