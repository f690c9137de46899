// `quire backup` and `quire restore`: continuous backup of a namespace's replication log to an
// object store and point-in-time restore from it (docs/formats/backup.md), offline.
//
//   quire backup  --data DIR --backup-url URL [--namespace NS] [--no-progress]
//       brings the store up to date with the namespace's log (DIR/dbs/NS/log): a snapshot when
//       the store has nothing for the log's lineage (or the log was compacted past it), then the
//       whole transactions after it in batches. Prints what it uploaded; running it again
//       uploads nothing new. The prefix in the store is the namespace name. Opens the log like
//       `quire log`: run it on a stopped server.
//   quire restore --backup-url URL [--namespace NS] [--timestamp RFC3339 | --frame N]
//                 -o FILE [--force] [--verify] [--no-progress]
//       writes the database as of the last commit (default), the last commit at or before the
//       time, or commit frame N, to FILE (refuses to overwrite it without --force); --verify
//       runs PRAGMA integrity_check on the result. Prints the frame, commit time and size.
//
// A snapshot upload or a restore of 4 MiB or more reports its progress on stderr (cli/
// progress.h: a bar on a terminal, plain lines otherwise) unless --no-progress is given; stdout
// is the same either way.
//
// URL: file:///abs/dir, a plain path, or s3://bucket[/prefix] (docs/object-stores.md).
// Exit 0 on success, 1 when the operation fails (missing or corrupt object, I/O, nothing to
// restore at that point), 2 on a usage error.
//
// Thread model: runs on the main thread of the command.
#pragma once

#include "cli/command.h"

namespace quire::cli {

Command add_backup_command(CLI::App& parent);
Command add_restore_command(CLI::App& parent);

}  // namespace quire::cli
