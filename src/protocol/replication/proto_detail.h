// Internal to the replication codec: decoding helpers over Hrana's protobuf wire reader, so each
// message decoder is a switch on field numbers. Every helper returns false after recording the
// first error in the Decoder; callers return false straight away.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/hrana/protobuf_wire.h"
#include "protocol/replication/messages.h"

namespace quire::replication::detail {

namespace wire = hrana::protobuf::wire;

class Decoder {
 public:
  bool fail(std::string_view where, const std::string& what) {
    if (error_.empty()) error_ = std::string(where) + ": " + what;
    return false;
  }
  bool failed() const { return !error_.empty(); }
  DecodeError error() const { return DecodeError{error_}; }

  // Steps, arguments and conditions a request may still decode into
  // (protocol::Limits::max_decoded_items()); unlimited unless set, as for responses.
  void limit_items(std::size_t n) { items_left_ = items_limit_ = n; }
  // Called before each repeated element of a request is added.
  bool take_item(std::string_view where) {
    if (items_left_ > 0) {
      --items_left_;
      return true;
    }
    return fail(where, "more than " + std::to_string(items_limit_) +
                           " steps, arguments and conditions in one request");
  }

  bool expect(const wire::Field& f, wire::WireType type, std::string_view where) {
    if (f.type == type) return true;
    return fail(where, std::string("expected ") + wire::wire_type_name(type) + ", got " +
                           wire::wire_type_name(f.type));
  }
  bool get_u64(const wire::Field& f, std::uint64_t& out, std::string_view where) {
    if (!expect(f, wire::WireType::kVarint, where)) return false;
    out = f.value;
    return true;
  }
  bool get_i64(const wire::Field& f, std::int64_t& out, std::string_view where) {
    std::uint64_t v;
    if (!get_u64(f, v, where)) return false;
    out = static_cast<std::int64_t>(v);
    return true;
  }
  // int32 and enums: the low 32 bits of the varint, as protobuf parsers do.
  bool get_i32(const wire::Field& f, std::int32_t& out, std::string_view where) {
    std::uint64_t v;
    if (!get_u64(f, v, where)) return false;
    out = static_cast<std::int32_t>(static_cast<std::uint32_t>(v));
    return true;
  }
  template <class E>
  bool get_enum(const wire::Field& f, E& out, std::string_view where) {
    std::int32_t v;
    if (!get_i32(f, v, where)) return false;
    out = static_cast<E>(v);
    return true;
  }
  bool get_bool(const wire::Field& f, bool& out, std::string_view where) {
    std::uint64_t v;
    if (!get_u64(f, v, where)) return false;
    out = v != 0;
    return true;
  }
  bool get_bytes(const wire::Field& f, std::string& out, std::string_view where) {
    if (!expect(f, wire::WireType::kLen, where)) return false;
    out.assign(f.bytes);
    return true;
  }
  bool get_string(const wire::Field& f, std::string& out, std::string_view where) {
    if (!expect(f, wire::WireType::kLen, where)) return false;
    if (!wire::valid_utf8(f.bytes)) return fail(where, "string is not valid UTF-8");
    out.assign(f.bytes);
    return true;
  }
  // The end of a message's field loop: a reader error becomes the decoder's error.
  bool finish(const wire::Reader& r, std::string_view where) {
    if (!r.ok()) return fail(where, r.error());
    return !failed();
  }

 private:
  std::string error_;
  std::size_t items_left_ = SIZE_MAX;
  std::size_t items_limit_ = SIZE_MAX;
};

template <class T, class F>
Decoded<T> run_decoder(std::string_view bytes, F&& decode_into) {
  Decoder d;
  T m{};
  if (!decode_into(d, bytes, m)) return unexpected(d.error());
  return m;
}

// Writers for proto3 presence: scalars only when not default.
inline void put_u64(std::string& out, std::uint32_t field, std::uint64_t v) {
  if (v != 0) wire::put_varint_field(out, field, v);
}
inline void put_i64(std::string& out, std::uint32_t field, std::int64_t v) {
  if (v != 0) wire::put_varint_field(out, field, static_cast<std::uint64_t>(v));
}
// int32 and enums: negative values are sign-extended to 10 bytes, as protobuf writes them.
inline void put_i32(std::string& out, std::uint32_t field, std::int32_t v) {
  if (v != 0) {
    wire::put_varint_field(out, field, static_cast<std::uint64_t>(static_cast<std::int64_t>(v)));
  }
}
inline void put_bool(std::string& out, std::uint32_t field, bool v) {
  if (v) wire::put_varint_field(out, field, 1);
}
inline void put_string(std::string& out, std::uint32_t field, std::string_view v) {
  if (!v.empty()) wire::put_bytes_field(out, field, v);
}

}  // namespace quire::replication::detail
