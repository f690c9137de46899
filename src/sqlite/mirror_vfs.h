// "quire-mirror": the default unix VFS, except that every write and truncate of a `-wal` file
// that has a WriteMirror (common/write_mirror.h) is also copied into that mirror, so the
// replication log can take a commit's frames from memory instead of reading the file back.
//
// Only `-wal` files opened after a mirror was acquired for their path are copied; every other
// file is opened by the unix VFS itself and keeps its own methods (no indirection at all). A
// `-wal` that is copied has methods that forward to the unix ones, plus the copy, and runs the
// mirror's guard (WriteMirror::set_before_rewrite) before any write at offset 0.
//
// It also writes each WAL frame with one system call instead of SQLite's two: SQLite appends a
// frame as its 24-byte header, then its page right after it. The shim holds back a header that
// continues the handle's previous write (an appended frame) and writes it together with the
// page (one pwritev, through a descriptor of its own opened by the connection's first frame).
// A header written anywhere else (SQLite rewriting the checksums of frames it spilled during a
// large transaction, with no page after them) goes to the file at once. Anything else done to
// the file meanwhile (a read, any other write, a sync, a truncate, its size, a lock, a file
// control, closing it) writes a held header first, so no caller ever sees the file without it,
// and every frame of a commit is in the file whole by the time the commit returns. About 1.5 µs of CPU per single-page commit on our VMs, where a
// system call costs several (bench/RESULTS.md).
//
// Thread model: mirror_vfs_name() and wal_mirror_path() may be called from any thread.
#pragma once

#include <string>

#include "common/expected.h"

namespace quire::sqlite {

// Registers the VFS on first use (not as the default) and returns its name, for
// OpenOptions::vfs.
const char* mirror_vfs_name();

// The path SQLite will open the `-wal` of the database at `db_path` by, through this VFS: the
// key to WriteMirror::acquire(). Fails only if SQLite cannot make the path absolute.
Expected<std::string, std::string> wal_mirror_path(const std::string& db_path);

}  // namespace quire::sqlite
