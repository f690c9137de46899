#include "auth/jwt.h"

#include <boost/json/serialize.hpp>

#include "auth/base64url.h"
#include "auth/json_object.h"

namespace quire::auth {
namespace {

namespace bj = boost::json;

Unexpected<AuthError> fail(AuthError::Kind kind, std::string message) {
  return unexpected(AuthError{kind, std::move(message)});
}

}  // namespace

Expected<VerifiedToken, AuthError> verify_jwt(std::string_view token, const KeySet& keys,
                                              std::chrono::system_clock::time_point now,
                                              const VerifyOptions& options) {
  if (token.size() > options.max_token_bytes) {
    return fail(AuthError::kTooLarge,
                "the JWT is longer than " + std::to_string(options.max_token_bytes) + " bytes");
  }
  std::size_t dot1 = token.find('.');
  std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return fail(AuthError::kMalformed, "the JWT does not have three segments");
  }
  std::string_view header_b64 = token.substr(0, dot1);
  std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  std::string_view signature_b64 = token.substr(dot2 + 1);

  auto header_json = base64url::decode_string(header_b64);
  if (!header_json) return fail(AuthError::kMalformed, "the JWT header is not base64url");
  auto header = parse_json_object(*header_json);
  if (!header) return fail(AuthError::kMalformed, "the JWT header: " + header.error());

  const bj::value* alg = header->if_contains("alg");
  if (!alg || !alg->is_string() || alg->get_string() != "EdDSA") {
    return fail(AuthError::kUnsupportedAlg, "the JWT algorithm is not EdDSA");
  }
  if (const bj::value* typ = header->if_contains("typ");
      typ && !typ->is_null() && !(typ->is_string() && typ->get_string() == "JWT")) {
    return fail(AuthError::kUnsupportedAlg, "the JWT header typ is not JWT");
  }
  if (header->contains("crit")) {
    return fail(AuthError::kUnsupportedAlg, "the JWT header has critical extensions");
  }

  auto signature = base64url::decode(signature_b64);
  if (!signature) return fail(AuthError::kMalformed, "the JWT signature is not base64url");
  // Only base64 is undone before the signature holds; the claims' JSON is parsed after it.
  auto payload_json = base64url::decode_string(payload_b64);
  if (!payload_json) return fail(AuthError::kMalformed, "the JWT payload is not base64url");
  if (!keys.verify(token.substr(0, dot2), signature->data(), signature->size())) {
    return fail(AuthError::kBadSignature, "no configured key verifies the JWT signature");
  }

  auto payload = parse_json_object(*payload_json);
  if (!payload) return fail(AuthError::kMalformed, "the JWT claims: " + payload.error());
  auto claims = claims_from_json(*payload);
  if (!claims) return fail(AuthError::kMalformed, "the JWT claims: " + claims.error());

  const std::int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const std::int64_t leeway = options.leeway.count();
  if (claims->exp && *claims->exp < now_s - leeway) {
    return fail(AuthError::kExpired, "the JWT expired at " + std::to_string(*claims->exp));
  }
  if (claims->nbf && *claims->nbf > now_s + leeway) {
    return fail(AuthError::kNotYetValid,
                "the JWT is not valid before " + std::to_string(*claims->nbf));
  }
  Authorization authorization = Authorization::from_claims(claims.value());
  return VerifiedToken{std::move(claims.value()), std::move(authorization)};
}

Expected<std::string, std::string> create_jwt(const SigningKey& key, const Claims& claims) {
  std::string input = base64url::encode(R"({"alg":"EdDSA","typ":"JWT"})") + "." +
                      base64url::encode(bj::serialize(claims_to_json(claims)));
  auto signature = key.sign(input);
  if (!signature) return unexpected(std::move(signature.error()));
  return input + "." + base64url::encode(*signature);
}

}  // namespace quire::auth
