#include "auth/jwt.h"

#include <gtest/gtest.h>
#include <openssl/hmac.h>

#include "auth/base64url.h"

namespace quire::auth {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

const system_clock::time_point kNow{seconds(1'800'000'000)};
constexpr std::int64_t kNowS = 1'800'000'000;

std::string b64(std::string_view s) { return base64url::encode(s); }

// A token with exactly this header and payload text, signed by `key`.
std::string sign_raw(const SigningKey& key, std::string_view header, std::string_view payload) {
  std::string input = b64(header) + "." + b64(payload);
  auto sig = key.sign(input);
  EXPECT_TRUE(sig) << sig.error();
  return input + "." + b64(sig ? *sig : std::string());
}

constexpr std::string_view kHeader = R"({"alg":"EdDSA","typ":"JWT"})";

class JwtVerify : public ::testing::Test {
 protected:
  JwtVerify()
      : key_(SigningKey::generate().value()), keys_(KeySet::parse(key_.public_key_pem()).value()) {}

  std::string mint(std::string_view payload) { return sign_raw(key_, kHeader, payload); }
  std::string mint(const Claims& claims) { return create_jwt(key_, claims).value(); }

  Expected<VerifiedToken, AuthError> verify(std::string_view token, VerifyOptions options = {}) {
    return verify_jwt(token, keys_, kNow, options);
  }

  // Expects failure of `kind`, with the wire code `code`.
  void expect_error(std::string_view token, AuthError::Kind kind, std::string_view code,
                    VerifyOptions options = {}) {
    auto r = verify(token, options);
    ASSERT_FALSE(r) << token;
    EXPECT_EQ(r.error().kind, kind) << r.error().message;
    EXPECT_EQ(r.error().code(), code);
    EXPECT_EQ(r.error().http_status(), 401);
  }
  void expect_invalid(std::string_view token, AuthError::Kind kind) {
    expect_error(token, kind, "AUTH_JWT_INVALID");
  }

  SigningKey key_;
  KeySet keys_;
};

// --- what valid tokens grant ---------------------------------------------------------------

TEST_F(JwtVerify, ReadWriteTokenGrantsWriteOnEveryNamespace) {
  auto r = verify(mint(R"({"a":"rw"})"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->claims.a, Access::kReadWrite);
  EXPECT_EQ(r->authorization.level_for("default"), Authorization::kReadWrite);
  EXPECT_EQ(r->authorization.level_for("other"), Authorization::kReadWrite);
  EXPECT_FALSE(r->authorization.can_attach("other"));
}

TEST_F(JwtVerify, ReadOnlyTokenGrantsReadOnly) {
  auto r = verify(mint(R"({"a":"ro"})"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->authorization.level_for("default"), Authorization::kReadOnly);
  EXPECT_TRUE(r->authorization.can_read("default"));
  EXPECT_FALSE(r->authorization.can_write("default"));
}

TEST_F(JwtVerify, ReadOnlyAttachTokenAllowsAttach) {
  auto r = verify(mint(R"({"a":"roa"})"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->authorization.level_for("x"), Authorization::kReadOnlyAttach);
  EXPECT_TRUE(r->authorization.can_attach("x"));
  EXPECT_FALSE(r->authorization.can_write("x"));
}

TEST_F(JwtVerify, TokenWithoutClaimsGrantsReadWriteEverywhere) {
  auto r = verify(mint("{}"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->authorization.level_for("anything"), Authorization::kReadWrite);
  EXPECT_FALSE(r->authorization.is_full_access());
}

TEST_F(JwtVerify, NullClaimsCountAsAbsent) {
  auto r = verify(mint(R"({"a":null,"id":null,"p":null,"exp":null,"nbf":null})"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->authorization.level_for("x"), Authorization::kReadWrite);
}

TEST_F(JwtVerify, UnknownClaimsAreIgnored) {
  auto r = verify(mint(R"({"a":"ro","iat":1,"sub":"me","rid":"x"})"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->authorization.level_for("x"), Authorization::kReadOnly);
}

TEST_F(JwtVerify, IdLimitsTheTokenToOneNamespace) {
  auto r = verify(mint(R"({"a":"ro","id":"tenant1"})"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->authorization.level_for("tenant1"), Authorization::kReadOnly);
  EXPECT_EQ(r->authorization.level_for("tenant2"), Authorization::kNone);
  EXPECT_EQ(r->authorization.level_for("default"), Authorization::kNone);
}

TEST_F(JwtVerify, IdWithoutAccessLevelGrantsReadWriteThere) {
  auto r = verify(mint(R"({"id":"tenant1"})"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->authorization.level_for("tenant1"), Authorization::kReadWrite);
  EXPECT_EQ(r->authorization.level_for("tenant2"), Authorization::kNone);
}

TEST_F(JwtVerify, IdMayListSeveralNamespaces) {
  auto r = verify(mint(R"({"a":"rw","id":["a","b"]})"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->authorization.level_for("a"), Authorization::kReadWrite);
  EXPECT_EQ(r->authorization.level_for("b"), Authorization::kReadWrite);
  EXPECT_EQ(r->authorization.level_for("c"), Authorization::kNone);
}

TEST_F(JwtVerify, PermissionMapGrantsPerNamespace) {
  auto r = verify(mint(R"({"p":{"ro":{"ns":["r"]},"rw":{"ns":["w"]},"roa":{"ns":["ra"]},)"
                       R"("rwa":{"ns":["wa"]},"ddl":{"ns":["d"]}}})"));
  ASSERT_TRUE(r) << r.error().message;
  const Authorization& a = r->authorization;
  EXPECT_EQ(a.level_for("r"), Authorization::kReadOnly);
  EXPECT_EQ(a.level_for("w"), Authorization::kReadWrite);
  EXPECT_EQ(a.level_for("ra"), Authorization::kReadOnlyAttach);
  EXPECT_EQ(a.level_for("wa"), Authorization::kReadWriteAttach);
  EXPECT_EQ(a.level_for("d"), Authorization::kReadWrite);
  EXPECT_TRUE(a.can_ddl_on_shared_schema("d"));
  EXPECT_FALSE(a.can_ddl_on_shared_schema("w"));
  EXPECT_EQ(a.level_for("unlisted"), Authorization::kNone);
}

TEST_F(JwtVerify, PermissionMapOverridesAccessAndId) {
  auto r = verify(mint(R"({"a":"rw","id":"foo","p":{"ro":{"ns":["bar"]}}})"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->authorization.level_for("foo"), Authorization::kNone);
  EXPECT_EQ(r->authorization.level_for("bar"), Authorization::kReadOnly);
}

TEST_F(JwtVerify, EmptyPermissionMapGrantsNothing) {
  auto r = verify(mint(R"({"p":{}})"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->authorization.level_for("default"), Authorization::kNone);
}

TEST_F(JwtVerify, WildcardIsAnOrdinaryName) {
  auto r = verify(mint(R"({"p":{"rw":{"ns":["*"]}}})"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->authorization.level_for("default"), Authorization::kNone);
}

TEST_F(JwtVerify, TagsAloneGrantNothing) {
  auto r = verify(mint(R"({"p":{"rw":{"tags":["group1"]}}})"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->authorization.level_for("default"), Authorization::kNone);
}

TEST_F(JwtVerify, HeaderWithoutTypAndWithKidIsAccepted) {
  auto r = verify(sign_raw(key_, R"({"alg":"EdDSA","kid":"k1"})", "{}"));
  EXPECT_TRUE(r) << r.error().message;
}

// --- time ----------------------------------------------------------------------------------

TEST_F(JwtVerify, ExpiredTokenIsRejected) {
  expect_error(mint(R"({"exp":)" + std::to_string(kNowS - 1) + "}"), AuthError::kExpired,
               "AUTH_JWT_EXPIRED");
}

TEST_F(JwtVerify, TokenIsValidUntilTheEndOfItsExpirySecond) {
  EXPECT_TRUE(verify(mint(R"({"exp":)" + std::to_string(kNowS) + "}")));
  EXPECT_TRUE(verify(mint(R"({"exp":)" + std::to_string(kNowS + 3600) + "}")));
}

TEST_F(JwtVerify, LeewayExtendsExpiry) {
  std::string token = mint(R"({"exp":)" + std::to_string(kNowS - 30) + "}");
  EXPECT_TRUE(verify(token, VerifyOptions{.leeway = seconds(60)}));
  expect_error(token, AuthError::kExpired, "AUTH_JWT_EXPIRED",
               VerifyOptions{.leeway = seconds(29)});
}

TEST_F(JwtVerify, TokenNotYetValidIsRejected) {
  std::string token = mint(R"({"nbf":)" + std::to_string(kNowS + 10) + "}");
  expect_error(token, AuthError::kNotYetValid, "AUTH_JWT_IMMATURE");
  EXPECT_TRUE(verify(token, VerifyOptions{.leeway = seconds(10)}));
  EXPECT_TRUE(verify(mint(R"({"nbf":)" + std::to_string(kNowS) + "}")));
}

TEST_F(JwtVerify, ForgedExpiredTokenIsInvalidNotExpired) {
  // The claims are not believed, nor reported on, before the signature holds.
  SigningKey other = SigningKey::generate().value();
  expect_invalid(sign_raw(other, kHeader, R"({"exp":1})"), AuthError::kBadSignature);
}

// --- forgery -------------------------------------------------------------------------------

TEST_F(JwtVerify, TamperedPayloadIsRejected) {
  std::string token = mint(R"({"a":"ro"})");
  std::size_t dot1 = token.find('.'), dot2 = token.rfind('.');
  std::string forged = token.substr(0, dot1 + 1) + b64(R"({"a":"rw"})") + token.substr(dot2);
  expect_invalid(forged, AuthError::kBadSignature);
}

TEST_F(JwtVerify, TamperedHeaderIsRejected) {
  std::string token = mint(R"({"a":"ro"})");
  std::string forged = b64(R"({"alg":"EdDSA"})") + token.substr(token.find('.'));
  expect_invalid(forged, AuthError::kBadSignature);
}

TEST_F(JwtVerify, TamperedSignatureIsRejected) {
  std::string token = mint(R"({"a":"ro"})");
  std::size_t dot2 = token.rfind('.');
  auto sig = base64url::decode(token.substr(dot2 + 1)).value();
  for (std::size_t byte : {std::size_t{0}, std::size_t{31}, std::size_t{63}}) {
    auto bad = sig;
    bad[byte] ^= 0x01;
    expect_invalid(token.substr(0, dot2 + 1) + base64url::encode(bad.data(), bad.size()),
                   AuthError::kBadSignature);
  }
  // Truncated and extended signatures.
  expect_invalid(token.substr(0, dot2 + 1) + base64url::encode(sig.data(), 63),
                 AuthError::kBadSignature);
  sig.push_back(0);
  expect_invalid(token.substr(0, dot2 + 1) + base64url::encode(sig.data(), sig.size()),
                 AuthError::kBadSignature);
}

TEST_F(JwtVerify, TokenSignedByAnotherKeyIsRejected) {
  SigningKey other = SigningKey::generate().value();
  expect_invalid(create_jwt(other, Claims{}).value(), AuthError::kBadSignature);
}

TEST_F(JwtVerify, AnyKeyOfTheSetMayVerify) {
  SigningKey k2 = SigningKey::generate().value();
  SigningKey k3 = SigningKey::generate().value();
  KeySet set =
      KeySet::parse(k2.public_key_pem() + key_.public_key_pem() + k3.public_key_pem()).value();
  ASSERT_EQ(set.size(), 3u);
  for (const SigningKey* k : {&key_, &k2, &k3}) {
    auto r = verify_jwt(create_jwt(*k, Claims{}).value(), set, kNow);
    EXPECT_TRUE(r) << r.error().message;
  }
  SigningKey stranger = SigningKey::generate().value();
  EXPECT_FALSE(verify_jwt(create_jwt(stranger, Claims{}).value(), set, kNow));
}

TEST_F(JwtVerify, EmptyKeySetVerifiesNothing) {
  auto r = verify_jwt(mint("{}"), KeySet(), kNow);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, AuthError::kBadSignature);
}

TEST_F(JwtVerify, UnsignedAlgNoneTokenIsRejected) {
  std::string payload = b64(R"({"a":"rw"})");
  expect_invalid(b64(R"({"alg":"none","typ":"JWT"})") + "." + payload + ".",
                 AuthError::kUnsupportedAlg);
  expect_invalid(b64(R"({"alg":"none"})") + "." + payload + ".", AuthError::kUnsupportedAlg);
  // Also with a genuine signature attached: the header still says none.
  expect_invalid(sign_raw(key_, R"({"alg":"none"})", R"({"a":"rw"})"), AuthError::kUnsupportedAlg);
}

// The classic confusion attack: an HS256 token whose HMAC key is the server's public key.
TEST_F(JwtVerify, Hs256KeyedWithThePublicKeyIsRejected) {
  std::string input = b64(R"({"alg":"HS256","typ":"JWT"})") + "." + b64(R"({"a":"rw"})");
  auto hs256 = [&](std::string_view secret) {
    unsigned char mac[32];
    unsigned int size = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &size);
    return input + "." + base64url::encode(mac, size);
  };
  std::string pem = key_.public_key_pem();
  std::string raw = base64url::decode_string(key_.public_key_base64url()).value();
  expect_invalid(hs256(pem), AuthError::kUnsupportedAlg);
  expect_invalid(hs256(raw), AuthError::kUnsupportedAlg);
  expect_invalid(hs256(key_.public_key_base64url()), AuthError::kUnsupportedAlg);
}

TEST_F(JwtVerify, OtherOrMissingAlgorithmsAreRejected) {
  for (std::string_view header :
       {R"({"alg":"RS256","typ":"JWT"})", R"({"alg":"ES256"})", R"({"alg":"eddsa"})",
        R"({"alg":"Ed25519"})", R"({"alg":"EdDSA "})", R"({"typ":"JWT"})", R"({"alg":null})",
        R"({"alg":["EdDSA"]})", R"({})"}) {
    expect_invalid(sign_raw(key_, header, "{}"), AuthError::kUnsupportedAlg);
  }
}

TEST_F(JwtVerify, TypOtherThanJwtIsRejected) {
  for (std::string_view header :
       {R"({"alg":"EdDSA","typ":"JWE"})", R"({"alg":"EdDSA","typ":"jwt"})",
        R"({"alg":"EdDSA","typ":1})", R"({"alg":"EdDSA","typ":""})"}) {
    expect_invalid(sign_raw(key_, header, "{}"), AuthError::kUnsupportedAlg);
  }
}

TEST_F(JwtVerify, CriticalHeaderExtensionsAreRejected) {
  expect_invalid(sign_raw(key_, R"({"alg":"EdDSA","crit":["b64"],"b64":false})", "{}"),
                 AuthError::kUnsupportedAlg);
}

// --- malformed input -----------------------------------------------------------------------

TEST_F(JwtVerify, WrongNumberOfSegmentsIsRejected) {
  std::string token = mint("{}");
  std::string two = token.substr(0, token.rfind('.'));
  expect_invalid(two, AuthError::kMalformed);
  expect_invalid(token + ".", AuthError::kMalformed);
  expect_invalid(token + "." + token.substr(token.rfind('.') + 1), AuthError::kMalformed);
  expect_invalid("", AuthError::kMalformed);
  expect_invalid("abc", AuthError::kMalformed);
  expect_invalid("..", AuthError::kMalformed);
}

TEST_F(JwtVerify, NonBase64urlSegmentsAreRejected) {
  std::string token = mint(R"({"a":"ro"})");
  std::size_t dot1 = token.find('.'), dot2 = token.rfind('.');
  std::string h = token.substr(0, dot1), p = token.substr(dot1 + 1, dot2 - dot1 - 1),
              s = token.substr(dot2 + 1);
  auto join = [](std::string_view a, std::string_view b, std::string_view c) {
    return std::string(a) + "." + std::string(b) + "." + std::string(c);
  };
  // Padding, the standard alphabet, whitespace, and a stray byte in each segment.
  expect_invalid(join(h + "=", p, s), AuthError::kMalformed);
  expect_invalid(join(h, p, s + "=="), AuthError::kMalformed);
  expect_invalid(join(h, p + " ", s), AuthError::kMalformed);
  expect_invalid(join(h, p, " " + s), AuthError::kMalformed);
  expect_invalid(join(h.substr(0, 4) + "+" + h.substr(5), p, s), AuthError::kMalformed);
  expect_invalid(join(h, p.substr(0, 4) + "/" + p.substr(5), s), AuthError::kMalformed);
  expect_invalid(join(h, p, s.substr(0, 4) + "\xff" + s.substr(5)), AuthError::kMalformed);
  std::string impossible = p;  // 4k+1 characters can encode no byte string
  while (impossible.size() % 4 != 1) impossible += 'A';
  expect_invalid(join(h, impossible, s), AuthError::kMalformed);
}

TEST_F(JwtVerify, NonCanonicalBase64IsRejected) {
  // An Ed25519 signature is 64 bytes: 86 characters, whose last carries 4 unused bits. Setting
  // one of them decodes to the same bytes, so a lenient decoder would accept a second spelling.
  std::string token = mint("{}");
  std::string alt = token;
  char& last = alt.back();
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  last = alphabet[alphabet.find(last) | 1];
  ASSERT_NE(alt, token);
  expect_invalid(alt, AuthError::kMalformed);
}

TEST_F(JwtVerify, HeaderThatIsNotAJsonObjectIsRejected) {
  for (std::string_view header :
       {"", "null", "[]", R"("EdDSA")", "{", R"({"alg":"EdDSA",})", R"({"alg":"EdDSA"} x)"}) {
    expect_invalid(b64(header) + "." + b64("{}") + "." + b64(std::string(64, 'x')),
                   AuthError::kMalformed);
  }
}

TEST_F(JwtVerify, DuplicateHeaderMemberIsRejected) {
  expect_invalid(sign_raw(key_, R"({"alg":"EdDSA","alg":"none"})", "{}"), AuthError::kMalformed);
  expect_invalid(sign_raw(key_, R"({"alg":"none","alg":"EdDSA"})", "{}"), AuthError::kMalformed);
}

TEST_F(JwtVerify, SignedButMalformedClaimsAreRejected) {
  for (std::string_view payload : {"",
                                   "[]",
                                   "null",
                                   "not json",
                                   R"({"a":"ro",})",
                                   R"({"a":"ro","a":"rw"})",
                                   R"({"p":{"rw":{"ns":["x"],"ns":["y"]}}})",
                                   R"({"a":"admin"})",
                                   R"({"a":1})",
                                   R"({"exp":"1"})",
                                   R"({"exp":1.5})",
                                   R"({"exp":1e10})",
                                   R"({"exp":true})",
                                   R"({"exp":18446744073709551615})",
                                   R"({"nbf":"soon"})",
                                   R"({"id":5})",
                                   R"({"id":""})",
                                   R"({"id":["a",1]})",
                                   R"({"id":{}})",
                                   R"({"p":[]})",
                                   R"({"p":{"rw":["x"]}})",
                                   R"({"p":{"rw":{"ns":"x"}}})",
                                   R"({"p":{"ro":{"ns":[""]}}})",
                                   R"({"p":{"ro":{"tags":[1]}}})",
                                   "{\"id\":\"\xff\"}"}) {
    SCOPED_TRACE(payload);
    expect_invalid(mint(payload), AuthError::kMalformed);
  }
}

TEST_F(JwtVerify, HugeTokenIsRejectedBeforeDecoding) {
  // Not even a JWT: the size check comes first.
  expect_error(std::string(8 * 1024 + 1, '!'), AuthError::kTooLarge, "AUTH_JWT_INVALID");
  // A signed token with a 9 KiB claim.
  std::string big = mint(R"({"pad":")" + std::string(9 * 1024, 'x') + R"("})");
  expect_invalid(big, AuthError::kTooLarge);
  EXPECT_TRUE(verify(big, VerifyOptions{.max_token_bytes = 16 * 1024}));
  // Exactly at the limit is fine.
  std::string token = mint("{}");
  EXPECT_TRUE(verify(token, VerifyOptions{.max_token_bytes = token.size()}));
  expect_error(token, AuthError::kTooLarge, "AUTH_JWT_INVALID",
               VerifyOptions{.max_token_bytes = token.size() - 1});
}

// --- minting -------------------------------------------------------------------------------

TEST(JwtCreate, KeygenCreateVerifyRoundTrip) {
  auto pair = generate_key_pair();
  ASSERT_TRUE(pair) << pair.error();
  EXPECT_TRUE(pair->private_key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
  EXPECT_TRUE(pair->public_key_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
  EXPECT_EQ(pair->public_key_base64url.size(), 43u);

  auto key = SigningKey::parse_pem(pair->private_key_pem);
  ASSERT_TRUE(key) << key.error();
  Claims claims;
  claims.a = Access::kReadOnly;
  claims.id = std::vector<std::string>{"tenant"};
  claims.exp = kNowS + 60;
  claims.nbf = kNowS - 60;
  auto token = create_jwt(*key, claims);
  ASSERT_TRUE(token) << token.error();

  for (const std::string& public_text : {pair->public_key_pem, pair->public_key_base64url}) {
    auto keys = KeySet::parse(public_text);
    ASSERT_TRUE(keys) << keys.error();
    auto r = verify_jwt(*token, *keys, kNow);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->claims.a, Access::kReadOnly);
    EXPECT_EQ(r->claims.id, std::vector<std::string>{"tenant"});
    EXPECT_EQ(r->claims.exp, kNowS + 60);
    EXPECT_EQ(r->claims.nbf, kNowS - 60);
    EXPECT_EQ(r->authorization.level_for("tenant"), Authorization::kReadOnly);
    EXPECT_EQ(r->authorization.level_for("other"), Authorization::kNone);
  }
}

TEST(JwtCreate, WritesTheHeaderAndClaimsSqldExpects) {
  SigningKey key = SigningKey::generate().value();
  Claims claims;
  claims.id = std::vector<std::string>{"one"};
  claims.p = PermissionMap{};
  claims.p->rw = Scopes{std::vector<std::string>{"a", "b"}, std::nullopt};
  std::string token = create_jwt(key, claims).value();
  std::size_t dot1 = token.find('.'), dot2 = token.rfind('.');
  EXPECT_EQ(base64url::decode_string(token.substr(0, dot1)).value(),
            R"({"alg":"EdDSA","typ":"JWT"})");
  EXPECT_EQ(base64url::decode_string(token.substr(dot1 + 1, dot2 - dot1 - 1)).value(),
            R"({"id":"one","p":{"rw":{"ns":["a","b"]}}})");
}

TEST(JwtCreate, PermissionMapSurvivesARoundTrip) {
  SigningKey key = SigningKey::generate().value();
  KeySet keys = KeySet::parse(key.public_key_pem()).value();
  Claims claims;
  claims.p = PermissionMap{};
  claims.p->ro = Scopes{std::vector<std::string>{"r"}, std::vector<std::string>{"g"}};
  claims.p->roa = Scopes{std::vector<std::string>{"ra"}, std::nullopt};
  claims.p->rwa = Scopes{std::vector<std::string>{"wa"}, std::nullopt};
  claims.p->ddl = Scopes{std::vector<std::string>{"d"}, std::nullopt};
  auto r = verify_jwt(create_jwt(key, claims).value(), keys, kNow);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(r->claims.p);
  EXPECT_EQ(r->claims.p->ro->tags, std::vector<std::string>{"g"});
  EXPECT_FALSE(r->claims.p->rw);
  EXPECT_EQ(r->authorization.level_for("r"), Authorization::kReadOnly);
  EXPECT_EQ(r->authorization.level_for("ra"), Authorization::kReadOnlyAttach);
  EXPECT_EQ(r->authorization.level_for("wa"), Authorization::kReadWriteAttach);
  EXPECT_TRUE(r->authorization.can_ddl_on_shared_schema("d"));
}

// --- interop with an independent implementation --------------------------------------------

// Generated once with Node v20's crypto (generateKeyPairSync('ed25519'), sign(null, ...),
// export as SPKI PEM and as JWK "x"), then pasted here.
constexpr std::string_view kNodePublicPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAmjxGtaanJE8xFW8VFPwvyJF3dSCrRhm5ffKMiXpPM1U=\n"
    "-----END PUBLIC KEY-----\n";
constexpr std::string_view kNodePublicRaw = "mjxGtaanJE8xFW8VFPwvyJF3dSCrRhm5ffKMiXpPM1U";
// {"alg":"EdDSA","typ":"JWT"} . {"a":"ro","id":"golden","iat":1700000000,"exp":4102444800}
constexpr std::string_view kNodeLegacyToken =
    "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9."
    "eyJhIjoicm8iLCJpZCI6ImdvbGRlbiIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjo0MTAyNDQ0ODAwfQ."
    "YFj8AyyYXtHcfFQ8yJP5jvaX4ntTljDfz1PSvzT1LSs4Sef_UFIrud2QJ2BR1DFYNfcAW3WN5eMANzKltCWiAg";
// {"typ":"JWT","alg":"EdDSA","kid":"k1"} .
// {"p":{"rw":{"ns":["alpha"]},"roa":{"ns":["beta"]}},"nbf":1700000000}
constexpr std::string_view kNodeScopedToken =
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0."
    "eyJwIjp7InJ3Ijp7Im5zIjpbImFscGhhIl19LCJyb2EiOnsibnMiOlsiYmV0YSJdfX0sIm5iZiI6MTcwMDAwMDAwMH0."
    "57FhpR6qWJZRbBpEEGRVvlgbWh9pNsEOhb-PBqScQ-SSv7zFu8W4FS1gFIVOauabjPnlmqJHty9mSpfIY8kFDw";

TEST(JwtInterop, NodeTokensVerifyWithPemAndRawKeys) {
  for (std::string_view key_text : {kNodePublicPem, kNodePublicRaw}) {
    auto keys = KeySet::parse(key_text);
    ASSERT_TRUE(keys) << keys.error();
    EXPECT_EQ(keys->raw_base64url(), std::vector<std::string>{std::string(kNodePublicRaw)});

    auto legacy = verify_jwt(kNodeLegacyToken, *keys, kNow);
    ASSERT_TRUE(legacy) << legacy.error().message;
    EXPECT_EQ(legacy->claims.exp, 4102444800);
    EXPECT_EQ(legacy->authorization.level_for("golden"), Authorization::kReadOnly);
    EXPECT_EQ(legacy->authorization.level_for("default"), Authorization::kNone);

    auto scoped = verify_jwt(kNodeScopedToken, *keys, kNow);
    ASSERT_TRUE(scoped) << scoped.error().message;
    EXPECT_EQ(scoped->authorization.level_for("alpha"), Authorization::kReadWrite);
    EXPECT_EQ(scoped->authorization.level_for("beta"), Authorization::kReadOnlyAttach);
    EXPECT_EQ(scoped->authorization.level_for("gamma"), Authorization::kNone);
  }
}

TEST(JwtInterop, NodeTokensHonourTheirTimes) {
  KeySet keys = KeySet::parse(kNodePublicPem).value();
  const system_clock::time_point after_exp{seconds(4102444801)};
  EXPECT_EQ(verify_jwt(kNodeLegacyToken, keys, after_exp).error().kind, AuthError::kExpired);
  const system_clock::time_point before_nbf{seconds(1699999999)};
  EXPECT_EQ(verify_jwt(kNodeScopedToken, keys, before_nbf).error().kind, AuthError::kNotYetValid);
}

TEST(JwtInterop, NodeTokenFailsWithAnotherKey) {
  KeySet keys = KeySet::parse(SigningKey::generate().value().public_key_pem()).value();
  EXPECT_EQ(verify_jwt(kNodeLegacyToken, keys, kNow).error().kind, AuthError::kBadSignature);
}

}  // namespace
}  // namespace quire::auth
