#include <gtest/gtest.h>

#include "protocol/hrana/codec.h"

namespace quire::hrana {
namespace {

PipelineRequest decode_ok(std::string_view body) {
  auto r = json::decode_pipeline_request(body);
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  return r ? std::move(r.value()) : PipelineRequest{};
}

std::string decode_err(std::string_view body) {
  auto r = json::decode_pipeline_request(body);
  EXPECT_FALSE(r) << body;
  return r ? std::string() : r.error().message;
}

TEST(JsonCodec, AMessageDecodesIntoNoMoreItemsThanTheLimit) {
  auto pipeline = [](int steps, int args) {
    std::string s = R"({"requests":[{"type":"batch","batch":{"steps":[)";
    for (int i = 0; i < steps; ++i) {
      s += i ? "," : "";
      s += R"({"stmt":{"sql":"SELECT ?","args":[)";
      for (int a = 0; a < args; ++a) s += a ? R"(,{"type":"null"})" : R"({"type":"null"})";
      s += "]}}";
    }
    return s + "]}}]}";
  };
  // 1 request + 3 steps + 3 × 2 arguments = 10 items.
  EXPECT_TRUE(json::decode_pipeline_request(pipeline(3, 2), 10));
  auto r = json::decode_pipeline_request(pipeline(3, 2), 9);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("more than 9 requests, steps, arguments and conditions"),
            std::string::npos)
      << r.error().message;
  EXPECT_FALSE(json::decode_pipeline_request(pipeline(20, 0), 20));
  EXPECT_TRUE(json::decode_pipeline_request(pipeline(19, 0), 20));
}

TEST(JsonCodec, DecodesWhatTheLibsqlClientSendsForExecute) {
  auto req = decode_ok(R"({"requests":[{"type":"execute","stmt":{"sql":"SELECT ?, :n","args":[],
      "named_args":[{"name":"n","value":{"type":"float","value":1}}],"want_rows":true}},
      {"type":"close"}]})");
  EXPECT_FALSE(req.baton);
  ASSERT_EQ(req.requests.size(), 2u);
  const auto& ex = std::get<ExecuteReq>(req.requests[0]);
  EXPECT_EQ(ex.stmt.sql, "SELECT ?, :n");
  ASSERT_EQ(ex.stmt.named_args.size(), 1u);
  EXPECT_EQ(ex.stmt.named_args[0].name, "n");
  EXPECT_EQ(std::get<double>(ex.stmt.named_args[0].value), 1.0);
  EXPECT_TRUE(std::holds_alternative<CloseReq>(req.requests[1]));
}

TEST(JsonCodec, DecodesEveryValueType) {
  auto req = decode_ok(R"({"baton":"b","requests":[{"type":"execute","stmt":{"sql":"x","args":[
      {"type":"null"},{"type":"integer","value":"-9223372036854775808"},
      {"type":"float","value":2.5},{"type":"text","value":"h\u00e9"},
      {"type":"blob","base64":"AAH/"},{"type":"blob","base64":"AAH/AA=="}]}}]})");
  EXPECT_EQ(req.baton, "b");
  const auto& args = std::get<ExecuteReq>(req.requests[0]).stmt.args;
  ASSERT_EQ(args.size(), 6u);
  EXPECT_TRUE(is_null(args[0]));
  EXPECT_EQ(std::get<std::int64_t>(args[1]), INT64_MIN);
  EXPECT_EQ(std::get<double>(args[2]), 2.5);
  EXPECT_EQ(std::get<std::string>(args[3]), "h\xc3\xa9");
  EXPECT_EQ(std::get<Blob>(args[4]), (Blob{0, 1, 255}));
  EXPECT_EQ(std::get<Blob>(args[5]), (Blob{0, 1, 255, 0}));
}

TEST(JsonCodec, DecodesBatchConditionsOfEveryKind) {
  auto req = decode_ok(R"({"requests":[{"type":"batch","batch":{"steps":[
      {"stmt":{"sql":"a"}},
      {"condition":{"type":"ok","step":0},"stmt":{"sql":"b"}},
      {"condition":{"type":"not","cond":{"type":"error","step":1}},"stmt":{"sql":"c"}},
      {"condition":{"type":"and","conds":[{"type":"ok","step":0},{"type":"or","conds":[]}]},
       "stmt":{"sql":"d"}},
      {"condition":{"type":"is_autocommit"},"stmt":{"sql_id":7}}]}}]})");
  const auto& steps = std::get<BatchReq>(req.requests[0]).batch.steps;
  ASSERT_EQ(steps.size(), 5u);
  EXPECT_FALSE(steps[0].condition);
  EXPECT_EQ(steps[1].condition->kind, BatchCond::Kind::kOk);
  EXPECT_EQ(steps[2].condition->kind, BatchCond::Kind::kNot);
  EXPECT_EQ(steps[2].condition->conds[0].kind, BatchCond::Kind::kError);
  EXPECT_EQ(steps[2].condition->conds[0].step, 1u);
  EXPECT_EQ(steps[3].condition->conds[1].kind, BatchCond::Kind::kOr);
  EXPECT_EQ(steps[4].stmt.sql_id, 7);
  EXPECT_TRUE(validate(req.requests[0], Version::kV3));
  // is_autocommit is a version 3 condition.
  EXPECT_FALSE(validate(req.requests[0], Version::kV2));
}

TEST(JsonCodec, MalformedInputIsAProtocolErrorThatSaysWhy) {
  EXPECT_NE(decode_err("{").find("Invalid JSON"), std::string::npos);
  EXPECT_NE(decode_err("[]").find("object"), std::string::npos);
  EXPECT_NE(decode_err(R"({"requests":5})").find("requests"), std::string::npos);
  EXPECT_NE(decode_err(R"({"requests":[{"type":"nope"}]})").find("unknown request type"),
            std::string::npos);
  EXPECT_NE(decode_err(R"({"requests":[{"type":"execute"}]})").find("stmt"), std::string::npos);
  decode_err(R"({"requests":[{"type":"execute","stmt":{"sql":"x","args":[{"type":"integer","value":"12x"}]}}]})");
  decode_err(R"({"requests":[{"type":"execute","stmt":{"sql":"x","args":[{"type":"integer","value":"99999999999999999999"}]}}]})");
  decode_err(R"({"requests":[{"type":"execute","stmt":{"sql":"x","args":[{"type":"weird"}]}}]})");
  decode_err(R"({"requests":[{"type":"execute","stmt":{"sql":"x","args":[{"type":"blob","base64":"!!"}]}}]})");
  decode_err(R"({"requests":[{"type":"execute","stmt":{"sql":5}}]})");
  decode_err(R"({"requests":[{"type":"store_sql","sql_id":1}]})");
  decode_err(R"({"baton":7,"requests":[]})");
}

TEST(JsonCodec, DeeplyNestedConditionsAreRefusedNotRecursedForever) {
  std::string cond = R"({"type":"ok","step":0})";
  for (int i = 0; i < 100; ++i) cond = R"({"type":"not","cond":)" + cond + "}";
  std::string body = R"({"requests":[{"type":"batch","batch":{"steps":[{"stmt":{"sql":"a"}},)"
                     R"({"condition":)" + cond + R"(,"stmt":{"sql":"b"}}]}}]})";
  decode_err(body);
}

TEST(JsonCodec, ValidateRefusesConditionsOnLaterStepsAndAmbiguousSql) {
  auto req = decode_ok(R"({"requests":[{"type":"batch","batch":{"steps":[
      {"condition":{"type":"ok","step":0},"stmt":{"sql":"a"}}]}}]})");
  EXPECT_FALSE(validate(req.requests[0], Version::kV3));
  auto both = decode_ok(R"({"requests":[{"type":"execute","stmt":{"sql":"a","sql_id":1}}]})");
  EXPECT_FALSE(validate(both.requests[0], Version::kV3));
  auto neither = decode_ok(R"({"requests":[{"type":"execute","stmt":{}}]})");
  EXPECT_FALSE(validate(neither.requests[0], Version::kV3));
  auto getac = decode_ok(R"({"requests":[{"type":"get_autocommit"}]})");
  EXPECT_FALSE(validate(getac.requests[0], Version::kV2));
  EXPECT_TRUE(validate(getac.requests[0], Version::kV3));
}

TEST(JsonCodec, EncodesResultsAsTheClientsCheckThem) {
  PipelineResponse resp;
  resp.baton = "abc";
  StmtResult r;
  r.cols = {{"id", "INTEGER"}, {"x", std::nullopt}};
  r.rows = {{std::int64_t{9007199254740993}, std::monostate{}},
            {std::int64_t{-1}, Blob{0xff}},
            {1.5, std::string("a\"b\n\x01")}};
  r.affected_row_count = 1;
  r.last_insert_rowid = 9007199254740993;
  resp.results.emplace_back(StreamResponse(ExecuteResp{r}));
  resp.results.emplace_back(Error{"boom", "SQLITE_CONSTRAINT", "SQLITE_CONSTRAINT_UNIQUE"});
  resp.results.emplace_back(StreamResponse(CloseResp{}));
  std::string out = json::encode_pipeline_response(resp);
  EXPECT_NE(out.find(R"("baton":"abc","base_url":null)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"({"type":"integer","value":"9007199254740993"})"), std::string::npos);
  EXPECT_NE(out.find(R"({"type":"null"})"), std::string::npos);
  EXPECT_NE(out.find(R"({"type":"blob","base64":"/w"})"), std::string::npos);
  EXPECT_NE(out.find(R"({"type":"float","value":1.5})"), std::string::npos);
  EXPECT_NE(out.find(R"("value":"a\"b\n\u0001")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("affected_row_count":1,"last_insert_rowid":"9007199254740993")"),
            std::string::npos);
  EXPECT_NE(out.find(R"({"name":"x","decltype":null})"), std::string::npos);
  EXPECT_NE(out.find(R"({"type":"error","error":{"message":"boom","code":"SQLITE_CONSTRAINT",)"
                     R"("extended_code":"SQLITE_CONSTRAINT_UNIQUE"}})"),
            std::string::npos);
  EXPECT_NE(out.find(R"({"type":"ok","response":{"type":"close"}})"), std::string::npos);
  // The output is valid JSON.
  EXPECT_TRUE(json::decode_pipeline_request(R"({"requests":[]})"));
}

TEST(JsonCodec, EncodesSkippedBatchStepsAsNulls) {
  PipelineResponse resp;
  BatchResult br;
  br.step_results = {StmtResult{}, std::nullopt};
  br.step_errors = {std::nullopt, std::nullopt};
  resp.results.emplace_back(StreamResponse(BatchResp{br}));
  std::string out = json::encode_pipeline_response(resp);
  EXPECT_NE(out.find(R"("step_errors":[null,null])"), std::string::npos) << out;
  EXPECT_NE(out.find(R"(,null],"step_errors")"), std::string::npos) << out;
}

TEST(JsonCodec, CursorEntriesAreOneJsonObjectPerLine) {
  std::string out;
  json::append_cursor_head({std::string("b1"), std::nullopt}, out);
  json::append_cursor_entry(StepBeginEntry{0, {{"a", std::nullopt}}}, out);
  json::append_cursor_entry(RowEntry{{std::int64_t{1}}}, out);
  json::append_cursor_entry(StepEndEntry{0, std::nullopt}, out);
  json::append_cursor_entry(StepErrorEntry{1, Error{"bad", "SQLITE_ERROR", {}}}, out);
  EXPECT_EQ(out,
            "{\"baton\":\"b1\",\"base_url\":null}\n"
            "{\"type\":\"step_begin\",\"step\":0,\"cols\":[{\"name\":\"a\",\"decltype\":null}]}\n"
            "{\"type\":\"row\",\"row\":[{\"type\":\"integer\",\"value\":\"1\"}]}\n"
            "{\"type\":\"step_end\",\"affected_row_count\":0,\"last_insert_rowid\":null}\n"
            "{\"type\":\"step_error\",\"step\":1,\"error\":{\"message\":\"bad\",\"code\":\"SQLITE_ERROR\"}}\n");
}

}  // namespace
}  // namespace quire::hrana

namespace quire::hrana {
namespace {

TEST(JsonCodec, MoreArgumentsThanSqliteCanBindAreRefusedWhileDecoding) {
  auto body = [](int n) {
    std::string b = R"({"requests":[{"type":"execute","stmt":{"sql":"x","args":[)";
    for (int i = 0; i < n; ++i) b += i ? R"(,{"type":"null"})" : R"({"type":"null"})";
    return b + "]}}]}";
  };
  EXPECT_TRUE(json::decode_pipeline_request(body(32766)));
  auto r = json::decode_pipeline_request(body(32767));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("more arguments"), std::string::npos);
}

}  // namespace
}  // namespace quire::hrana
