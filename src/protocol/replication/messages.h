// The protobuf messages of libSQL's replication protocol (proto3), as plain structs. Field
// numbers are those of tursodatabase/libsql libsql-replication/proto/{replication_log,metadata,
// proxy}.proto at tag libsql-0.9.30 (linked by npm libsql 0.5.29); the files are identical at the
// repository's HEAD (2026-08). The codec is in codec.h; the byte layouts and what the client really
// uses are in docs/replication-protocol.md.
//
// Conventions: proto3 scalars are plain members (absent == default); `optional` fields and
// message fields whose presence matters are std::optional; oneofs are std::variant with
// std::monostate for "none set". Enums are open, as in proto3: a value outside the listed
// enumerators is kept as is, so check before switching on one from a client.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/expected.h"
#include "common/value.h"

namespace quire::replication {

struct DecodeError {
  std::string message;
};
template <class T>
using Decoded = Expected<T, DecodeError>;

// ---------------------------------------------------------------- package metadata

enum class DurabilityMode : std::int32_t { kRelaxed = 0, kStrong = 1, kExtra = 2, kOff = 3 };

// metadata.DatabaseConfig. The client ignores it in HelloResponse; we may leave it out.
struct DatabaseConfig {
  bool block_reads = false;                       // 1
  bool block_writes = false;                      // 2
  std::optional<std::string> block_reason;        // 3
  std::uint64_t max_db_pages = 0;                 // 4
  std::optional<std::string> heartbeat_url;       // 5
  std::optional<std::string> bottomless_db_id;    // 6
  std::optional<std::string> jwt_key;             // 7
  std::optional<std::uint64_t> txn_timeout_s;     // 8
  bool allow_attach = false;                      // 9
  std::optional<std::uint64_t> max_row_size;      // 10
  std::optional<bool> shared_schema;              // 11 (plain bool before 2024; same bytes)
  std::optional<std::string> shared_schema_name;  // 12
  std::optional<DurabilityMode> durability_mode;  // 13
  bool operator==(const DatabaseConfig&) const = default;
};

// ---------------------------------------------------------------- package wal_log

struct HelloRequest {
  std::optional<std::uint64_t> handshake_version;  // 1; the 0.9.30 client sends 1
  bool operator==(const HelloRequest&) const = default;
};

enum class WalFlavor : std::int32_t { kSqlite = 0, kLibsql = 1 };

struct LogOffset {
  std::uint64_t next_offset = 0;        // 1
  std::optional<WalFlavor> wal_flavor;  // 2; the client leaves it unset
  bool operator==(const LogOffset&) const = default;
};

struct HelloResponse {
  std::string generation_id;                               // 1 (legacy; client ignores)
  std::uint64_t generation_start_index = 0;                // 2 (legacy; client ignores)
  std::string log_id;                                      // 3; must parse as a UUID
  std::string session_token;                               // 4 (bytes); must be a UUID string
  std::optional<std::uint64_t> current_replication_index;  // 5; unset when the log is empty
  std::optional<DatabaseConfig> config;                    // 6
  bool operator==(const HelloResponse&) const = default;
};

struct Frame {
  std::string data;                               // 1; exactly 4120 bytes, see frame.h
  std::optional<std::int64_t> timestamp;          // 2; commit time in ms, commit frames only
  std::optional<std::uint64_t> durable_frame_no;  // 3
  bool operator==(const Frame&) const = default;
};

// A Frame decoded without copying: `data` points into the bytes it was decoded from, which must
// outlive it. For the replica's hot path (a snapshot is a gigabyte of these).
struct FrameRef {
  std::string_view data;
  std::optional<std::int64_t> timestamp;
  std::optional<std::uint64_t> durable_frame_no;
};

struct Frames {
  std::vector<Frame> frames;  // 1
  bool operator==(const Frames&) const = default;
};

// ---------------------------------------------------------------- package proxy

// Values travel as proxy.Value { bytes data = 1 } holding a bincode-1 encoded value (see
// value_codec.h); the codec converts to and from quire::Value.

struct Positional {
  std::vector<Value> values;  // 1
  bool operator==(const Positional&) const = default;
};

struct Named {
  std::vector<std::string> names;  // 1; with their sigil, e.g. ":v"
  std::vector<Value> values;       // 2
  bool operator==(const Named&) const = default;
};

struct Query {
  std::string stmt;                                        // 1
  std::variant<std::monostate, Positional, Named> params;  // oneof: 2 positional, 3 named
  bool skip_rows = false;                                  // 4
  bool operator==(const Query&) const = default;
};

// proxy.Cond: a oneof of OkCond{step}=1, ErrCond{step}=2, NotCond{cond}=3, AndCond{conds}=4,
// OrCond{conds}=5, IsAutocommitCond{}=6. Flattened: `step` for kOk/kErr, `conds` for
// kNot (at most one; empty when the NotCond had no cond), kAnd and kOr.
struct Cond {
  enum class Kind : std::uint8_t { kNone, kOk, kErr, kNot, kAnd, kOr, kIsAutocommit };
  Kind kind = Kind::kNone;
  std::int64_t step = 0;
  std::vector<Cond> conds;
  bool operator==(const Cond&) const = default;
};

struct Step {
  std::optional<Cond> cond;  // 1
  Query query;               // 2
  bool operator==(const Step&) const = default;
};

struct Program {
  std::vector<Step> steps;  // 1
  bool operator==(const Program&) const = default;
};

struct ProgramReq {
  std::string client_id;  // 1; a UUID per client connection: the key of server-side txn state
  Program pgm;            // 2
  bool operator==(const ProgramReq&) const = default;
};

enum class ErrorCode : std::int32_t { kSqlError = 0, kTxBusy = 1, kTxTimeout = 2, kInternal = 3 };

// proxy.Error. The client turns kSqlError into RemoteSqliteFailure(code?, extended_code, message).
struct ProxyError {
  ErrorCode code = ErrorCode::kSqlError;  // 1
  std::string message;                    // 2
  std::int32_t extended_code = 0;         // 3; SQLite's extended result code
  bool operator==(const ProxyError&) const = default;
};

struct Column {
  std::string name;                      // 1
  std::optional<std::string> decl_type;  // 3 ("decltype")
  bool operator==(const Column&) const = default;
};

struct Row {
  std::vector<Value> values;  // 1
  bool operator==(const Row&) const = default;
};

struct ResultRows {
  std::vector<Column> column_descriptions;        // 1
  std::vector<Row> rows;                          // 2
  std::uint64_t affected_row_count = 0;           // 3
  std::optional<std::int64_t> last_insert_rowid;  // 4
  bool operator==(const ResultRows&) const = default;
};

struct QueryResult {
  std::variant<std::monostate, ProxyError, ResultRows> result;  // oneof: 1 error, 2 row
  bool operator==(const QueryResult&) const = default;
};

// proxy.State: the connection's state after the program. The client panics on a value outside
// these three ("Invalid state enum"), so never send another.
enum class TxnState : std::int32_t { kInit = 0, kInvalid = 1, kTxn = 2 };

struct ExecuteResults {
  std::vector<QueryResult> results;               // 1; one per step
  TxnState state = TxnState::kInit;               // 2
  std::optional<std::uint64_t> current_frame_no;  // 3
  bool operator==(const ExecuteResults&) const = default;
};

struct DescribeRequest {
  std::string client_id;  // 1
  std::string stmt;       // 2
  bool operator==(const DescribeRequest&) const = default;
};

struct Description {
  std::vector<Column> column_descriptions;  // 1
  std::vector<std::string> param_names;     // 2; see client_param_names() in codec.h
  std::uint64_t param_count = 0;            // 3
  bool operator==(const Description&) const = default;
};

struct DescribeResult {
  std::variant<std::monostate, ProxyError, Description> result;  // oneof: 1 error, 2 description
  bool operator==(const DescribeResult&) const = default;
};

struct DisconnectMessage {
  std::string client_id;  // 1
  bool operator==(const DisconnectMessage&) const = default;
};

struct Ack {
  bool operator==(const Ack&) const = default;
};

}  // namespace quire::replication
