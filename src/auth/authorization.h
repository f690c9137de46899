// What an authenticated session may do, per namespace, following sqld's rules:
//
//   auth disabled (no key configured)  everything, ATTACH included          full_access()
//   token with `p`                     exactly what the map grants; {} grants nothing
//   token without `p`                  `a` (default rw) on the namespaces in `id` (default: all)
//
// Note that a legacy "rw" token, like one with no claims at all, may not ATTACH: in sqld only
// "roa", p.roa, p.rwa and a server without auth allow it. ATTACH is checked against the
// namespace being attached, not the one the session is on. Levels are therefore not a simple
// chain; use the can_* predicates when deciding, level_for() when reporting.
//
// Immutable after construction; safe to share between threads.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/claims.h"
#include "common/expected.h"

namespace quire::auth {

// A request that authenticated but lacks a right for what it asked: HTTP 403, as sqld's
// Error::Forbidden (JSON body {"error": message}).
struct Forbidden {
  std::string message;
  int http_status() const { return 403; }
};

class Authorization {
 public:
  enum Level {
    kNone,
    kReadOnly,
    kReadOnlyAttach,
    kReadWrite,
    kReadWriteAttach,  // p.rwa, or auth disabled
  };
  enum class Right { kRead, kWrite, kAttach, kSharedSchemaDdl };

  // For servers without a key: every right on every namespace.
  static Authorization full_access();
  // From a verified token's claims.
  static Authorization from_claims(const Claims& claims);

  Level level_for(std::string_view ns) const;

  bool can_read(std::string_view ns) const;
  bool can_write(std::string_view ns) const;
  // May `ns` be ATTACHed (read-only) from a session on another namespace.
  bool can_attach(std::string_view ns) const;
  // DDL on a database with a shared schema, which needs p.ddl (or auth disabled); elsewhere DDL
  // is a write.
  bool can_ddl_on_shared_schema(std::string_view ns) const;

  Expected<void, Forbidden> require(std::string_view ns, Right right) const;

  bool is_full_access() const { return mode_ == Mode::kFull; }

 private:
  enum class Mode { kFull, kLegacy, kScoped };
  Authorization() = default;

  Mode mode_ = Mode::kFull;
  // kLegacy
  Access access_ = Access::kReadWrite;
  std::optional<std::vector<std::string>> namespaces_;  // nullopt: all
  // kScoped
  PermissionMap map_;
};

}  // namespace quire::auth
