// SigV4 against the worked examples in AWS's S3 documentation ("Signature Calculations for the
// Authorization Header: Transferring Payload in a Single Chunk"), which use the documented
// example credentials, bucket "examplebucket", region us-east-1 and 20130524T000000Z.
#include "storage/sigv4.h"

#include <gtest/gtest.h>

#include "storage/s3_xml.h"

namespace quire::storage {
namespace {

const sigv4::Credentials kExampleCredentials{"AKIAIOSFODNN7EXAMPLE",
                                             "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"};
constexpr const char* kEmptyHash =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr const char* kDate = "20130524T000000Z";

TEST(SigV4, HashesMatchKnownValues) {
  EXPECT_EQ(sigv4::sha256_hex(""), kEmptyHash);
  EXPECT_EQ(sigv4::sha256_hex("Welcome to Amazon S3."),
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  // RFC 1864 style Content-MD5 of "" (MD5 d41d8cd98f00b204e9800998ecf8427e).
  EXPECT_EQ(sigv4::md5_base64(""), "1B2M2Y8AsgTpgAmY7PhCfg==");
}

TEST(SigV4, GetObjectExampleMatchesAwsDocumentation) {
  sigv4::Request req;
  req.method = "GET";
  req.canonical_uri = "/test.txt";
  req.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                 {"Range", "bytes=0-9"},
                 {"x-amz-content-sha256", kEmptyHash},
                 {"x-amz-date", kDate}};
  req.payload_hash = kEmptyHash;
  auto sig = sigv4::sign(req, kExampleCredentials, "us-east-1", "s3", kDate);
  EXPECT_EQ(sig.canonical_request,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            "\nx-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sig.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(sig.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(sig.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4, PutObjectExampleMatchesAwsDocumentation) {
  std::string payload_hash = sigv4::sha256_hex("Welcome to Amazon S3.");
  sigv4::Request req;
  req.method = "PUT";
  req.canonical_uri = "/" + sigv4::uri_encode("test$file.text", false);
  EXPECT_EQ(req.canonical_uri, "/test%24file.text");
  req.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                 {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                 {"x-amz-date", kDate},
                 {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                 {"x-amz-content-sha256", payload_hash}};
  req.payload_hash = payload_hash;
  auto sig = sigv4::sign(req, kExampleCredentials, "us-east-1", "s3", kDate);
  EXPECT_EQ(sig.signed_headers, "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class");
  EXPECT_EQ(sig.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(SigV4, BucketLifecycleExampleSignsAValuelessQueryParameter) {
  sigv4::Request req;
  req.method = "GET";
  req.canonical_uri = "/";
  req.query = {{"lifecycle", ""}};
  req.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                 {"x-amz-date", kDate},
                 {"x-amz-content-sha256", kEmptyHash}};
  req.payload_hash = kEmptyHash;
  auto sig = sigv4::sign(req, kExampleCredentials, "us-east-1", "s3", kDate);
  EXPECT_NE(sig.canonical_request.find("\n/\nlifecycle=\n"), std::string::npos);
  EXPECT_EQ(sig.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(SigV4, ListObjectsExampleSortsQueryParameters) {
  sigv4::Request req;
  req.method = "GET";
  req.canonical_uri = "/";
  req.query = {{"prefix", "J"}, {"max-keys", "2"}};
  req.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                 {"x-amz-date", kDate},
                 {"x-amz-content-sha256", kEmptyHash}};
  req.payload_hash = kEmptyHash;
  auto sig = sigv4::sign(req, kExampleCredentials, "us-east-1", "s3", kDate);
  EXPECT_NE(sig.canonical_request.find("\n/\nmax-keys=2&prefix=J\n"), std::string::npos);
  EXPECT_EQ(sig.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4, EncodesPathsAndQueriesAsS3Expects) {
  EXPECT_EQ(sigv4::uri_encode("a b/c+d~e_f.g-h", false), "a%20b/c%2Bd~e_f.g-h");
  EXPECT_EQ(sigv4::uri_encode("a/b=c&d", true), "a%2Fb%3Dc%26d");
  EXPECT_EQ(sigv4::uri_encode("\xC3\xA9", true), "%C3%A9");
  EXPECT_EQ(sigv4::canonical_query({{"uploadId", "x/y"}, {"partNumber", "2"}, {"uploads", ""}}),
            "partNumber=2&uploadId=x%2Fy&uploads=");
}

TEST(SigV4, SignatureDependsOnEverySignedInput) {
  sigv4::Request req;
  req.method = "PUT";
  req.canonical_uri = "/b/k";
  req.headers = {{"host", "h"}, {"x-amz-date", kDate}, {"x-amz-content-sha256", kEmptyHash}};
  req.payload_hash = kEmptyHash;
  auto base = sigv4::sign(req, kExampleCredentials, "us-east-1", "s3", kDate).signature;
  EXPECT_EQ(base, sigv4::sign(req, kExampleCredentials, "us-east-1", "s3", kDate).signature);
  EXPECT_NE(
      base,
      sigv4::sign(req, {"AKIAIOSFODNN7EXAMPLE", "other"}, "us-east-1", "s3", kDate).signature);
  EXPECT_NE(base, sigv4::sign(req, kExampleCredentials, "eu-west-1", "s3", kDate).signature);
  auto changed = req;
  changed.canonical_uri = "/b/k2";
  EXPECT_NE(base, sigv4::sign(changed, kExampleCredentials, "us-east-1", "s3", kDate).signature);
  changed = req;
  changed.payload_hash = sigv4::sha256_hex("x");
  EXPECT_NE(base, sigv4::sign(changed, kExampleCredentials, "us-east-1", "s3", kDate).signature);
}

TEST(SigV4, FormatsAmzDateInUtc) {
  // 2013-05-24T00:00:00Z is 1369353600 seconds after the epoch.
  auto t = std::chrono::system_clock::time_point(std::chrono::seconds(1369353600));
  EXPECT_EQ(sigv4::amz_date(t), kDate);
}

TEST(S3Xml, ExtractsElementsWithoutConfusingLongerNames) {
  std::string doc =
      "<ListBucketResult><KeyCount>2</KeyCount><IsTruncated>true</IsTruncated>"
      "<Contents><Key>a&amp;b</Key><Size>3</Size></Contents>"
      "<Contents><Key>c&lt;d&#233;</Key><Size>10</Size><ETag>&quot;x&quot;</ETag></Contents>"
      "<NextContinuationToken>tok/+=</NextContinuationToken><Empty/></ListBucketResult>";
  auto contents = xml::elements(doc, "Contents");
  ASSERT_EQ(contents.size(), 2u);
  EXPECT_EQ(xml::first_text(contents[0], "Key"), "a&b");
  EXPECT_EQ(xml::first_text(contents[1], "Key"), "c<d\xC3\xA9");
  EXPECT_EQ(xml::first_text(contents[1], "ETag"), "\"x\"");
  EXPECT_EQ(xml::first_text(doc, "Key"), "a&b");
  EXPECT_EQ(xml::first_text(doc, "KeyCount"), "2");
  EXPECT_EQ(xml::first_text(doc, "NextContinuationToken"), "tok/+=");
  EXPECT_EQ(xml::first_text(doc, "Empty"), "");
  EXPECT_EQ(xml::first_text(doc, "Missing"), std::nullopt);
  EXPECT_EQ(xml::escape("<a&'\">"), "&lt;a&amp;&apos;&quot;&gt;");
  EXPECT_EQ(xml::unescape(xml::escape("k<&>'\"")), "k<&>'\"");
}

}  // namespace
}  // namespace quire::storage
