// proxy.Value.data: a SQL value in bincode 1.x's default encoding (little-endian, fixed-width
// integers), which is how libSQL serialises its Rust `Value` enum:
//
//   u32 variant   payload
//   0 Null        none
//   1 Integer     i64
//   2 Real        f64 (IEEE-754 bits)
//   3 Text        u64 length, then UTF-8 bytes
//   4 Blob        u64 length, then bytes
//
// Example: Text "d" is 03000000 0100000000000000 64 (captured from the real client).
#pragma once

#include <string>
#include <string_view>

#include "common/value.h"
#include "protocol/replication/messages.h"

namespace quire::replication {

void append_bincode_value(std::string& out, const Value& v);
std::string encode_bincode_value(const Value& v);
// The whole input must be one value: trailing bytes, an unknown variant, a length beyond the
// input and non-UTF-8 text are errors.
Decoded<Value> decode_bincode_value(std::string_view bytes);

}  // namespace quire::replication
