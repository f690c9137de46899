// bincode values: see value_codec.h.
#include "protocol/replication/value_codec.h"

#include <bit>
#include <cstdint>

#include "protocol/hrana/protobuf_wire.h"

namespace quire::replication {

namespace {

enum : std::uint32_t { kNull = 0, kInteger = 1, kReal = 2, kText = 3, kBlob = 4 };

void put_le(std::string& out, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) {
    out.push_back(static_cast<char>(v & 0xFF));
    v >>= 8;
  }
}

std::uint64_t get_le(std::string_view in, std::size_t pos, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(in[pos + i]);
  return v;
}

}  // namespace

void append_bincode_value(std::string& out, const Value& v) {
  std::visit(
      [&out](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          put_le(out, kNull, 4);
        } else if constexpr (std::is_same_v<T, std::int64_t>) {
          put_le(out, kInteger, 4);
          put_le(out, static_cast<std::uint64_t>(x), 8);
        } else if constexpr (std::is_same_v<T, double>) {
          put_le(out, kReal, 4);
          put_le(out, std::bit_cast<std::uint64_t>(x), 8);
        } else if constexpr (std::is_same_v<T, std::string>) {
          put_le(out, kText, 4);
          put_le(out, x.size(), 8);
          out.append(x);
        } else {
          put_le(out, kBlob, 4);
          put_le(out, x.size(), 8);
          out.append(reinterpret_cast<const char*>(x.data()), x.size());
        }
      },
      v);
}

std::string encode_bincode_value(const Value& v) {
  std::string out;
  append_bincode_value(out, v);
  return out;
}

Decoded<Value> decode_bincode_value(std::string_view in) {
  if (in.size() < 4) return unexpected(DecodeError{"bincode value: truncated variant tag"});
  const auto tag = static_cast<std::uint32_t>(get_le(in, 0, 4));
  const std::size_t rest = in.size() - 4;
  auto exact = [&](std::size_t want) -> bool { return rest == want; };
  switch (tag) {
    case kNull:
      if (!exact(0)) break;
      return Value{};
    case kInteger:
      if (!exact(8)) break;
      return Value{static_cast<std::int64_t>(get_le(in, 4, 8))};
    case kReal:
      if (!exact(8)) break;
      return Value{std::bit_cast<double>(get_le(in, 4, 8))};
    case kText:
    case kBlob: {
      if (rest < 8) break;
      const std::uint64_t len = get_le(in, 4, 8);
      if (len != rest - 8) break;
      const std::string_view bytes = in.substr(12);
      if (tag == kBlob) return Value{Blob(bytes.begin(), bytes.end())};
      if (!hrana::protobuf::wire::valid_utf8(bytes)) {
        return unexpected(DecodeError{"bincode value: text is not valid UTF-8"});
      }
      return Value{std::string(bytes)};
    }
    default:
      return unexpected(DecodeError{"bincode value: unknown variant " + std::to_string(tag)});
  }
  return unexpected(DecodeError{"bincode value: wrong length " + std::to_string(in.size()) +
                                " for variant " + std::to_string(tag)});
}

}  // namespace quire::replication
