// Protobuf wire-format primitives: varints, zigzag, fixed-width numbers, length-delimited fields,
// a bounds-checked field reader and a UTF-8 check for proto3 strings. Hand-written because Hrana's
// schema is small and fixed; shared by the HTTP codec and (later) WebSocket messages.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace quire::hrana::protobuf::wire {

enum class WireType : std::uint8_t {
  kVarint = 0,
  kFixed64 = 1,
  kLen = 2,
  kStartGroup = 3,
  kEndGroup = 4,
  kFixed32 = 5,
};

inline constexpr std::size_t kMaxVarintBytes = 10;
inline constexpr std::uint64_t kMaxFieldNumber = (std::uint64_t{1} << 29) - 1;

inline const char* wire_type_name(WireType t) {
  switch (t) {
    case WireType::kVarint:
      return "varint";
    case WireType::kFixed64:
      return "64-bit";
    case WireType::kLen:
      return "length-delimited";
    case WireType::kStartGroup:
      return "start-group";
    case WireType::kEndGroup:
      return "end-group";
    case WireType::kFixed32:
      return "32-bit";
  }
  return "invalid";
}

constexpr std::uint64_t zigzag_encode(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}

constexpr std::int64_t zigzag_decode(std::uint64_t v) {
  return static_cast<std::int64_t>((v >> 1) ^ (std::uint64_t{0} - (v & 1)));
}

constexpr std::size_t varint_size(std::uint64_t v) {
  return (static_cast<std::size_t>(std::bit_width(v | 1)) + 6) / 7;
}

// ---------------------------------------------------------------- writing

// Writes exactly varint_size(v) bytes at p.
inline char* write_varint(char* p, std::uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

inline void put_varint(std::string& out, std::uint64_t v) {
  char buf[kMaxVarintBytes];
  out.append(buf, write_varint(buf, v) - buf);
}

inline void put_tag(std::string& out, std::uint32_t field, WireType type) {
  put_varint(out, (std::uint64_t{field} << 3) | static_cast<std::uint64_t>(type));
}

inline void put_fixed64(std::string& out, std::uint64_t v) {
  char buf[8];
  for (char& b : buf) {
    b = static_cast<char>(v & 0xFF);
    v >>= 8;
  }
  out.append(buf, sizeof buf);
}

inline void put_fixed32(std::string& out, std::uint32_t v) {
  char buf[4];
  for (char& b : buf) {
    b = static_cast<char>(v & 0xFF);
    v >>= 8;
  }
  out.append(buf, sizeof buf);
}

inline void put_varint_field(std::string& out, std::uint32_t field, std::uint64_t v) {
  put_tag(out, field, WireType::kVarint);
  put_varint(out, v);
}

inline void put_sint64_field(std::string& out, std::uint32_t field, std::int64_t v) {
  put_varint_field(out, field, zigzag_encode(v));
}

inline void put_bool_field(std::string& out, std::uint32_t field, bool v) {
  put_varint_field(out, field, v ? 1 : 0);
}

inline void put_fixed64_field(std::string& out, std::uint32_t field, std::uint64_t v) {
  put_tag(out, field, WireType::kFixed64);
  put_fixed64(out, v);
}

inline void put_double_field(std::string& out, std::uint32_t field, double v) {
  put_fixed64_field(out, field, std::bit_cast<std::uint64_t>(v));
}

inline void put_fixed32_field(std::string& out, std::uint32_t field, std::uint32_t v) {
  put_tag(out, field, WireType::kFixed32);
  put_fixed32(out, v);
}

inline void put_bytes_field(std::string& out, std::uint32_t field, const void* data,
                            std::size_t size) {
  put_tag(out, field, WireType::kLen);
  put_varint(out, size);
  out.append(static_cast<const char*>(data), size);
}

inline void put_bytes_field(std::string& out, std::uint32_t field, std::string_view bytes) {
  put_bytes_field(out, field, bytes.data(), bytes.size());
}

// A length prefix whose value is only known once the body is written. One byte is reserved; the
// body moves only when it turns out to be 128 bytes or longer, which is rare for the small,
// numerous messages (values, rows, columns) that dominate a response.
// Usage: auto m = begin_delimited(out); ...append the body...; end_delimited(out, m);
inline std::size_t begin_delimited(std::string& out) {
  out.push_back('\0');
  return out.size();
}

inline void end_delimited(std::string& out, std::size_t body_start) {
  const std::uint64_t len = out.size() - body_start;
  const std::size_t n = varint_size(len);
  if (n > 1) out.insert(body_start, n - 1, '\0');
  write_varint(&out[body_start - 1], len);
}

// An embedded message field: tag, then a delimited body.
inline std::size_t begin_message(std::string& out, std::uint32_t field) {
  put_tag(out, field, WireType::kLen);
  return begin_delimited(out);
}

inline void end_message(std::string& out, std::size_t body_start) {
  end_delimited(out, body_start);
}

// ---------------------------------------------------------------- reading

struct Field {
  std::uint32_t number = 0;
  WireType type = WireType::kVarint;
  std::uint64_t value = 0;  // kVarint, kFixed64 and kFixed32 payloads
  std::string_view bytes;   // kLen payload, pointing into the reader's input
};

// Reads the fields of one message in order. Every wire type except groups is parsed fully, so a
// caller skips an unknown field just by ignoring it. Never reads outside its input.
class Reader {
 public:
  explicit Reader(std::string_view data) : p_(data.data()), end_(data.data() + data.size()) {}
  // The reader and its fields point into the input, so a temporary string would dangle.
  explicit Reader(std::string&&) = delete;

  // The next field. False at the end of the input, or on malformed input (then error() is set).
  bool next(Field& f) {
    if (p_ == end_ || !error_.empty()) return false;
    std::uint64_t key;
    if (const char* e = read_varint(key)) return fail(std::string(e) + " in a field key");
    const std::uint64_t number = key >> 3;
    if (number == 0 || number > kMaxFieldNumber) {
      return fail("invalid field number " + std::to_string(number));
    }
    f.number = static_cast<std::uint32_t>(number);
    f.type = static_cast<WireType>(key & 7);
    switch (f.type) {
      case WireType::kVarint:
        if (const char* e = read_varint(f.value)) return fail(field_error(f, e));
        return true;
      case WireType::kFixed64:
        if (end_ - p_ < 8) return fail(field_error(f, "truncated 64-bit value"));
        f.value = load_le(8);
        return true;
      case WireType::kFixed32:
        if (end_ - p_ < 4) return fail(field_error(f, "truncated 32-bit value"));
        f.value = load_le(4);
        return true;
      case WireType::kLen: {
        std::uint64_t len;
        if (const char* e = read_varint(len)) return fail(field_error(f, e));
        const auto left = static_cast<std::uint64_t>(end_ - p_);
        if (len > left) {
          return fail(field_error(f, "length " + std::to_string(len) + " exceeds the " +
                                         std::to_string(left) + " bytes left"));
        }
        f.bytes = std::string_view(p_, static_cast<std::size_t>(len));
        p_ += len;
        return true;
      }
      case WireType::kStartGroup:
      case WireType::kEndGroup:
        return fail(field_error(f, "groups (wire types 3 and 4) are not supported"));
    }
    return fail(field_error(f, "invalid wire type " + std::to_string(key & 7)));
  }

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  // nullptr on success, else what was wrong.
  const char* read_varint(std::uint64_t& v) {
    if (p_ != end_ && !(static_cast<std::uint8_t>(*p_) & 0x80)) {
      v = static_cast<std::uint8_t>(*p_++);
      return nullptr;
    }
    std::uint64_t result = 0;
    for (std::size_t i = 0; i < kMaxVarintBytes; ++i) {
      if (p_ == end_) return "truncated varint";
      const auto b = static_cast<std::uint8_t>(*p_++);
      // The 10th byte holds bit 63 only; anything more is not a 64-bit number.
      if (i == kMaxVarintBytes - 1 && b > 1) {
        return (b & 0x80) ? "varint longer than 10 bytes" : "varint overflows 64 bits";
      }
      result |= std::uint64_t{b & 0x7Fu} << (7 * i);
      if (!(b & 0x80)) {
        v = result;
        return nullptr;
      }
    }
    return "varint longer than 10 bytes";  // unreachable: the 10th byte returns above
  }

  std::uint64_t load_le(int n) {
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(p_[i]);
    p_ += n;
    return v;
  }

  static std::string field_error(const Field& f, const std::string& what) {
    return "field " + std::to_string(f.number) + ": " + what;
  }

  bool fail(std::string message) {
    error_ = std::move(message);
    p_ = end_;
    return false;
  }

  const char* p_;
  const char* end_;
  std::string error_;
};

// ---------------------------------------------------------------- UTF-8

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. Proto3
// requires string fields to be valid UTF-8.
inline bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    // SQL and most text is ASCII: check 8 bytes at a time.
    if (end - p >= 8) {
      std::uint64_t w;
      std::memcpy(&w, p, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        p += 8;
        continue;
      }
    }
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    std::ptrdiff_t n;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 3;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // UTF-16 surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 4;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return false;
    }
    if (end - p < n) return false;
    if (p[1] < lo || p[1] > hi) return false;
    for (std::ptrdiff_t i = 2; i < n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
    }
    p += n;
  }
  return true;
}

}  // namespace quire::hrana::protobuf::wire
