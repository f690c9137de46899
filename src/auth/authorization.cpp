#include "auth/authorization.h"

#include <algorithm>

namespace quire::auth {
namespace {

bool grants(const std::optional<Scopes>& s, std::string_view ns) {
  if (!s || !s->ns) return false;
  return std::find(s->ns->begin(), s->ns->end(), ns) != s->ns->end();
}

}  // namespace

Authorization Authorization::full_access() { return Authorization(); }

Authorization Authorization::from_claims(const Claims& claims) {
  Authorization a;
  if (claims.p) {
    a.mode_ = Mode::kScoped;
    a.map_ = *claims.p;
  } else {
    a.mode_ = Mode::kLegacy;
    a.access_ = claims.a.value_or(Access::kReadWrite);
    a.namespaces_ = claims.id;
  }
  return a;
}

bool Authorization::can_write(std::string_view ns) const {
  switch (mode_) {
    case Mode::kFull:
      return true;
    case Mode::kLegacy:
      return access_ == Access::kReadWrite && can_read(ns);
    case Mode::kScoped:
      return grants(map_.rw, ns) || grants(map_.rwa, ns) || grants(map_.ddl, ns);
  }
  return false;
}

bool Authorization::can_read(std::string_view ns) const {
  switch (mode_) {
    case Mode::kFull:
      return true;
    case Mode::kLegacy:
      return !namespaces_ ||
             std::find(namespaces_->begin(), namespaces_->end(), ns) != namespaces_->end();
    case Mode::kScoped:
      return can_write(ns) || grants(map_.ro, ns) || grants(map_.roa, ns);
  }
  return false;
}

bool Authorization::can_attach(std::string_view ns) const {
  switch (mode_) {
    case Mode::kFull:
      return true;
    case Mode::kLegacy:
      return access_ == Access::kReadOnlyAttach && can_read(ns);
    case Mode::kScoped:
      return grants(map_.roa, ns) || grants(map_.rwa, ns);
  }
  return false;
}

bool Authorization::can_ddl_on_shared_schema(std::string_view ns) const {
  switch (mode_) {
    case Mode::kFull:
      return true;
    case Mode::kLegacy:
      return false;
    case Mode::kScoped:
      return grants(map_.ddl, ns);
  }
  return false;
}

Authorization::Level Authorization::level_for(std::string_view ns) const {
  bool write = can_write(ns);
  bool attach = can_attach(ns);
  if (write) return attach ? kReadWriteAttach : kReadWrite;
  if (can_read(ns)) return attach ? kReadOnlyAttach : kReadOnly;
  return kNone;
}

Expected<void, Forbidden> Authorization::require(std::string_view ns, Right right) const {
  bool ok = false;
  const char* what = "";
  switch (right) {
    case Right::kRead:
      ok = can_read(ns);
      what = "read";
      break;
    case Right::kWrite:
      ok = can_write(ns);
      what = "write";
      break;
    case Right::kAttach:
      ok = can_attach(ns);
      what = "attach";
      break;
    case Right::kSharedSchemaDdl:
      ok = can_ddl_on_shared_schema(ns);
      what = "DDL";
      break;
  }
  if (ok) return {};
  return unexpected(Forbidden{"Authorization forbidden: the session has no " + std::string(what) +
                              " permission on namespace `" + std::string(ns) + "`"});
}

}  // namespace quire::auth
