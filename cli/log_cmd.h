// `quire log info|verify`: look at a namespace's replication log on disk (docs/formats/
// replication-log.md), on a stopped server or beside a running one (reads only).
//
//   quire log info   --data DIR [--namespace NS] [--json]
//       log id, frames, the first frame still available, snapshots, last commit time.
//   quire log verify --data DIR [--namespace NS]
//       rebuilds the database from the log alone and compares it byte for byte with the
//       namespace's database file; exit 0 when identical, 1 otherwise. Run it on a stopped
//       server (a running one may hold commits in its WAL that the file does not have yet).
//
// Thread model: runs on the main thread of the command.
#pragma once

#include "cli/command.h"

namespace quire::cli {

Command add_log_command(CLI::App& parent);

}  // namespace quire::cli
