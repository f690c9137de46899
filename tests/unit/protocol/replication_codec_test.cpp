// Tests for the replication protobuf codec (protocol/replication/codec.h) and bincode values
// (value_codec.h). Golden bytes marked "captured" are request bodies the real npm libsql 0.5.29 /
// @libsql/client 0.18 sent to tests/integration/tools/replication-probe.mjs (gRPC-Web prefix
// removed); the others were worked out by hand from the protobuf encoding rules.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <string_view>

#include "protocol/replication/codec.h"
#include "protocol/replication/grpc_web.h"
#include "protocol/replication/value_codec.h"

namespace quire::replication {
namespace {

std::string unhex(std::string_view h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

std::string hex(std::string_view s) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

// The gRPC-Web bodies the client sent, minus nothing: parsed with the framing code as a router
// would.
std::string captured_message(std::string_view body_hex) {
  const std::string body = unhex(body_hex);
  auto msg = parse_unary_grpc_web_request(body, 1 << 20);
  EXPECT_TRUE(msg) << msg.error().message;
  return msg ? std::string(*msg) : std::string();
}

constexpr std::string_view kClientId = "8f141855-e7bb-4a7d-b31e-07e5abaaf79c";

// ---------------------------------------------------------------- wal_log

TEST(ReplicationLogCodec, DecodesCapturedHelloRequest) {
  auto m = decode_hello_request(captured_message("00000000020801"));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->handshake_version, 1u);
  EXPECT_EQ(encode_hello_request(*m), unhex("0801"));
  auto empty = decode_hello_request("");
  ASSERT_TRUE(empty);
  EXPECT_FALSE(empty->handshake_version);
}

TEST(ReplicationLogCodec, DecodesCapturedLogOffsets) {
  auto first = decode_log_offset(captured_message("0000000000"));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->next_offset, 0u);
  EXPECT_FALSE(first->wal_flavor);
  auto next = decode_log_offset(captured_message("00000000020802"));
  ASSERT_TRUE(next);
  EXPECT_EQ(next->next_offset, 2u);
  LogOffset with_flavor{300, WalFlavor::kLibsql};
  EXPECT_EQ(hex(encode_log_offset(with_flavor)), "08ac021001");
  EXPECT_EQ(decode_log_offset(encode_log_offset(with_flavor)).value(), with_flavor);
}

TEST(ReplicationLogCodec, EncodesTheHelloResponseTheClientAccepted) {
  // The probe's HelloResponse (accepted by libsql 0.5.29), except that our encoder, like
  // protobuf, leaves out generation_start_index = 0.
  HelloResponse h;
  h.generation_id = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
  h.log_id = "b7c1d8a2-3f4e-4a5b-9c6d-7e8f90a1b2c3";
  h.session_token = "5f0e1d2c-3b4a-4958-8776-655443322110";
  h.current_replication_index = 1;
  EXPECT_EQ(hex(encode_hello_response(h)), "0a24" + hex(h.generation_id) + "1a24" + hex(h.log_id) +
                                               "2224" + hex(h.session_token) + "2801");
  auto back = decode_hello_response(encode_hello_response(h));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, h);
  // current_replication_index = 0 is present (frame 0 committed), not the same as unset.
  h.current_replication_index = 0;
  EXPECT_EQ(hex(encode_hello_response(h)).substr(hex(encode_hello_response(h)).size() - 4), "2800");
  EXPECT_EQ(decode_hello_response(encode_hello_response(h)).value(), h);
}

TEST(ReplicationLogCodec, HelloResponseWithConfigRoundTrips) {
  HelloResponse h;
  h.log_id = "b7c1d8a2-3f4e-4a5b-9c6d-7e8f90a1b2c3";
  h.session_token = "x";
  h.generation_start_index = 7;
  DatabaseConfig c;
  c.block_writes = true;
  c.block_reason = "";
  c.max_db_pages = 1000;
  c.txn_timeout_s = 30;
  c.shared_schema = false;
  c.durability_mode = DurabilityMode::kStrong;
  h.config = c;
  auto back = decode_hello_response(encode_hello_response(h));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, h);
  EXPECT_EQ(hex(encode_database_config(DatabaseConfig{})), "");
  EXPECT_EQ(decode_database_config(encode_database_config(c)).value(), c);
}

TEST(ReplicationLogCodec, FramesRoundTripAndMatchHandBytes) {
  Frame small{"ab", std::nullopt, std::nullopt};
  EXPECT_EQ(hex(encode_frame(small)), "0a026162");
  Frames fs{{small, Frame{"c", -1, 5}}};
  // -1 as int64 is a 10-byte varint, so the second element is 16 bytes long.
  EXPECT_EQ(hex(encode_frames(fs)),
            "0a040a026162"
            "0a100a016310ffffffffffffffffff011805");
  auto back = decode_frames(encode_frames(fs));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, fs);
  Frame big{std::string(4120, 'x'), 1700000000000, std::nullopt};
  Frames many{{big, big}};
  EXPECT_EQ(decode_frames(encode_frames(many)).value(), many);
  EXPECT_EQ(decode_frame(encode_frame(big)).value(), big);
  EXPECT_TRUE(decode_frames("").value().frames.empty());
}

TEST(ReplicationLogCodec, SkipsUnknownFieldsOfEveryWireType) {
  // field 9 varint, field 10 fixed64, field 11 bytes, field 12 fixed32, then next_offset=2.
  const std::string bytes = unhex(
      "4801"
      "510102030405060708"
      "5a03616263"
      "6501020304"
      "0802");
  auto m = decode_log_offset(bytes);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->next_offset, 2u);
}

TEST(ReplicationLogCodec, LastScalarWins) {
  EXPECT_EQ(decode_log_offset(unhex("08010805")).value().next_offset, 5u);
}

TEST(ReplicationLogCodec, RejectsMalformedInput) {
  struct Case {
    std::string_view hex;
    std::string_view want;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"08", "truncated varint"},
           {"0880808080808080808080", "varint"},
           {"0a", "LogOffset"},        // field 1 with the wrong wire type (bytes)
           {"0a05616263", "exceeds"},  // length past the end
           {"00", "field number"},     // field 0
           {"0b", "group"},            // start group
       }) {
    auto m = decode_log_offset(unhex(c.hex));
    ASSERT_FALSE(m) << c.hex;
    EXPECT_NE(m.error().message.find(c.want), std::string::npos)
        << c.hex << ": " << m.error().message;
  }
  auto wrong_type = decode_hello_response(unhex("1801"));  // log_id as a varint
  ASSERT_FALSE(wrong_type);
  EXPECT_NE(wrong_type.error().message.find("HelloResponse.log_id"), std::string::npos);
  EXPECT_FALSE(decode_hello_response(unhex("1a02c328")));  // log_id not UTF-8
  // session_token is bytes: no UTF-8 check at this layer.
  EXPECT_TRUE(decode_hello_response(unhex("2202c328")));
  EXPECT_FALSE(
      decode_frames(unhex("0a03"
                          "0a05")));  // nested Frame truncated
}

TEST(ReplicationLogCodec, EveryPrefixOfAValidMessageIsHandled) {
  HelloResponse h;
  h.generation_id = "g";
  h.log_id = "b7c1d8a2-3f4e-4a5b-9c6d-7e8f90a1b2c3";
  h.session_token = "s";
  h.current_replication_index = 123456789;
  h.config = DatabaseConfig{};
  h.config->heartbeat_url = "http://x";
  const std::string full = encode_hello_response(h);
  for (std::size_t n = 0; n < full.size(); ++n) {
    (void)decode_hello_response(std::string_view(full).substr(0, n));  // must not crash
  }
}

// ---------------------------------------------------------------- proxy

TEST(ReplicationProxyCodec, AProgramDecodesIntoNoMoreItemsThanTheLimit) {
  ProgramReq req;
  req.client_id = "c";
  for (int i = 0; i < 10; ++i) {
    Step s;
    s.query.stmt = "SELECT ?";
    s.query.params = Positional{{Value{std::int64_t{i}}}};
    req.pgm.steps.push_back(std::move(s));
  }
  const std::string wire = encode_program_req(req);  // 10 steps + 10 arguments
  auto ok = decode_program_req(wire, 20);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(*ok, req);
  auto refused = decode_program_req(wire, 19);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("more than 19 steps, arguments and conditions"),
            std::string::npos)
      << refused.error().message;
}

TEST(ReplicationProxyCodec, DecodesCapturedExecuteWithoutParams) {
  // db.exec("INSERT INTO t(v) VALUES ('c')"): an empty Positional is present.
  auto m = decode_program_req(captured_message(
      "000000004f0a2438663134313835352d653762622d346137642d623331652d303765356162616166373963122"
      "70a2512230a1f494e5345525420494e544f2074202876292056414c5545532028276327293b1200"));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->client_id, kClientId);
  ASSERT_EQ(m->pgm.steps.size(), 1u);
  const Step& s = m->pgm.steps[0];
  EXPECT_FALSE(s.cond);
  EXPECT_EQ(s.query.stmt, "INSERT INTO t (v) VALUES ('c');");
  ASSERT_TRUE(std::holds_alternative<Positional>(s.query.params));
  EXPECT_TRUE(std::get<Positional>(s.query.params).values.empty());
  EXPECT_FALSE(s.query.skip_rows);
  // Our encoder reproduces the client's bytes exactly.
  EXPECT_EQ(hex(encode_program_req(*m)),
            "0a2438663134313835352d653762622d346137642d623331652d3037653561626161663739631227"
            "0a2512230a1f494e5345525420494e544f2074202876292056414c5545532028276327293b1200");
}

TEST(ReplicationProxyCodec, DecodesCapturedPositionalParameter) {
  // db.prepare("INSERT INTO t(v) VALUES (?)").run("d")
  auto m = decode_program_req(captured_message(
      "000000005e0a2438663134313835352d653762622d346137642d623331652d303765356162616166373963123"
      "60a3412320a1d494e5345525420494e544f2074202876292056414c55455320283f293b12110a0f0a0d0300"
      "0000010000000000000064"));
  ASSERT_TRUE(m) << m.error().message;
  const Query& q = m->pgm.steps.at(0).query;
  EXPECT_EQ(q.stmt, "INSERT INTO t (v) VALUES (?);");
  ASSERT_TRUE(std::holds_alternative<Positional>(q.params));
  ASSERT_EQ(std::get<Positional>(q.params).values.size(), 1u);
  EXPECT_EQ(std::get<Positional>(q.params).values[0], Value{std::string("d")});
}

TEST(ReplicationProxyCodec, DecodesCapturedNamedParameter) {
  // db.prepare("INSERT INTO t(v) VALUES (:v)").run({v: "e"}): the name keeps its sigil.
  auto m = decode_program_req(captured_message(
      "00000000630a2436346539323135302d623333342d343862612d613233362d65626135313935303833353012"
      "3b0a3912370a1e494e5345525420494e544f2074202876292056414c55455320283a76293b1a150a023a7612"
      "0f0a0d03000000010000000000000065"));
  ASSERT_TRUE(m) << m.error().message;
  const Query& q = m->pgm.steps.at(0).query;
  ASSERT_TRUE(std::holds_alternative<Named>(q.params));
  const Named& n = std::get<Named>(q.params);
  ASSERT_EQ(n.names, std::vector<std::string>{":v"});
  ASSERT_EQ(n.values.size(), 1u);
  EXPECT_EQ(n.values[0], Value{std::string("e")});
}

TEST(ReplicationProxyCodec, DecodesCapturedDescribeRequest) {
  auto m = decode_describe_request(captured_message(
      "00000000450a2438663134313835352d653762622d346137642d623331652d30376535616261616637396312"
      "1d494e5345525420494e544f2074202876292056414c55455320283f293b"));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->client_id, kClientId);
  EXPECT_EQ(m->stmt, "INSERT INTO t (v) VALUES (?);");
  EXPECT_EQ(decode_describe_request(encode_describe_request(*m)).value(), *m);
}

TEST(ReplicationProxyCodec, ProgramWithConditionsRoundTrips) {
  ProgramReq req;
  req.client_id = "c";
  Step s1;
  s1.query.stmt = "BEGIN";
  Step s2;
  s2.query.stmt = "INSERT INTO t VALUES (?, ?, ?, ?, ?)";
  s2.query.params = Positional{{Value{}, Value{std::int64_t{-5}}, Value{2.5},
                                Value{std::string("\xc3\xa9")}, Value{Blob{0, 1, 255}}}};
  s2.query.skip_rows = true;
  Cond ok_cond{Cond::Kind::kOk, 0, {}};
  Cond not_auto{Cond::Kind::kNot, 0, {Cond{Cond::Kind::kIsAutocommit, 0, {}}}};
  s2.cond = Cond{Cond::Kind::kAnd, 0, {ok_cond, not_auto}};
  Step s3;
  s3.query.stmt = "ROLLBACK";
  s3.query.params = Named{{":a", "@b"}, {Value{std::int64_t{1}}, Value{}}};
  s3.cond =
      Cond{Cond::Kind::kOr, 0, {Cond{Cond::Kind::kErr, 1, {}}, Cond{Cond::Kind::kNot, 0, {}}}};
  req.pgm.steps = {s1, s2, s3};
  auto back = decode_program_req(encode_program_req(req));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, req);
}

TEST(ReplicationProxyCodec, RejectsConditionsNestedTooDeep) {
  Cond c{Cond::Kind::kIsAutocommit, 0, {}};
  for (int i = 0; i < kMaxCondDepth + 5; ++i) c = Cond{Cond::Kind::kNot, 0, {c}};
  ProgramReq req;
  Step s;
  s.cond = c;
  req.pgm.steps.push_back(s);
  auto r = decode_program_req(encode_program_req(req));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("nested deeper"), std::string::npos);
}

TEST(ReplicationProxyCodec, RejectsBadValues) {
  // Positional value whose bincode is an unknown variant 9.
  ProgramReq req;
  Step s;
  s.query.params = Positional{{Value{std::int64_t{1}}}};
  req.pgm.steps.push_back(s);
  std::string bytes = encode_program_req(req);
  const std::string good = encode_bincode_value(Value{std::int64_t{1}});
  const auto at = bytes.find(good);
  ASSERT_NE(at, std::string::npos);
  bytes[at] = 9;
  auto r = decode_program_req(bytes);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("Positional.values"), std::string::npos) << r.error().message;
  // A Value message without data is not a value:
  // ProgramReq{pgm{steps{query{positional{values{}}}}}}
  EXPECT_FALSE(
      decode_program_req(unhex("1208"
                               "0a06"
                               "1204"
                               "1202"
                               "0a00")));
}

TEST(ReplicationProxyCodec, EncodesExecuteResultsTheClientAccepted) {
  // 1 row changed, last_insert_rowid 3, state INIT, current_frame_no 1 (the probe also wrote
  // state=0 explicitly: 1000; protobuf leaves it out).
  ExecuteResults r;
  r.results.push_back(QueryResult{ResultRows{{}, {}, 1, 3}});
  r.current_frame_no = 1;
  EXPECT_EQ(hex(encode_execute_results(r)),
            "0a06120418012003"
            "1801");
  r.state = TxnState::kTxn;
  EXPECT_EQ(hex(encode_execute_results(r)),
            "0a06120418012003"
            "1002"
            "1801");
  EXPECT_EQ(decode_execute_results(unhex("0a0612041801200310001801")).value().results.size(), 1u);
}

TEST(ReplicationProxyCodec, ExecuteResultsWithRowsAndErrorsRoundTrip) {
  ExecuteResults r;
  ResultRows rows;
  rows.column_descriptions = {Column{"x", std::nullopt}, Column{"y", "TEXT"}};
  rows.rows = {Row{{Value{std::int64_t{42}}, Value{std::string("a")}}},
               Row{{Value{}, Value{Blob{}}}}};
  rows.last_insert_rowid = -1;
  r.results.push_back(QueryResult{rows});
  r.results.push_back(QueryResult{ProxyError{ErrorCode::kSqlError, "no such table: nope", 1}});
  r.results.push_back(QueryResult{ProxyError{ErrorCode::kTxTimeout, "", -2}});
  r.results.push_back(QueryResult{});  // neither member set
  r.state = TxnState::kInvalid;
  auto back = decode_execute_results(encode_execute_results(r));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, r);
  // The probe's QueryResult{error{SQL_ERROR, "no such table: nope", 1}}, accepted by the client
  // as RemoteSqliteFailure(0, 1, "no such table: nope").
  auto probe = decode_execute_results(
      unhex("0a1b0a19080012136e6f2073756368207461626c653a206e6f706518011000"));
  ASSERT_TRUE(probe) << probe.error().message;
  ASSERT_EQ(probe->results.size(), 1u);
  const auto& err = std::get<ProxyError>(probe->results[0].result);
  EXPECT_EQ(err.message, "no such table: nope");
  EXPECT_EQ(err.extended_code, 1);
}

TEST(ReplicationProxyCodec, KeepsUnknownEnumValues) {
  auto r = decode_execute_results(unhex("1007"));
  ASSERT_TRUE(r);
  EXPECT_EQ(static_cast<int>(r->state), 7);
  auto neg = decode_execute_results(unhex("0a0d0a0b08ffffffffffffffffff01"));
  ASSERT_TRUE(neg) << neg.error().message;
  EXPECT_EQ(static_cast<int>(std::get<ProxyError>(neg->results[0].result).code), -1);
}

TEST(ReplicationProxyCodec, DescribeResultMatchesWhatTheClientCanUse) {
  // ":v" alone: the probe's answer the client accepted (placeholder, then ":v"; count 1).
  DescribeResult d{Description{{}, client_param_names({":v"}), 1}};
  EXPECT_EQ(hex(encode_describe_result(d)),
            "1208"
            "1200"
            "12023a76"
            "1801");
  EXPECT_EQ(decode_describe_result(encode_describe_result(d)).value(), d);
  DescribeResult e{ProxyError{ErrorCode::kSqlError, "near \"x\": syntax error", 1}};
  EXPECT_EQ(decode_describe_result(encode_describe_result(e)).value(), e);
  EXPECT_EQ(client_param_names({std::nullopt, "@b"}), (std::vector<std::string>{"", "", "@b"}));
}

TEST(ReplicationProxyCodec, DisconnectAndAck) {
  DisconnectMessage m{std::string(kClientId)};
  EXPECT_EQ(decode_disconnect_message(encode_disconnect_message(m)).value(), m);
  EXPECT_EQ(encode_ack(Ack{}), "");
  EXPECT_TRUE(decode_ack(unhex("0801")));  // unknown field: skipped
  EXPECT_FALSE(decode_ack(unhex("08")));
}

TEST(ReplicationProxyCodec, EveryPrefixOfAProgramIsHandled) {
  auto full = captured_message(
      "00000000630a2436346539323135302d623333342d343862612d613233362d65626135313935303833353012"
      "3b0a3912370a1e494e5345525420494e544f2074202876292056414c55455320283a76293b1a150a023a7612"
      "0f0a0d03000000010000000000000065");
  for (std::size_t n = 0; n < full.size(); ++n) {
    (void)decode_program_req(std::string_view(full).substr(0, n));
  }
  // Flipping each byte must not crash either.
  for (std::size_t i = 0; i < full.size(); ++i) {
    std::string copy = full;
    copy[i] = static_cast<char>(copy[i] ^ 0xFF);
    (void)decode_program_req(copy);
  }
}

// ---------------------------------------------------------------- bincode

TEST(ReplicationBincode, MatchesCapturedAndHandBytes) {
  EXPECT_EQ(hex(encode_bincode_value(Value{std::string("d")})),
            "030000000100000000000000"
            "64");
  EXPECT_EQ(hex(encode_bincode_value(Value{})), "00000000");
  EXPECT_EQ(hex(encode_bincode_value(Value{std::int64_t{42}})),
            "01000000"
            "2a00000000000000");
  EXPECT_EQ(hex(encode_bincode_value(Value{std::int64_t{-1}})),
            "01000000"
            "ffffffffffffffff");
  EXPECT_EQ(hex(encode_bincode_value(Value{1.0})),
            "02000000"
            "000000000000f03f");
  EXPECT_EQ(hex(encode_bincode_value(Value{Blob{0xde, 0xad}})),
            "04000000"
            "0200000000000000"
            "dead");
}

TEST(ReplicationBincode, RoundTrips) {
  for (const Value& v : {Value{}, Value{std::numeric_limits<std::int64_t>::min()}, Value{-0.0},
                         Value{std::numeric_limits<double>::infinity()}, Value{std::string()},
                         Value{std::string("h\xc3\xa9llo")}, Value{Blob{}}, Value{Blob(1000, 7)}}) {
    auto back = decode_bincode_value(encode_bincode_value(v));
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(*back, v);
  }
  auto nan = decode_bincode_value(encode_bincode_value(Value{std::nan("")}));
  ASSERT_TRUE(nan);
  EXPECT_TRUE(std::isnan(std::get<double>(*nan)));
}

TEST(ReplicationBincode, RejectsMalformedValues) {
  for (std::string_view h : {"", "000000", "0000000000",  // short tag; trailing byte
                             "05000000",                  // unknown variant
                             "01000000"
                             "2a000000000000",  // short integer
                             "03000000"
                             "0200000000000000"
                             "61",  // text shorter than its length
                             "03000000"
                             "01000000000000",  // short length
                             "04000000"
                             "ffffffffffffffff",  // huge length
                             "03000000"
                             "0100000000000000"
                             "ff"}) {  // text not UTF-8
    EXPECT_FALSE(decode_bincode_value(unhex(h))) << h;
  }
}

}  // namespace
}  // namespace quire::replication
