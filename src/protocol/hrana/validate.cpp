// Protocol rules that hold for both encodings: what each version allows, and batch conditions
// that may only look back.
#include "protocol/hrana/codec.h"

namespace quire::hrana {

namespace {

Expected<void, ProtocolError> fail(std::string message) {
  return unexpected(ProtocolError{std::move(message)});
}

Expected<void, ProtocolError> validate_cond(const BatchCond& c, std::size_t step, Version v) {
  using K = BatchCond::Kind;
  switch (c.kind) {
    case K::kOk:
    case K::kError:
      if (c.step >= step) {
        return fail("Batch step " + std::to_string(step) + " has a condition on step " +
                    std::to_string(c.step) + ", which does not run before it");
      }
      return {};
    case K::kNot:
      if (c.conds.size() != 1) return fail("A 'not' condition needs exactly one condition");
      return validate_cond(c.conds[0], step, v);
    case K::kAnd:
    case K::kOr:
      for (const auto& sub : c.conds) {
        if (auto r = validate_cond(sub, step, v); !r) return r;
      }
      return {};
    case K::kIsAutocommit:
      if (v < Version::kV3) {
        return fail("The is_autocommit condition is only supported in protocol version 3 and higher");
      }
      return {};
  }
  return {};
}

Expected<void, ProtocolError> validate_sql_source(const std::optional<std::string>& sql,
                                                  const std::optional<std::int32_t>& sql_id) {
  if (sql && sql_id) return fail("Both 'sql' and 'sql_id' were given; send exactly one");
  if (!sql && !sql_id) return fail("Neither 'sql' nor 'sql_id' was given; send exactly one");
  return {};
}

}  // namespace

Expected<void, ProtocolError> validate(const Batch& batch, Version version) {
  for (std::size_t i = 0; i < batch.steps.size(); ++i) {
    const auto& s = batch.steps[i];
    if (auto r = validate_sql_source(s.stmt.sql, s.stmt.sql_id); !r) return r;
    if (s.condition) {
      if (auto r = validate_cond(*s.condition, i, version); !r) return r;
    }
  }
  return {};
}

Expected<void, ProtocolError> validate(const StreamRequest& request, Version version) {
  auto needs = [&](Version min, const char* name) -> Expected<void, ProtocolError> {
    if (version < min) {
      return fail(std::string("The '") + name + "' request is only supported in protocol version " +
                  std::to_string(static_cast<int>(min)) + " and higher");
    }
    return {};
  };
  return std::visit(
      [&](const auto& r) -> Expected<void, ProtocolError> {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, ExecuteReq>) {
          return validate_sql_source(r.stmt.sql, r.stmt.sql_id);
        } else if constexpr (std::is_same_v<T, BatchReq>) {
          return validate(r.batch, version);
        } else if constexpr (std::is_same_v<T, SequenceReq> || std::is_same_v<T, DescribeReq>) {
          if (auto n = needs(Version::kV2, std::is_same_v<T, SequenceReq> ? "sequence" : "describe");
              !n) {
            return n;
          }
          return validate_sql_source(r.sql, r.sql_id);
        } else if constexpr (std::is_same_v<T, StoreSqlReq>) {
          return needs(Version::kV2, "store_sql");
        } else if constexpr (std::is_same_v<T, CloseSqlReq>) {
          return needs(Version::kV2, "close_sql");
        } else if constexpr (std::is_same_v<T, GetAutocommitReq>) {
          return needs(Version::kV3, "get_autocommit");
        } else {
          return {};
        }
      },
      request);
}

}  // namespace quire::hrana
