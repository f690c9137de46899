// Protobuf codec for wal_log.ReplicationLog and metadata.DatabaseConfig: see codec.h.
#include <cstring>

#include "protocol/replication/codec.h"
#include "protocol/replication/proto_detail.h"

namespace quire::replication {

using detail::Decoder;
using detail::wire::Field;
using detail::wire::Reader;
namespace wire = detail::wire;

namespace {

// ---------------------------------------------------------------- metadata.DatabaseConfig

void write_database_config(std::string& out, const DatabaseConfig& m) {
  detail::put_bool(out, 1, m.block_reads);
  detail::put_bool(out, 2, m.block_writes);
  if (m.block_reason) wire::put_bytes_field(out, 3, *m.block_reason);
  detail::put_u64(out, 4, m.max_db_pages);
  if (m.heartbeat_url) wire::put_bytes_field(out, 5, *m.heartbeat_url);
  if (m.bottomless_db_id) wire::put_bytes_field(out, 6, *m.bottomless_db_id);
  if (m.jwt_key) wire::put_bytes_field(out, 7, *m.jwt_key);
  if (m.txn_timeout_s) wire::put_varint_field(out, 8, *m.txn_timeout_s);
  detail::put_bool(out, 9, m.allow_attach);
  if (m.max_row_size) wire::put_varint_field(out, 10, *m.max_row_size);
  if (m.shared_schema) wire::put_bool_field(out, 11, *m.shared_schema);
  if (m.shared_schema_name) wire::put_bytes_field(out, 12, *m.shared_schema_name);
  if (m.durability_mode) {
    wire::put_varint_field(out, 13,
                           static_cast<std::uint64_t>(static_cast<std::int64_t>(
                               static_cast<std::int32_t>(*m.durability_mode))));
  }
}

template <class T, class Get>
bool get_optional(Decoder& d, const Field& f, std::optional<T>& out, std::string_view where,
                  Get get) {
  T v{};
  if (!(d.*get)(f, v, where)) return false;
  out = std::move(v);
  return true;
}

bool read_database_config(Decoder& d, std::string_view in, DatabaseConfig& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    bool ok = true;
    switch (f.number) {
      case 1:
        ok = d.get_bool(f, m.block_reads, "DatabaseConfig.block_reads");
        break;
      case 2:
        ok = d.get_bool(f, m.block_writes, "DatabaseConfig.block_writes");
        break;
      case 3:
        ok =
            get_optional(d, f, m.block_reason, "DatabaseConfig.block_reason", &Decoder::get_string);
        break;
      case 4:
        ok = d.get_u64(f, m.max_db_pages, "DatabaseConfig.max_db_pages");
        break;
      case 5:
        ok = get_optional(d, f, m.heartbeat_url, "DatabaseConfig.heartbeat_url",
                          &Decoder::get_string);
        break;
      case 6:
        ok = get_optional(d, f, m.bottomless_db_id, "DatabaseConfig.bottomless_db_id",
                          &Decoder::get_string);
        break;
      case 7:
        ok = get_optional(d, f, m.jwt_key, "DatabaseConfig.jwt_key", &Decoder::get_string);
        break;
      case 8:
        ok = get_optional(d, f, m.txn_timeout_s, "DatabaseConfig.txn_timeout_s", &Decoder::get_u64);
        break;
      case 9:
        ok = d.get_bool(f, m.allow_attach, "DatabaseConfig.allow_attach");
        break;
      case 10:
        ok = get_optional(d, f, m.max_row_size, "DatabaseConfig.max_row_size", &Decoder::get_u64);
        break;
      case 11:
        ok =
            get_optional(d, f, m.shared_schema, "DatabaseConfig.shared_schema", &Decoder::get_bool);
        break;
      case 12:
        ok = get_optional(d, f, m.shared_schema_name, "DatabaseConfig.shared_schema_name",
                          &Decoder::get_string);
        break;
      case 13: {
        DurabilityMode mode{};
        ok = d.get_enum(f, mode, "DatabaseConfig.durability_mode");
        if (ok) m.durability_mode = mode;
        break;
      }
      default:
        break;
    }
    if (!ok) return false;
  }
  return d.finish(r, "DatabaseConfig");
}

// ---------------------------------------------------------------- wal_log

bool read_hello_request(Decoder& d, std::string_view in, HelloRequest& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    if (f.number == 1 && !get_optional(d, f, m.handshake_version, "HelloRequest.handshake_version",
                                       &Decoder::get_u64)) {
      return false;
    }
  }
  return d.finish(r, "HelloRequest");
}

bool read_log_offset(Decoder& d, std::string_view in, LogOffset& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    bool ok = true;
    if (f.number == 1) {
      ok = d.get_u64(f, m.next_offset, "LogOffset.next_offset");
    } else if (f.number == 2) {
      WalFlavor flavor{};
      ok = d.get_enum(f, flavor, "LogOffset.wal_flavor");
      if (ok) m.wal_flavor = flavor;
    }
    if (!ok) return false;
  }
  return d.finish(r, "LogOffset");
}

bool read_hello_response(Decoder& d, std::string_view in, HelloResponse& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    bool ok = true;
    switch (f.number) {
      case 1:
        ok = d.get_string(f, m.generation_id, "HelloResponse.generation_id");
        break;
      case 2:
        ok = d.get_u64(f, m.generation_start_index, "HelloResponse.generation_start_index");
        break;
      case 3:
        ok = d.get_string(f, m.log_id, "HelloResponse.log_id");
        break;
      case 4:
        ok = d.get_bytes(f, m.session_token, "HelloResponse.session_token");
        break;
      case 5:
        ok = get_optional(d, f, m.current_replication_index,
                          "HelloResponse.current_replication_index", &Decoder::get_u64);
        break;
      case 6:
        ok = d.expect(f, wire::WireType::kLen, "HelloResponse.config");
        if (ok) {
          if (!m.config) m.config.emplace();
          ok = read_database_config(d, f.bytes, *m.config);
        }
        break;
      default:
        break;
    }
    if (!ok) return false;
  }
  return d.finish(r, "HelloResponse");
}

void write_frame(std::string& out, const Frame& m) {
  detail::put_string(out, 1, m.data);
  if (m.timestamp) wire::put_varint_field(out, 2, static_cast<std::uint64_t>(*m.timestamp));
  if (m.durable_frame_no) wire::put_varint_field(out, 3, *m.durable_frame_no);
}

bool read_frame(Decoder& d, std::string_view in, Frame& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    bool ok = true;
    switch (f.number) {
      case 1:
        ok = d.get_bytes(f, m.data, "Frame.data");
        break;
      case 2:
        ok = get_optional(d, f, m.timestamp, "Frame.timestamp", &Decoder::get_i64);
        break;
      case 3:
        ok = get_optional(d, f, m.durable_frame_no, "Frame.durable_frame_no", &Decoder::get_u64);
        break;
      default:
        break;
    }
    if (!ok) return false;
  }
  return d.finish(r, "Frame");
}

bool read_frames(Decoder& d, std::string_view in, Frames& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    if (f.number != 1) continue;
    if (!d.expect(f, wire::WireType::kLen, "Frames.frames")) return false;
    if (!read_frame(d, f.bytes, m.frames.emplace_back())) return false;
  }
  return d.finish(r, "Frames");
}

bool read_frame_ref(Decoder& d, std::string_view in, FrameRef& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    bool ok = true;
    switch (f.number) {
      case 1:
        ok = d.expect(f, wire::WireType::kLen, "Frame.data");
        if (ok) m.data = f.bytes;
        break;
      case 2:
        ok = get_optional(d, f, m.timestamp, "Frame.timestamp", &Decoder::get_i64);
        break;
      case 3:
        ok = get_optional(d, f, m.durable_frame_no, "Frame.durable_frame_no", &Decoder::get_u64);
        break;
      default:
        break;
    }
    if (!ok) return false;
  }
  return d.finish(r, "Frame");
}

bool read_frames_ref(Decoder& d, std::string_view in, std::vector<FrameRef>& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    if (f.number != 1) continue;
    if (!d.expect(f, wire::WireType::kLen, "Frames.frames")) return false;
    if (!read_frame_ref(d, f.bytes, m.emplace_back())) return false;
  }
  return d.finish(r, "Frames");
}

}  // namespace

std::string encode_hello_request(const HelloRequest& m) {
  std::string out;
  if (m.handshake_version) wire::put_varint_field(out, 1, *m.handshake_version);
  return out;
}

Decoded<HelloRequest> decode_hello_request(std::string_view bytes) {
  return detail::run_decoder<HelloRequest>(bytes, read_hello_request);
}

std::string encode_hello_response(const HelloResponse& m) {
  std::string out;
  detail::put_string(out, 1, m.generation_id);
  detail::put_u64(out, 2, m.generation_start_index);
  detail::put_string(out, 3, m.log_id);
  detail::put_string(out, 4, m.session_token);
  if (m.current_replication_index) wire::put_varint_field(out, 5, *m.current_replication_index);
  if (m.config) {
    const std::size_t body = wire::begin_message(out, 6);
    write_database_config(out, *m.config);
    wire::end_message(out, body);
  }
  return out;
}

Decoded<HelloResponse> decode_hello_response(std::string_view bytes) {
  return detail::run_decoder<HelloResponse>(bytes, read_hello_response);
}

std::string encode_log_offset(const LogOffset& m) {
  std::string out;
  detail::put_u64(out, 1, m.next_offset);
  if (m.wal_flavor) {
    wire::put_varint_field(out, 2,
                           static_cast<std::uint64_t>(static_cast<std::int64_t>(
                               static_cast<std::int32_t>(*m.wal_flavor))));
  }
  return out;
}

Decoded<LogOffset> decode_log_offset(std::string_view bytes) {
  return detail::run_decoder<LogOffset>(bytes, read_log_offset);
}

std::string encode_frame(const Frame& m) {
  std::string out;
  out.reserve(m.data.size() + 32);
  write_frame(out, m);
  return out;
}

Decoded<Frame> decode_frame(std::string_view bytes) {
  return detail::run_decoder<Frame>(bytes, read_frame);
}

void append_frames_element(std::string& out, const Frame& frame) {
  // The length is computed up front: a 4120-byte frame would otherwise be moved once to widen
  // the length prefix that begin_message reserves.
  std::size_t size = 0;
  if (!frame.data.empty()) size += 1 + wire::varint_size(frame.data.size()) + frame.data.size();
  if (frame.timestamp) {
    size += 1 + wire::varint_size(static_cast<std::uint64_t>(*frame.timestamp));
  }
  if (frame.durable_frame_no) size += 1 + wire::varint_size(*frame.durable_frame_no);
  wire::put_tag(out, 1, wire::WireType::kLen);
  wire::put_varint(out, size);
  write_frame(out, frame);
}

Decoded<FrameRef> decode_frame_ref(std::string_view bytes) {
  return detail::run_decoder<FrameRef>(bytes, read_frame_ref);
}

Decoded<std::vector<FrameRef>> decode_frames_ref(std::string_view bytes) {
  return detail::run_decoder<std::vector<FrameRef>>(bytes, read_frames_ref);
}

namespace {
// A Frame message with only `data` (4120 bytes): tag, two-byte varint length, data.
constexpr std::size_t kFrameMessageSize = 1 + 2 + kFrameSize;
static_assert(kFrameSize >= 128 && kFrameSize < 16384, "the length varint is two bytes");
}  // namespace

std::size_t grpc_web_frame_message_size() { return 5 + kFrameMessageSize; }

std::size_t append_grpc_web_frame_message(std::string& out, const FrameHeader& header,
                                          std::string_view page) {
  const std::size_t at = out.size();
  out.resize(at + grpc_web_frame_message_size());
  char* p = out.data() + at;
  // gRPC-Web data frame prefix: flag 0, big-endian length.
  *p++ = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    *p++ = static_cast<char>((kFrameMessageSize >> shift) & 0xFF);
  }
  *p++ = 0x0A;  // field 1, length-delimited
  *p++ = static_cast<char>(0x80 | (kFrameSize & 0x7F));
  *p++ = static_cast<char>(kFrameSize >> 7);
  write_frame_header(header, p);
  p += kFrameHeaderSize;
  const std::size_t page_at = static_cast<std::size_t>(p - out.data());
  if (!page.empty()) std::memcpy(p, page.data(), kPageSize);
  return page_at;
}

std::string encode_frames(const Frames& m) {
  std::string out;
  std::size_t size = 0;
  for (const Frame& f : m.frames) size += f.data.size() + 40;
  out.reserve(size);
  for (const Frame& f : m.frames) append_frames_element(out, f);
  return out;
}

Decoded<Frames> decode_frames(std::string_view bytes) {
  return detail::run_decoder<Frames>(bytes, read_frames);
}

std::string encode_database_config(const DatabaseConfig& m) {
  std::string out;
  write_database_config(out, m);
  return out;
}

Decoded<DatabaseConfig> decode_database_config(std::string_view bytes) {
  return detail::run_decoder<DatabaseConfig>(bytes, read_database_config);
}

}  // namespace quire::replication
