// The two encodings of Hrana's message model. Both decode into, and encode from, the types in
// model.h; neither knows about HTTP or SQLite. Decoders never throw: malformed input of any
// shape becomes a ProtocolError whose message says what was wrong.
#pragma once

#include <string>
#include <string_view>

#include "common/expected.h"
#include "protocol/hrana/model.h"
#include "protocol/limits.h"

namespace quire::hrana {

namespace json {
// max_items: protocol::Limits::max_decoded_items().
Expected<PipelineRequest, ProtocolError> decode_pipeline_request(std::string_view body,
                                                                 std::size_t max_items = protocol::Limits{}.max_decoded_items());
Expected<CursorRequest, ProtocolError> decode_cursor_request(std::string_view body,
                                                             std::size_t max_items = protocol::Limits{}.max_decoded_items());
std::string encode_pipeline_response(const PipelineResponse& r);
// Cursor responses are newline-delimited JSON: the head, then one line per entry.
void append_cursor_head(const CursorResponseHead& head, std::string& out);
void append_cursor_entry(const CursorEntry& entry, std::string& out);
// {"message": ..., "code": ...}: the body of an HTTP error response.
std::string encode_error(const Error& e);
}  // namespace json

namespace protobuf {
// max_items: protocol::Limits::max_decoded_items().
Expected<PipelineRequest, ProtocolError> decode_pipeline_request(std::string_view body,
                                                                 std::size_t max_items = protocol::Limits{}.max_decoded_items());
Expected<CursorRequest, ProtocolError> decode_cursor_request(std::string_view body,
                                                             std::size_t max_items = protocol::Limits{}.max_decoded_items());
std::string encode_pipeline_response(const PipelineResponse& r);
// Cursor responses are a sequence of varint-length-delimited messages: the head, then entries.
void append_cursor_head(const CursorResponseHead& head, std::string& out);
void append_cursor_entry(const CursorEntry& entry, std::string& out);
std::string encode_error(const Error& e);
}  // namespace protobuf

// Checks what neither codec can check alone: request kinds and batch conditions allowed by the
// protocol version, exactly one of sql/sql_id, conditions that only name earlier steps.
Expected<void, ProtocolError> validate(const StreamRequest& request, Version version);
Expected<void, ProtocolError> validate(const Batch& batch, Version version);

}  // namespace quire::hrana
