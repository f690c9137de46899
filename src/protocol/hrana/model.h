// Hrana's message model: one in-memory representation shared by the JSON and protobuf codecs,
// by HTTP pipelines and (later) WebSocket sessions. Field meanings follow the Hrana 1-3 specs;
// see ../shared/specs/hrana.md. Variant alternative order matches protobuf field numbers
// (index + 1) where the protobuf schema has a oneof, so codecs can map them directly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/value.h"
#include "engine/executor.h"

namespace quire::hrana {

using engine::Column;
using engine::DescribeResult;
using engine::NamedArg;
using engine::StmtResult;

// A malformed message or a request the protocol forbids (unknown sql_id, a batch condition
// naming a later step...). Over HTTP it fails the whole request with 400; over WebSocket it
// closes the connection.
struct ProtocolError {
  std::string message;
};

// A request that failed on its own: `code` is a Hrana or SQLite code name.
struct Error {
  std::string message;
  std::string code;
  std::string extended_code;  // quire extension: SQLite extended code name, may be empty
};

struct Stmt {
  std::optional<std::string> sql;
  std::optional<std::int32_t> sql_id;
  std::vector<Value> args;
  std::vector<NamedArg> named_args;
  bool want_rows = true;
};

struct BatchCond {
  // Alternative order = protobuf oneof numbers 1..6.
  enum class Kind { kOk = 0, kError, kNot, kAnd, kOr, kIsAutocommit };
  Kind kind = Kind::kOk;
  std::uint32_t step = 0;         // kOk, kError
  std::vector<BatchCond> conds;   // kNot (exactly one), kAnd, kOr
};

struct BatchStep {
  std::optional<BatchCond> condition;
  Stmt stmt;
};

struct Batch {
  std::vector<BatchStep> steps;
};

struct BatchResult {
  // One entry per step; both empty for a skipped step.
  std::vector<std::optional<StmtResult>> step_results;
  std::vector<std::optional<Error>> step_errors;
};

// ---- stream requests (HTTP pipeline entries; WebSocket requests that act on a stream) ----
struct CloseReq {};
struct ExecuteReq { Stmt stmt; };
struct BatchReq { Batch batch; };
struct SequenceReq { std::optional<std::string> sql; std::optional<std::int32_t> sql_id; };
struct DescribeReq { std::optional<std::string> sql; std::optional<std::int32_t> sql_id; };
struct StoreSqlReq { std::int32_t sql_id = 0; std::string sql; };
struct CloseSqlReq { std::int32_t sql_id = 0; };
struct GetAutocommitReq {};

// Order = protobuf StreamRequest oneof numbers 1..8.
using StreamRequest = std::variant<CloseReq, ExecuteReq, BatchReq, SequenceReq, DescribeReq,
                                   StoreSqlReq, CloseSqlReq, GetAutocommitReq>;

struct CloseResp {};
struct ExecuteResp { StmtResult result; };
struct BatchResp { BatchResult result; };
struct SequenceResp {};
struct DescribeResp { DescribeResult result; };
struct StoreSqlResp {};
struct CloseSqlResp {};
struct GetAutocommitResp { bool is_autocommit = true; };

// Same order as StreamRequest: a response's index equals its request's.
using StreamResponse = std::variant<CloseResp, ExecuteResp, BatchResp, SequenceResp, DescribeResp,
                                    StoreSqlResp, CloseSqlResp, GetAutocommitResp>;

// Order = protobuf StreamResult oneof: 1 ok, 2 error.
using StreamResult = std::variant<StreamResponse, Error>;

// ---- HTTP bodies ----
struct PipelineRequest {
  std::optional<std::string> baton;
  std::vector<StreamRequest> requests;
};

struct PipelineResponse {
  std::optional<std::string> baton;
  std::optional<std::string> base_url;
  std::vector<StreamResult> results;
};

struct CursorRequest {
  std::optional<std::string> baton;
  Batch batch;
};

struct CursorResponseHead {
  std::optional<std::string> baton;
  std::optional<std::string> base_url;
};

// ---- cursor entries (v3) ----
struct StepBeginEntry { std::uint32_t step = 0; std::vector<Column> cols; };
struct StepEndEntry { std::uint64_t affected_row_count = 0; std::optional<std::int64_t> last_insert_rowid; };
struct StepErrorEntry { std::uint32_t step = 0; Error error; };
struct RowEntry { std::vector<Value> row; };
struct ErrorEntry { Error error; };

// Order = protobuf CursorEntry oneof numbers 1..5.
using CursorEntry =
    std::variant<StepBeginEntry, StepEndEntry, StepErrorEntry, RowEntry, ErrorEntry>;

// The Hrana protocol version a request arrived on; decides which requests and conditions are
// allowed (get_autocommit and is_autocommit need 3; sequence/describe/store_sql need 2).
enum class Version { kV1 = 1, kV2 = 2, kV3 = 3 };

}  // namespace quire::hrana
