// Tests for Hrana-over-WebSocket messages in JSON (protocol/hrana/ws_json_codec.cpp, subprotocols
// hrana1-3): client messages spelled the way @libsql/hrana-client 0.10 writes them, and server
// messages compared with the exact JSON text its decoder reads.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <variant>

#include "protocol/hrana/ws_model.h"

namespace quire::hrana::ws::json {
namespace {

ClientMsg decode_ok(std::string_view text) {
  auto m = decode_client_msg(text);
  EXPECT_TRUE(m) << (m ? "" : m.error().message) << "\n  input: " << text;
  return m ? std::move(*m) : ClientMsg{};
}

std::string decode_err(std::string_view text) {
  auto m = decode_client_msg(text);
  EXPECT_FALSE(m) << "decoded: " << text;
  if (m) return "";
  EXPECT_FALSE(m.error().message.empty());
  return m.error().message;
}

// The request of a message that must be a request with `id`.
template <class Req>
Req request_of(std::string_view text, std::int32_t id) {
  ClientMsg m = decode_ok(text);
  const auto* r = std::get_if<RequestMsg>(&m);
  if (!r) {
    ADD_FAILURE() << "not a request: " << text;
    return Req{};
  }
  EXPECT_EQ(r->request_id, id);
  const auto* q = std::get_if<Req>(&r->request);
  if (!q) {
    ADD_FAILURE() << "request has variant index " << r->request.index() << ": " << text;
    return Req{};
  }
  return *q;
}

TEST(WsJsonCodecTest, DecodesHello) {
  auto h = std::get<HelloMsg>(decode_ok(R"({"type":"hello","jwt":"eyJ.e30.sig"})"));
  EXPECT_EQ(h.jwt, "eyJ.e30.sig");
  // hrana-client leaves jwt out when it has none; null means the same.
  EXPECT_FALSE(std::get<HelloMsg>(decode_ok(R"({"type":"hello"})")).jwt);
  EXPECT_FALSE(std::get<HelloMsg>(decode_ok(R"({"type":"hello","jwt":null})")).jwt);
}

TEST(WsJsonCodecTest, DecodesEveryRequestType) {
  EXPECT_EQ(
      request_of<OpenStreamReq>(
          R"({"type":"request","request_id":0,"request":{"type":"open_stream","stream_id":1}})", 0)
          .stream_id,
      1);
  EXPECT_EQ(
      request_of<CloseStreamReq>(
          R"({"type":"request","request_id":1,"request":{"type":"close_stream","stream_id":2}})", 1)
          .stream_id,
      2);

  auto ex = request_of<ExecuteReq>(
      R"({"type":"request","request_id":2,"request":{"type":"execute","stream_id":3,
          "stmt":{"sql":"SELECT ?, :a","args":[{"type":"integer","value":"-5"}],
                  "named_args":[{"name":":a","value":{"type":"text","value":"x"}}],
                  "want_rows":false}}})",
      2);
  EXPECT_EQ(ex.stream_id, 3);
  EXPECT_EQ(ex.stmt.sql, "SELECT ?, :a");
  ASSERT_EQ(ex.stmt.args.size(), 1u);
  EXPECT_EQ(std::get<std::int64_t>(ex.stmt.args[0]), -5);
  ASSERT_EQ(ex.stmt.named_args.size(), 1u);
  EXPECT_EQ(std::get<std::string>(ex.stmt.named_args[0].value), "x");
  EXPECT_FALSE(ex.stmt.want_rows);

  auto batch = request_of<BatchReq>(
      R"({"type":"request","request_id":3,"request":{"type":"batch","stream_id":4,"batch":{
          "steps":[{"stmt":{"sql":"BEGIN","args":[],"named_args":[],"want_rows":false}},
                   {"condition":{"type":"not","cond":{"type":"is_autocommit"}},
                    "stmt":{"sql_id":9,"args":[],"named_args":[],"want_rows":true}}]}}})",
      3);
  EXPECT_EQ(batch.stream_id, 4);
  ASSERT_EQ(batch.batch.steps.size(), 2u);
  ASSERT_TRUE(batch.batch.steps[1].condition);
  EXPECT_EQ(batch.batch.steps[1].condition->kind, BatchCond::Kind::kNot);
  EXPECT_EQ(batch.batch.steps[1].stmt.sql_id, 9);

  auto open = request_of<OpenCursorReq>(
      R"({"type":"request","request_id":4,"request":{"type":"open_cursor","stream_id":5,
          "cursor_id":6,"batch":{"steps":[{"stmt":{"sql":"SELECT 1"}}]}}})",
      4);
  EXPECT_EQ(open.stream_id, 5);
  EXPECT_EQ(open.cursor_id, 6);
  EXPECT_EQ(open.batch.steps.size(), 1u);

  EXPECT_EQ(
      request_of<CloseCursorReq>(
          R"({"type":"request","request_id":5,"request":{"type":"close_cursor","cursor_id":6}})", 5)
          .cursor_id,
      6);
  auto fetch = request_of<FetchCursorReq>(
      R"({"type":"request","request_id":6,"request":{"type":"fetch_cursor","cursor_id":6,
          "max_count":1000}})",
      6);
  EXPECT_EQ(fetch.cursor_id, 6);
  EXPECT_EQ(fetch.max_count, 1000u);

  auto seq = request_of<SequenceReq>(
      R"({"type":"request","request_id":7,"request":{"type":"sequence","stream_id":1,
          "sql":"BEGIN; COMMIT"}})",
      7);
  EXPECT_EQ(seq.stream_id, 1);
  EXPECT_EQ(seq.sql, "BEGIN; COMMIT");
  EXPECT_FALSE(seq.sql_id);
  auto desc = request_of<DescribeReq>(
      R"({"type":"request","request_id":8,"request":{"type":"describe","stream_id":1,
          "sql_id":3}})",
      8);
  EXPECT_FALSE(desc.sql);
  EXPECT_EQ(desc.sql_id, 3);

  auto store = request_of<StoreSqlReq>(
      R"({"type":"request","request_id":9,"request":{"type":"store_sql","sql_id":3,
          "sql":"SELECT 2"}})",
      9);
  EXPECT_EQ(store.sql_id, 3);
  EXPECT_EQ(store.sql, "SELECT 2");
  EXPECT_EQ(
      request_of<CloseSqlReq>(
          R"({"type":"request","request_id":10,"request":{"type":"close_sql","sql_id":3}})", 10)
          .sql_id,
      3);
  EXPECT_EQ(
      request_of<GetAutocommitReq>(
          R"({"type":"request","request_id":11,"request":{"type":"get_autocommit","stream_id":7}})",
          11)
          .stream_id,
      7);
}

TEST(WsJsonCodecTest, RejectsMalformedMessages) {
  decode_err("");
  decode_err("{");
  decode_err("[]");
  decode_err(R"({"jwt":"x"})");
  decode_err(R"({"type":"helo"})");
  decode_err(R"({"type":"hello","jwt":5})");
  decode_err(R"({"type":"request","request":{"type":"open_stream","stream_id":1}})");
  decode_err(R"({"type":"request","request_id":1})");
  decode_err(R"({"type":"request","request_id":"1","request":{"type":"close_sql","sql_id":1}})");
  decode_err(
      R"({"type":"request","request_id":2147483648,"request":{"type":"close_sql","sql_id":1}})");
  decode_err(R"({"type":"request","request_id":1.5,"request":{"type":"close_sql","sql_id":1}})");
  decode_err(R"({"type":"request","request_id":1,"request":{"type":"launch","stream_id":1}})");
  decode_err(R"({"type":"request","request_id":1,"request":{"type":"open_stream"}})");
  decode_err(R"({"type":"request","request_id":1,"request":{"type":"execute","stream_id":1}})");
  decode_err(R"({"type":"request","request_id":1,"request":{"type":"batch","stream_id":1}})");
  decode_err(R"({"type":"request","request_id":1,"request":{"type":"store_sql","sql_id":1}})");
  decode_err(
      R"({"type":"request","request_id":1,"request":{"type":"fetch_cursor","cursor_id":1}})");
  decode_err(
      R"({"type":"request","request_id":1,"request":{"type":"fetch_cursor","cursor_id":1,
          "max_count":-1}})");
  decode_err(
      R"({"type":"request","request_id":1,"request":{"type":"open_cursor","stream_id":1,
          "batch":{"steps":[]}}})");
}

std::string encode(const ServerMsg& m) { return encode_server_msg(m); }

TEST(WsJsonCodecTest, EncodesHelloMessages) {
  EXPECT_EQ(encode(HelloOkMsg{}), R"({"type":"hello_ok"})");
  EXPECT_EQ(encode(HelloErrorMsg{{"Authentication failed", "AUTH_JWT_INVALID", ""}}),
            R"({"type":"hello_error","error":{"message":"Authentication failed",)"
            R"("code":"AUTH_JWT_INVALID"}})");
}

TEST(WsJsonCodecTest, EncodesResponseError) {
  EXPECT_EQ(encode(ResponseErrorMsg{4, {"no such table: t", "SQLITE_ERROR", "SQLITE_ERROR"}}),
            R"({"type":"response_error","request_id":4,"error":{"message":"no such table: t",)"
            R"("code":"SQLITE_ERROR","extended_code":"SQLITE_ERROR"}})");
}

TEST(WsJsonCodecTest, EncodesEmptyResponses) {
  const std::pair<Response, const char*> cases[] = {
      {OpenStreamResp{}, "open_stream"}, {CloseStreamResp{}, "close_stream"},
      {OpenCursorResp{}, "open_cursor"}, {CloseCursorResp{}, "close_cursor"},
      {SequenceResp{}, "sequence"},      {StoreSqlResp{}, "store_sql"},
      {CloseSqlResp{}, "close_sql"},
  };
  for (const auto& [resp, name] : cases) {
    EXPECT_EQ(encode(ResponseOkMsg{1, resp}),
              std::string(R"({"type":"response_ok","request_id":1,"response":{"type":")") + name +
                  "\"}}");
  }
}

TEST(WsJsonCodecTest, EncodesResultResponses) {
  StmtResult r;
  r.cols = {{"a", "INTEGER"}, {"b", std::nullopt}};
  r.rows = {{std::int64_t{1}, std::string("x")}};
  r.affected_row_count = 2;
  r.last_insert_rowid = -3;
  EXPECT_EQ(encode(ResponseOkMsg{2, ExecuteResp{r}}),
            R"({"type":"response_ok","request_id":2,"response":{"type":"execute","result":)"
            R"({"cols":[{"name":"a","decltype":"INTEGER"},{"name":"b","decltype":null}],)"
            R"("rows":[[{"type":"integer","value":"1"},{"type":"text","value":"x"}]],)"
            R"("affected_row_count":2,"last_insert_rowid":"-3","replication_index":null,)"
            R"("rows_read":0,"rows_written":0,"query_duration_ms":0}}})");

  BatchResult b;
  b.step_results = {StmtResult{}, std::nullopt};
  b.step_errors = {std::nullopt, Error{"boom", "SQLITE_ERROR", ""}};
  EXPECT_EQ(encode(ResponseOkMsg{3, BatchResp{b}}),
            R"({"type":"response_ok","request_id":3,"response":{"type":"batch","result":)"
            R"({"step_results":[{"cols":[],"rows":[],"affected_row_count":0,)"
            R"("last_insert_rowid":null,"replication_index":null,"rows_read":0,"rows_written":0,)"
            R"("query_duration_ms":0},null],"step_errors":[null,)"
            R"({"message":"boom","code":"SQLITE_ERROR"}]}}})");

  DescribeResult d;
  d.params = {{":a"}, {std::nullopt}};
  d.cols = {{"x", "TEXT"}};
  d.is_readonly = true;
  EXPECT_EQ(encode(ResponseOkMsg{4, DescribeResp{d}}),
            R"({"type":"response_ok","request_id":4,"response":{"type":"describe","result":)"
            R"({"params":[{"name":":a"},{"name":null}],"cols":[{"name":"x","decltype":"TEXT"}],)"
            R"("is_explain":false,"is_readonly":true}}})");

  EXPECT_EQ(encode(ResponseOkMsg{5, GetAutocommitResp{true}}),
            R"({"type":"response_ok","request_id":5,"response":{"type":"get_autocommit",)"
            R"("is_autocommit":true}})");
  EXPECT_EQ(encode(ResponseOkMsg{5, GetAutocommitResp{false}}),
            R"({"type":"response_ok","request_id":5,"response":{"type":"get_autocommit",)"
            R"("is_autocommit":false}})");
}

TEST(WsJsonCodecTest, EncodesFetchCursorEntries) {
  FetchCursorResp f;
  f.entries = {StepBeginEntry{0, {{"a", std::nullopt}}},
               RowEntry{{std::monostate{}, 1.5, Blob{0, 1, 255}}}, StepEndEntry{1, 7},
               StepErrorEntry{1, {"bad", "SQLITE_CONSTRAINT", ""}},
               ErrorEntry{{"gone", "SQLITE_BUSY", ""}}};
  f.done = true;
  // Each entry is one cursor line of the HTTP cursor format, without its newline.
  EXPECT_EQ(
      encode(ResponseOkMsg{6, f}),
      R"({"type":"response_ok","request_id":6,"response":{"type":"fetch_cursor","entries":[)"
      R"({"type":"step_begin","step":0,"cols":[{"name":"a","decltype":null}]},)"
      R"({"type":"row","row":[{"type":"null"},{"type":"float","value":1.5},)"
      R"({"type":"blob","base64":"AAH/"}]},)"
      R"({"type":"step_end","affected_row_count":1,"last_insert_rowid":"7"},)"
      R"({"type":"step_error","step":1,"error":{"message":"bad","code":"SQLITE_CONSTRAINT"}},)"
      R"({"type":"error","error":{"message":"gone","code":"SQLITE_BUSY"}}],"done":true}})");
  EXPECT_EQ(encode(ResponseOkMsg{7, FetchCursorResp{}}),
            R"({"type":"response_ok","request_id":7,"response":{"type":"fetch_cursor",)"
            R"("entries":[],"done":false}})");
}

TEST(WsJsonCodecTest, EscapesStringsAndNegativeIds) {
  const std::string out = encode(ResponseErrorMsg{-1, {"a \"quoted\"\n\x01 msg", "C", ""}});
  EXPECT_EQ(out, R"({"type":"response_error","request_id":-1,"error":{"message":)"
                 R"("a \"quoted\"\n\u0001 msg","code":"C"}})");
  // And it is JSON a parser accepts, with the message intact.
  const auto parsed = boost::json::parse(out);
  EXPECT_EQ(parsed.at("error").at("message").as_string(), "a \"quoted\"\n\x01 msg");
  EXPECT_EQ(parsed.at("request_id").as_int64(), -1);
}

TEST(WsJsonCodecTest, MinVersionOfEachRequest) {
  const Request requests[] = {OpenStreamReq{},  CloseStreamReq{}, ExecuteReq{},
                              BatchReq{},       OpenCursorReq{},  CloseCursorReq{},
                              FetchCursorReq{}, SequenceReq{},    DescribeReq{},
                              StoreSqlReq{},    CloseSqlReq{},    GetAutocommitReq{}};
  const int expected[] = {1, 1, 1, 1, 3, 3, 3, 2, 2, 2, 2, 3};
  for (std::size_t i = 0; i < std::size(requests); ++i) {
    EXPECT_EQ(min_version(requests[i]), expected[i]) << kRequestNames[i];
  }
}

}  // namespace
}  // namespace quire::hrana::ws::json
