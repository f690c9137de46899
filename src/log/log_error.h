// The error every replication-log operation returns: a category the caller can branch on, and a
// message for the operator.
#pragma once

#include <string>

namespace quire::log {

enum class LogErrc {
  kIo,               // a system call failed (sys_errno says why)
  kCorrupt,          // bytes on disk contradict the format: never skipped silently
  kNeedSnapshot,     // the frames asked for were compacted away; load a snapshot first
  kInvalidArgument,  // the caller broke a precondition (bad transaction, frame not a boundary)
  kIncompatible,     // another page size or format version, or another log's file
  kNotFound,         // no log (or no snapshot) where one was expected
  kExists,           // create() found a log already there
  kBroken,           // an earlier write failed and could not be undone: reopen the log
};

struct LogError {
  LogErrc code = LogErrc::kIo;
  std::string message;
  int sys_errno = 0;
};

inline LogError log_error(LogErrc code, std::string message, int sys_errno = 0) {
  return LogError{code, std::move(message), sys_errno};
}

}  // namespace quire::log
