#include "auth/claims.h"

#include <boost/json/value.hpp>

namespace quire::auth {
namespace {

namespace bj = boost::json;

using Error = std::string;

const bj::value* member(const bj::object& o, std::string_view key) {
  const bj::value* v = o.if_contains(bj::string_view(key.data(), key.size()));
  return v && !v->is_null() ? v : nullptr;
}

// NumericDate. Only integers: sqld reads it as i64, so 1.5 or "1" is rejected there too.
Expected<std::optional<std::int64_t>, Error> parse_time(const bj::object& o, std::string_view key) {
  const bj::value* v = member(o, key);
  if (!v) return std::optional<std::int64_t>();
  if (v->is_int64()) return std::optional<std::int64_t>(v->get_int64());
  return unexpected("claim `" + std::string(key) + "` is not an integer number of seconds");
}

// A non-empty string, or (when `allow_single` is set) an array of them.
Expected<std::vector<std::string>, Error> parse_names(const bj::value& v, std::string_view what,
                                                      bool allow_single) {
  std::vector<std::string> names;
  auto add = [&](const bj::value& x) {
    if (!x.is_string() || x.get_string().empty()) return false;
    names.emplace_back(x.get_string().data(), x.get_string().size());
    return true;
  };
  if (allow_single && v.is_string()) {
    if (!add(v)) return unexpected("`" + std::string(what) + "` is an empty name");
    return names;
  }
  if (!v.is_array()) return unexpected("`" + std::string(what) + "` is not an array of names");
  for (const bj::value& x : v.get_array()) {
    if (!add(x)) return unexpected("`" + std::string(what) + "` holds an empty or non-string name");
  }
  return names;
}

Expected<std::optional<Scopes>, Error> parse_scopes(const bj::object& p, std::string_view key) {
  const bj::value* v = member(p, key);
  if (!v) return std::optional<Scopes>();
  std::string where = "p." + std::string(key);
  if (!v->is_object()) return unexpected("`" + where + "` is not an object");
  Scopes s;
  if (const bj::value* ns = member(v->get_object(), "ns")) {
    auto names = parse_names(*ns, where + ".ns", false);
    if (!names) return unexpected(std::move(names.error()));
    s.ns = std::move(names.value());
  }
  if (const bj::value* tags = member(v->get_object(), "tags")) {
    auto names = parse_names(*tags, where + ".tags", false);
    if (!names) return unexpected(std::move(names.error()));
    s.tags = std::move(names.value());
  }
  return std::optional<Scopes>(std::move(s));
}

Expected<PermissionMap, Error> parse_permission_map(const bj::value& v) {
  if (!v.is_object()) return unexpected(std::string("claim `p` is not an object"));
  const bj::object& o = v.get_object();
  PermissionMap p;
  struct Field {
    std::string_view key;
    std::optional<Scopes> PermissionMap::*slot;
  };
  static constexpr Field kFields[] = {{"ro", &PermissionMap::ro},
                                      {"rw", &PermissionMap::rw},
                                      {"roa", &PermissionMap::roa},
                                      {"rwa", &PermissionMap::rwa},
                                      {"ddl", &PermissionMap::ddl}};
  for (const Field& f : kFields) {
    auto s = parse_scopes(o, f.key);
    if (!s) return unexpected(std::move(s.error()));
    p.*f.slot = std::move(s.value());
  }
  return p;
}

bj::array names_to_json(const std::vector<std::string>& names) {
  bj::array a;
  for (const auto& n : names) a.emplace_back(bj::string(n));
  return a;
}

}  // namespace

std::string_view access_name(Access a) {
  switch (a) {
    case Access::kReadOnly:
      return "ro";
    case Access::kReadWrite:
      return "rw";
    case Access::kReadOnlyAttach:
      return "roa";
  }
  return "rw";
}

std::optional<Access> parse_access(std::string_view name) {
  if (name == "ro") return Access::kReadOnly;
  if (name == "rw") return Access::kReadWrite;
  if (name == "roa") return Access::kReadOnlyAttach;
  return std::nullopt;
}

Expected<Claims, std::string> claims_from_json(const bj::object& payload) {
  Claims c;
  auto exp = parse_time(payload, "exp");
  if (!exp) return unexpected(std::move(exp.error()));
  c.exp = exp.value();
  auto nbf = parse_time(payload, "nbf");
  if (!nbf) return unexpected(std::move(nbf.error()));
  c.nbf = nbf.value();

  if (const bj::value* a = member(payload, "a")) {
    std::optional<Access> access;
    if (a->is_string()) access = parse_access({a->get_string().data(), a->get_string().size()});
    if (!access) return unexpected(std::string("claim `a` is not \"ro\", \"rw\" or \"roa\""));
    c.a = access;
  }
  if (const bj::value* id = member(payload, "id")) {
    auto names = parse_names(*id, "id", true);
    if (!names) return unexpected(std::move(names.error()));
    c.id = std::move(names.value());
  }
  if (const bj::value* p = member(payload, "p")) {
    auto map = parse_permission_map(*p);
    if (!map) return unexpected(std::move(map.error()));
    c.p = std::move(map.value());
  }
  return c;
}

bj::object claims_to_json(const Claims& c) {
  bj::object o;
  if (c.a) o["a"] = bj::string(access_name(*c.a));
  if (c.id) {
    if (c.id->size() == 1) {
      o["id"] = bj::string(c.id->front());
    } else {
      o["id"] = names_to_json(*c.id);
    }
  }
  if (c.exp) o["exp"] = *c.exp;
  if (c.nbf) o["nbf"] = *c.nbf;
  if (c.p) {
    bj::object p;
    auto put = [&](std::string_view key, const std::optional<Scopes>& s) {
      if (!s) return;
      bj::object scope;
      if (s->ns) scope["ns"] = names_to_json(*s->ns);
      if (s->tags) scope["tags"] = names_to_json(*s->tags);
      p[bj::string_view(key.data(), key.size())] = std::move(scope);
    };
    put("ro", c.p->ro);
    put("rw", c.p->rw);
    put("roa", c.p->roa);
    put("rwa", c.p->rwa);
    put("ddl", c.p->ddl);
    o["p"] = std::move(p);
  }
  return o;
}

}  // namespace quire::auth
