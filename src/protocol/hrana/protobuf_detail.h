// Building blocks of Hrana's protobuf codec, shared by the HTTP bodies (protobuf_codec.cpp) and
// the WebSocket messages (ws_protobuf_codec.cpp): a Decoder for the messages both carry (Stmt,
// Batch, BatchCond, Value...) and encoders for the results both return. Internal to the protocol
// library; field numbers follow the Hrana 3 spec plus sqld's extensions (hrana.md section 4).
#pragma once

#include <bit>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/hrana/codec.h"
#include "protocol/hrana/protobuf_wire.h"

namespace quire::hrana::protobuf::detail {

// BatchCond is the only recursive message; bound it so a hostile body cannot exhaust the stack.
inline constexpr int kMaxCondDepth = 64;
// More arguments than SQLite's highest parameter number (32766) can never bind; refusing them
// while decoding keeps a small body from expanding into a huge argument list in memory.
inline constexpr std::size_t kMaxArgs = 32766;

// ---------------------------------------------------------------- decoding

// Each method decodes one message (or field) into `out` and returns false on the first problem,
// which is kept in `error`. `name` arguments spell the field for error messages ("Stmt.sql").
// Codecs derive from it to add their top-level messages, as the JSON codec does.
//
// Proto3 rules applied throughout: a missing field keeps its default, a repeated occurrence of a
// non-repeated field replaces the earlier one (oneofs included), unknown fields are skipped.
struct Decoder {
  using Field = wire::Field;
  using Reader = wire::Reader;
  using WireType = wire::WireType;

  std::optional<ProtocolError> error;
  // Requests, steps, arguments and conditions this message may still decode into
  // (protocol::Limits::max_decoded_items()); the entry points set it.
  std::size_t items_left = SIZE_MAX;
  std::size_t items_limit = SIZE_MAX;

  bool fail(std::string message) {
    if (!error) error = ProtocolError{"Invalid protobuf request: " + std::move(message)};
    return false;
  }

  void limit_items(std::size_t n) { items_left = items_limit = n; }
  // Called before each repeated element is added.
  bool take_item(const char* name) {
    if (items_left > 0) {
      --items_left;
      return true;
    }
    return fail("more than " + std::to_string(items_limit) +
                " requests, steps, arguments and conditions in one message (at " + name + ")");
  }

  bool want(const Field& f, WireType type, const char* name) {
    if (f.type == type) return true;
    return fail(std::string(name) + " must be " + wire::wire_type_name(type) + ", not " +
                wire::wire_type_name(f.type));
  }

  bool done(const Reader& r, const char* message_name) {
    if (r.ok()) return true;
    return fail("malformed " + std::string(message_name) + ": " + r.error());
  }

  bool string(const Field& f, const char* name, std::string& out) {
    if (!want(f, WireType::kLen, name)) return false;
    if (!wire::valid_utf8(f.bytes)) return fail(std::string(name) + " is not valid UTF-8");
    out.assign(f.bytes);
    return true;
  }

  bool uint64(const Field& f, const char* name, std::uint64_t& out) {
    if (!want(f, WireType::kVarint, name)) return false;
    out = f.value;
    return true;
  }

  // Proto int32/uint32 keep the low 32 bits of the varint (negative int32s arrive sign-extended
  // to 10 bytes).
  bool int32(const Field& f, const char* name, std::int32_t& out) {
    if (!want(f, WireType::kVarint, name)) return false;
    out = static_cast<std::int32_t>(static_cast<std::uint32_t>(f.value));
    return true;
  }

  bool uint32(const Field& f, const char* name, std::uint32_t& out) {
    if (!want(f, WireType::kVarint, name)) return false;
    out = static_cast<std::uint32_t>(f.value);
    return true;
  }

  bool boolean(const Field& f, const char* name, bool& out) {
    if (!want(f, WireType::kVarint, name)) return false;
    out = f.value != 0;
    return true;
  }

  // A message with no fields of its own (Value.null, close...). Its body must still parse, so
  // garbage inside is reported rather than ignored.
  bool empty_message(const Field& f, const char* name) {
    if (!want(f, WireType::kLen, name)) return false;
    Reader r(f.bytes);
    Field ignored;
    while (r.next(ignored)) {
    }
    return done(r, name);
  }

  bool value(std::string_view data, Value& out) {
    Reader r(data);
    Field f;
    bool typed = false;
    while (r.next(f)) {
      switch (f.number) {
        case 1:
          if (!empty_message(f, "Value.null")) return false;
          out.emplace<std::monostate>();
          break;
        case 2:
          if (!want(f, WireType::kVarint, "Value.integer")) return false;
          out.emplace<std::int64_t>(wire::zigzag_decode(f.value));
          break;
        case 3:
          if (!want(f, WireType::kFixed64, "Value.float")) return false;
          out.emplace<double>(std::bit_cast<double>(f.value));
          break;
        case 4:
          if (!want(f, WireType::kLen, "Value.text")) return false;
          if (!wire::valid_utf8(f.bytes)) return fail("Value.text is not valid UTF-8");
          out.emplace<std::string>(f.bytes);
          break;
        case 5: {
          if (!want(f, WireType::kLen, "Value.blob")) return false;
          const auto* p = reinterpret_cast<const std::uint8_t*>(f.bytes.data());
          out.emplace<Blob>(p, p + f.bytes.size());
          break;
        }
        default:
          continue;
      }
      typed = true;
    }
    if (!done(r, "Value")) return false;
    // Like an unknown JSON "type": a value this server cannot represent.
    if (!typed) return fail("Value has no known type (expected one of fields 1-5)");
    return true;
  }

  bool named_arg(std::string_view data, NamedArg& out) {
    Reader r(data);
    Field f;
    while (r.next(f)) {
      switch (f.number) {
        case 1:
          if (!string(f, "NamedArg.name", out.name)) return false;
          break;
        case 2:
          if (!want(f, WireType::kLen, "NamedArg.value")) return false;
          if (!value(f.bytes, out.value)) return false;
          break;
        default:
          break;
      }
    }
    return done(r, "NamedArg");
  }

  bool stmt(std::string_view data, Stmt& out) {
    Reader r(data);
    Field f;
    while (r.next(f)) {
      switch (f.number) {
        case 1:
          if (!string(f, "Stmt.sql", out.sql.emplace())) return false;
          break;
        case 2:
          if (!int32(f, "Stmt.sql_id", out.sql_id.emplace())) return false;
          break;
        case 3:
          if (!want(f, WireType::kLen, "Stmt.args")) return false;
          if (out.args.size() + out.named_args.size() >= kMaxArgs) {
            return fail("Stmt has more arguments than any statement can have");
          }
          if (!take_item("Stmt.args")) return false;
          if (!value(f.bytes, out.args.emplace_back())) return false;
          break;
        case 4:
          if (!want(f, WireType::kLen, "Stmt.named_args")) return false;
          if (out.args.size() + out.named_args.size() >= kMaxArgs) {
            return fail("Stmt has more arguments than any statement can have");
          }
          if (!take_item("Stmt.named_args")) return false;
          if (!named_arg(f.bytes, out.named_args.emplace_back())) return false;
          break;
        case 5:
          if (!boolean(f, "Stmt.want_rows", out.want_rows)) return false;
          break;
        default:  // 6 = replication_index, a hint quire does not use
          break;
      }
    }
    return done(r, "Stmt");
  }

  bool cond(std::string_view data, BatchCond& out, int depth) {
    if (depth > kMaxCondDepth) {
      return fail("BatchCond nested deeper than " + std::to_string(kMaxCondDepth) + " levels");
    }
    Reader r(data);
    Field f;
    bool typed = false;
    while (r.next(f)) {
      switch (f.number) {
        case 1:
        case 2:
          out = BatchCond{};
          out.kind = f.number == 1 ? BatchCond::Kind::kOk : BatchCond::Kind::kError;
          if (!uint32(f, f.number == 1 ? "BatchCond.step_ok" : "BatchCond.step_error", out.step)) {
            return false;
          }
          break;
        case 3:
          if (!want(f, WireType::kLen, "BatchCond.not")) return false;
          out = BatchCond{};
          out.kind = BatchCond::Kind::kNot;
          if (!take_item("BatchCond.not")) return false;
          if (!cond(f.bytes, out.conds.emplace_back(), depth + 1)) return false;
          break;
        case 4:
        case 5:
          if (!want(f, WireType::kLen, f.number == 4 ? "BatchCond.and" : "BatchCond.or")) {
            return false;
          }
          out = BatchCond{};
          out.kind = f.number == 4 ? BatchCond::Kind::kAnd : BatchCond::Kind::kOr;
          if (!cond_list(f.bytes, out.conds, depth)) return false;
          break;
        case 6:
          if (!empty_message(f, "BatchCond.is_autocommit")) return false;
          out = BatchCond{};
          out.kind = BatchCond::Kind::kIsAutocommit;
          break;
        default:
          continue;
      }
      typed = true;
    }
    if (!done(r, "BatchCond")) return false;
    if (!typed) return fail("BatchCond has no known condition (expected one of fields 1-6)");
    return true;
  }

  bool cond_list(std::string_view data, std::vector<BatchCond>& out, int depth) {
    Reader r(data);
    Field f;
    while (r.next(f)) {
      if (f.number != 1) continue;
      if (!want(f, WireType::kLen, "BatchCondList.conds")) return false;
      if (!take_item("BatchCondList.conds")) return false;
      if (!cond(f.bytes, out.emplace_back(), depth + 1)) return false;
    }
    return done(r, "BatchCondList");
  }

  bool batch_step(std::string_view data, BatchStep& out) {
    Reader r(data);
    Field f;
    while (r.next(f)) {
      switch (f.number) {
        case 1:
          if (!want(f, WireType::kLen, "BatchStep.condition")) return false;
          if (!cond(f.bytes, out.condition.emplace(), 1)) return false;
          break;
        case 2:
          if (!want(f, WireType::kLen, "BatchStep.stmt")) return false;
          out.stmt = Stmt{};
          if (!stmt(f.bytes, out.stmt)) return false;
          break;
        default:
          break;
      }
    }
    return done(r, "BatchStep");
  }

  bool batch(std::string_view data, Batch& out) {
    Reader r(data);
    Field f;
    while (r.next(f)) {
      // Field 2 is replication_index, a hint quire does not use.
      if (f.number != 1) continue;
      if (!want(f, WireType::kLen, "Batch.steps")) return false;
      if (!take_item("Batch.steps")) return false;
      if (!batch_step(f.bytes, out.steps.emplace_back())) return false;
    }
    return done(r, "Batch");
  }
};

// ---------------------------------------------------------------- encoding

// Proto3 defaults (0, false, "") are omitted, except inside oneofs and map entries, and for
// fields declared `optional`, which are written whenever present. Each put_* writes an embedded
// message as field `field`; *_body variants write only the fields, for callers that frame them.
void put_value(std::string& out, std::uint32_t field, const Value& v);
void put_row(std::string& out, std::uint32_t field, const std::vector<Value>& row);
void put_col(std::string& out, std::uint32_t field, const Column& c);
void put_stmt_result_body(std::string& out, const StmtResult& r);
void put_stmt_result(std::string& out, std::uint32_t field, const StmtResult& r);
void put_error_body(std::string& out, const Error& e);
void put_error(std::string& out, std::uint32_t field, const Error& e);
void put_batch_result(std::string& out, std::uint32_t field, const BatchResult& r);
void put_describe_result(std::string& out, std::uint32_t field, const DescribeResult& r);
// A CursorEntry's fields (its oneof member): the body of an HTTP cursor frame or of a
// FetchCursorResp.entries message.
void put_cursor_entry_body(std::string& out, const CursorEntry& entry);

}  // namespace quire::hrana::protobuf::detail
