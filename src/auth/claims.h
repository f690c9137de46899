// The claims of an sqld/Turso access token, typed, and their JSON form (RFC 7519 claims set).
//
//   exp, nbf  NumericDate as a JSON integer (seconds since the epoch); optional.
//   a         "ro" | "rw" | "roa": the access level of a legacy token (default "rw").
//   id        the namespace a legacy token is limited to (absent: every namespace). sqld takes a
//             string; an array of strings is accepted too, and means any of them.
//   p         the permission map of a scoped token. When present, `a` and `id` are ignored:
//             {"ro": {"ns": [...], "tags": [...]}, "rw": {...}, "roa": {...}, "rwa": {...},
//              "ddl": {...}}; every member optional. There is no wildcard: "*" is a name.
//
// A member set to JSON null counts as absent (serde's Option does the same); a member of the
// wrong type, an unknown `a`, or an empty namespace name makes the token malformed. Unknown
// members are ignored.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/expected.h"

namespace quire::auth {

// The `a` claim.
enum class Access { kReadOnly, kReadWrite, kReadOnlyAttach };

std::string_view access_name(Access a);  // "ro", "rw", "roa"
std::optional<Access> parse_access(std::string_view name);

// One entry of the `p` map. `tags` are parsed but grant nothing (sqld honours only a group-id
// tag taken from its environment, which quire does not have).
struct Scopes {
  std::optional<std::vector<std::string>> ns;
  std::optional<std::vector<std::string>> tags;
};

// The `p` claim. rw, rwa and ddl grant write; every entry grants read; roa and rwa also allow
// the namespace to be ATTACHed; ddl allows DDL on a shared-schema database.
struct PermissionMap {
  std::optional<Scopes> ro;
  std::optional<Scopes> rw;
  std::optional<Scopes> roa;
  std::optional<Scopes> rwa;
  std::optional<Scopes> ddl;
};

struct Claims {
  std::optional<std::int64_t> exp;
  std::optional<std::int64_t> nbf;
  std::optional<Access> a;
  std::optional<std::vector<std::string>> id;
  std::optional<PermissionMap> p;
};

// The error names the offending claim.
Expected<Claims, std::string> claims_from_json(const boost::json::object& payload);

// Absent members are left out; `id` with one name is written as a string, as sqld expects.
boost::json::object claims_to_json(const Claims& claims);

}  // namespace quire::auth
