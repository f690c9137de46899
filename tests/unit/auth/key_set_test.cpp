#include "auth/key_set.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "auth/base64url.h"
#include "auth/openssl.h"
#include "auth/signing_key.h"

namespace quire::auth {
namespace {

std::string ec_public_key_pem() {
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  BioPtr bio(BIO_new(BIO_s_mem()));
  EXPECT_TRUE(key && bio && PEM_write_bio_PUBKEY(bio.get(), key.get()) == 1);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

// A temporary file removed when the test ends.
class TempFile {
 public:
  explicit TempFile(std::string_view content) {
    char name[] = "/tmp/quire_key_XXXXXX";
    int fd = mkstemp(name);
    EXPECT_GE(fd, 0);
    close(fd);
    path_ = name;
    std::ofstream(path_, std::ios::binary) << content;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(AuthKeySet, ParsesAPublicKeyPem) {
  SigningKey key = SigningKey::generate().value();
  auto set = KeySet::parse(key.public_key_pem());
  ASSERT_TRUE(set) << set.error();
  EXPECT_EQ(set->size(), 1u);
  EXPECT_EQ(set->raw_base64url(), std::vector<std::string>{key.public_key_base64url()});
}

TEST(AuthKeySet, ParsesARawBase64urlKey) {
  SigningKey key = SigningKey::generate().value();
  auto set = KeySet::parse(key.public_key_base64url());
  ASSERT_TRUE(set) << set.error();
  EXPECT_EQ(set->raw_base64url(), std::vector<std::string>{key.public_key_base64url()});
}

TEST(AuthKeySet, IgnoresSurroundingWhitespaceAndToleratesPadding) {
  SigningKey key = SigningKey::generate().value();
  EXPECT_TRUE(KeySet::parse("  \n" + key.public_key_base64url() + "\n"));
  EXPECT_TRUE(KeySet::parse(key.public_key_base64url() + "="));
  EXPECT_TRUE(KeySet::parse("\n" + key.public_key_pem() + "\n\n"));
}

TEST(AuthKeySet, ParsesConcatenatedPemBlocks) {
  SigningKey a = SigningKey::generate().value(), b = SigningKey::generate().value(),
             c = SigningKey::generate().value();
  auto set = KeySet::parse(a.public_key_pem() + b.public_key_pem() + "\n" + c.public_key_pem());
  ASSERT_TRUE(set) << set.error();
  EXPECT_EQ(set->raw_base64url(),
            (std::vector<std::string>{a.public_key_base64url(), b.public_key_base64url(),
                                      c.public_key_base64url()}));
}

TEST(AuthKeySet, RejectsAPrivateKey) {
  SigningKey key = SigningKey::generate().value();
  auto set = KeySet::parse(key.private_key_pem());
  ASSERT_FALSE(set);
  EXPECT_EQ(set.error(), "received a private key, but a public key is expected");
  // Also when it hides behind public keys.
  set = KeySet::parse(key.public_key_pem() + key.private_key_pem());
  ASSERT_FALSE(set);
  EXPECT_EQ(set.error(), "received a private key, but a public key is expected");
}

TEST(AuthKeySet, RejectsOtherPemBlocks) {
  auto set = KeySet::parse("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  ASSERT_FALSE(set);
  EXPECT_NE(set.error().find("CERTIFICATE"), std::string::npos) << set.error();
}

TEST(AuthKeySet, RejectsAPublicKeyOfAnotherType) {
  auto set = KeySet::parse(ec_public_key_pem());
  ASSERT_FALSE(set);
  EXPECT_NE(set.error().find("not an Ed25519 key"), std::string::npos) << set.error();
}

TEST(AuthKeySet, RejectsBrokenPem) {
  SigningKey key = SigningKey::generate().value();
  std::string pem = key.public_key_pem();
  EXPECT_FALSE(KeySet::parse(pem.substr(0, pem.size() - 10)));  // no END line
  std::string garbled = pem;
  garbled[30] = '*';
  EXPECT_FALSE(KeySet::parse(garbled));
  EXPECT_FALSE(KeySet::parse("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"));
}

TEST(AuthKeySet, RejectsABadRawKey) {
  SigningKey key = SigningKey::generate().value();
  std::string raw = key.public_key_base64url();
  EXPECT_FALSE(KeySet::parse(""));
  EXPECT_FALSE(KeySet::parse("   \n"));
  EXPECT_FALSE(KeySet::parse(raw.substr(0, 42)));  // 31 bytes
  EXPECT_FALSE(KeySet::parse(raw + "AAAA"));       // 35 bytes
  EXPECT_FALSE(KeySet::parse(raw.substr(0, 20) + "!" + raw.substr(21)));
  // The standard alphabet is refused, as by sqld.
  std::uint8_t bytes[32];
  for (int i = 0; i < 32; ++i) bytes[i] = 0xfb;  // encodes to "-_-_..."
  std::string url = base64url::encode(bytes, 32);
  ASSERT_TRUE(KeySet::parse(url));
  std::string standard = url;
  for (char& c : standard) c = c == '-' ? '+' : c == '_' ? '/' : c;
  EXPECT_FALSE(KeySet::parse(standard));
}

TEST(AuthKeySet, RejectsRawKeysOfTheWrongSize) {
  std::uint8_t bytes[33] = {};
  EXPECT_FALSE(KeySet::from_raw(bytes, 31));
  EXPECT_FALSE(KeySet::from_raw(bytes, 33));
  EXPECT_TRUE(KeySet::from_raw(bytes, 32));
}

TEST(AuthKeySet, LoadsAKeyFile) {
  SigningKey key = SigningKey::generate().value();
  TempFile pem(key.public_key_pem());
  auto set = KeySet::load_file(pem.path());
  ASSERT_TRUE(set) << set.error();
  EXPECT_EQ(set->size(), 1u);
  TempFile raw(key.public_key_base64url() + "\n");
  set = KeySet::load_file(raw.path());
  ASSERT_TRUE(set) << set.error();
  EXPECT_EQ(set->raw_base64url(), std::vector<std::string>{key.public_key_base64url()});
}

TEST(AuthKeySet, KeyFileErrorsNameThePath) {
  auto missing = KeySet::load_file("/nonexistent/quire.pem");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("/nonexistent/quire.pem"), std::string::npos);
  TempFile bad("not a key");
  auto set = KeySet::load_file(bad.path());
  ASSERT_FALSE(set);
  EXPECT_NE(set.error().find(bad.path()), std::string::npos);
}

TEST(AuthKeySet, VerifyRejectsSignaturesOfTheWrongLength) {
  SigningKey key = SigningKey::generate().value();
  KeySet set = KeySet::parse(key.public_key_pem()).value();
  std::string sig = key.sign("hello").value();
  auto bytes = reinterpret_cast<const std::uint8_t*>(sig.data());
  EXPECT_TRUE(set.verify("hello", bytes, 64));
  EXPECT_FALSE(set.verify("hellO", bytes, 64));
  EXPECT_FALSE(set.verify("hello", bytes, 63));
  EXPECT_FALSE(KeySet().verify("hello", bytes, 64));
}

TEST(AuthSigningKey, ParsesItsOwnPemAndRejectsOthers) {
  SigningKey key = SigningKey::generate().value();
  auto again = SigningKey::parse_pem(key.private_key_pem());
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(again->public_key_base64url(), key.public_key_base64url());
  EXPECT_FALSE(SigningKey::parse_pem(key.public_key_pem()));
  EXPECT_FALSE(SigningKey::parse_pem(""));
  EXPECT_FALSE(SigningKey::parse_pem(key.public_key_base64url()));

  EvpPkeyPtr ec(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  BioPtr bio(BIO_new(BIO_s_mem()));
  ASSERT_EQ(PEM_write_bio_PrivateKey(bio.get(), ec.get(), nullptr, nullptr, 0, nullptr, nullptr),
            1);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  auto not_ed = SigningKey::parse_pem(std::string(data, static_cast<std::size_t>(size)));
  ASSERT_FALSE(not_ed);
  EXPECT_NE(not_ed.error().find("Ed25519"), std::string::npos);
}

TEST(AuthSigningKey, LoadsAKeyFile) {
  auto pair = generate_key_pair().value();
  TempFile file(pair.private_key_pem);
  auto key = SigningKey::load_file(file.path());
  ASSERT_TRUE(key) << key.error();
  EXPECT_EQ(key->public_key_base64url(), pair.public_key_base64url);
  EXPECT_EQ(key->public_key_pem(), pair.public_key_pem);
}

TEST(AuthSigningKey, EachKeyPairIsFresh) {
  auto a = generate_key_pair().value(), b = generate_key_pair().value();
  EXPECT_NE(a.public_key_base64url, b.public_key_base64url);
  EXPECT_NE(a.private_key_pem, b.private_key_pem);
}

}  // namespace
}  // namespace quire::auth
