#include "protocol/scram.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>
#include <vector>

#include "protocol/base64.h"

namespace pgtenant::protocol {
namespace {

using namespace std::literals;

// ---- base64 ----

TEST(Base64Test, Rfc4648Vectors) {
  const std::vector<std::pair<std::string, std::string>> vectors = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},        {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
  for (const auto& [raw, b64] : vectors) {
    EXPECT_EQ(Base64Encode(raw), b64);
    std::optional<std::string> decoded = Base64Decode(b64);
    ASSERT_TRUE(decoded.has_value()) << b64;
    EXPECT_EQ(*decoded, raw);
  }
}

TEST(Base64Test, RoundTripsEveryByteValue) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t len = 0; len <= all.size(); len += 37) {
    std::string chunk = all.substr(0, len);
    std::optional<std::string> back = Base64Decode(Base64Encode(chunk));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, chunk);
  }
}

TEST(Base64Test, RejectsMalformedInput) {
  for (std::string_view bad : {"Zg=", "Zg", "Z", "Z===", "====", "=Zg=", "Zm9v!", "Zg==Zg==",
                               " Zg==", "Zg==\n", "Zm=v", "Zm9vYg=\n", "Zm9\xff"}) {
    EXPECT_FALSE(Base64Decode(bad).has_value()) << bad;
  }
  EXPECT_FALSE(Base64Decode("Zm\0v"sv).has_value());
}

// ---- RFC 7677 test vector ----

constexpr std::string_view kRfcSalt = "W22ZaJ0SNY7soEsUEjb6gQ==";
constexpr std::string_view kRfcClientNonce = "rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr std::string_view kRfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kRfcClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kRfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
// The verifier for "pencil" with the RFC salt, computed independently with Python's hashlib.
constexpr std::string_view kPencilVerifier =
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

std::string RfcSaltBytes() { return *Base64Decode(kRfcSalt); }

TEST(ScramRfc7677Test, ClientProducesTheRfcProofAndAcceptsTheRfcSignature) {
  ScramClientExchange client("pencil", std::string(kRfcClientNonce), "user");
  EXPECT_EQ(client.ClientFirstMessage(), kRfcClientFirst);
  Result<std::string> final_message = client.HandleServerFirst(kRfcServerFirst);
  ASSERT_TRUE(final_message.ok()) << final_message.status().ToString();
  EXPECT_EQ(*final_message, kRfcClientFinal);
  Status s = client.HandleServerFinal(kRfcServerFinal);
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(ScramRfc7677Test, ServerAcceptsTheRfcProofAndSendsTheRfcSignature) {
  ScramServerExchange server(MakeScramVerifier("pencil", RfcSaltBytes(), 4096),
                             std::string(kRfcServerNonce));
  Result<std::string> first = server.HandleClientFirst(kRfcClientFirst);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(*first, kRfcServerFirst);
  Result<std::string> final_message = server.HandleClientFinal(kRfcClientFinal);
  ASSERT_TRUE(final_message.ok()) << final_message.status().ToString();
  EXPECT_EQ(*final_message, kRfcServerFinal);
}

TEST(ScramRfc7677Test, ClientRejectsATamperedServerSignature) {
  ScramClientExchange client("pencil", std::string(kRfcClientNonce), "user");
  ASSERT_TRUE(client.HandleServerFirst(kRfcServerFirst).ok());
  Status s = client.HandleServerFinal("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
  EXPECT_EQ(s.sqlstate(), "28P01");
}

TEST(ScramRfc7677Test, ClientWithWrongPasswordGivesAProofTheServerRejects) {
  ScramClientExchange client("pencil2", std::string(kRfcClientNonce), "user");
  Result<std::string> final_message = client.HandleServerFirst(kRfcServerFirst);
  ASSERT_TRUE(final_message.ok());
  EXPECT_NE(*final_message, kRfcClientFinal);
  ScramServerExchange server(*ParseScramVerifier(kPencilVerifier), std::string(kRfcServerNonce));
  ASSERT_TRUE(server.HandleClientFirst(kRfcClientFirst).ok());
  Result<std::string> verdict = server.HandleClientFinal(*final_message);
  ASSERT_FALSE(verdict.ok());
  EXPECT_EQ(verdict.status().sqlstate(), "28P01");
}

// ---- verifiers ----

TEST(ScramVerifierTest, MakeMatchesIndependentlyComputedVerifier) {
  ScramVerifier v = MakeScramVerifier("pencil", RfcSaltBytes(), 4096);
  EXPECT_EQ(ScramVerifierToString(v), kPencilVerifier);
}

TEST(ScramVerifierTest, ParseAndToStringRoundTrip) {
  Result<ScramVerifier> v = ParseScramVerifier(kPencilVerifier);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->iterations, 4096);
  EXPECT_EQ(v->salt, RfcSaltBytes());
  ScramVerifier made = MakeScramVerifier("pencil", RfcSaltBytes());
  EXPECT_EQ(v->stored_key, made.stored_key);
  EXPECT_EQ(v->server_key, made.server_key);
  EXPECT_EQ(ScramVerifierToString(*v), kPencilVerifier);
  EXPECT_TRUE(IsScramVerifier(kPencilVerifier));
}

TEST(ScramVerifierTest, RandomSaltVerifiersDifferAndRoundTrip) {
  ScramVerifier a = MakeScramVerifierWithRandomSalt("pw");
  ScramVerifier b = MakeScramVerifierWithRandomSalt("pw");
  EXPECT_EQ(a.salt.size(), kScramSaltLength);
  EXPECT_EQ(a.iterations, kDefaultScramIterations);
  EXPECT_NE(a.salt, b.salt);
  EXPECT_NE(a.stored_key, b.stored_key);
  Result<ScramVerifier> back = ParseScramVerifier(ScramVerifierToString(a));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->salt, a.salt);
  EXPECT_EQ(back->stored_key, a.stored_key);
}

TEST(ScramVerifierTest, RejectsMalformedVerifiers) {
  const std::string key = "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=";
  const std::string short_key = Base64Encode(std::string(31, 'k'));
  const std::string long_key = Base64Encode(std::string(33, 'k'));
  const std::vector<std::string> bad = {
      "",
      "md56a422f785c9e20873908ce25d1736ae2",
      "plaintext-password",
      "SCRAM-SHA-256$",
      "SCRAM-SHA-1$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" + key + ":" + key,
      "scram-sha-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" + key + ":" + key,
      "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" + key,                // no ServerKey
      "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==" + key + ":" + key,     // no '$'
      "SCRAM-SHA-256$W22ZaJ0SNY7soEsUEjb6gQ==$" + key + ":" + key,         // no iterations
      "SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$" + key + ":" + key,
      "SCRAM-SHA-256$-1:W22ZaJ0SNY7soEsUEjb6gQ==$" + key + ":" + key,
      "SCRAM-SHA-256$+4096:W22ZaJ0SNY7soEsUEjb6gQ==$" + key + ":" + key,
      "SCRAM-SHA-256$ 4096:W22ZaJ0SNY7soEsUEjb6gQ==$" + key + ":" + key,
      "SCRAM-SHA-256$4096x:W22ZaJ0SNY7soEsUEjb6gQ==$" + key + ":" + key,
      "SCRAM-SHA-256$99999999999999999999:W22ZaJ0SNY7soEsUEjb6gQ==$" + key + ":" + key,
      "SCRAM-SHA-256$4096:$" + key + ":" + key,                            // empty salt
      "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ=$" + key + ":" + key,     // bad base64
      "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" + short_key + ":" + key,
      "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" + key + ":" + long_key,
      "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" + key + ":" + key + ":" + key,
      "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" + key + ":" + key + "$",
      "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" + key + ":" + key + "\n",
  };
  for (const std::string& text : bad) {
    Result<ScramVerifier> v = ParseScramVerifier(text);
    EXPECT_FALSE(v.ok()) << text;
    EXPECT_FALSE(IsScramVerifier(text)) << text;
    if (!v.ok()) {
      EXPECT_EQ(v.status().sqlstate(), "22023");
      // The verifier is secret-equivalent: errors must not echo it.
      EXPECT_EQ(v.status().message().find(key), std::string::npos);
    }
  }
}

TEST(ScramVerifierTest, MockVerifierHasStableSaltPerUserAndMatchesNoPassword) {
  ScramVerifier a = MakeMockScramVerifier("ghost", "process-secret");
  ScramVerifier again = MakeMockScramVerifier("ghost", "process-secret");
  ScramVerifier other_user = MakeMockScramVerifier("ghost2", "process-secret");
  ScramVerifier other_secret = MakeMockScramVerifier("ghost", "another-secret");
  EXPECT_EQ(a.salt.size(), kScramSaltLength);
  EXPECT_EQ(a.iterations, kDefaultScramIterations);
  EXPECT_EQ(a.salt, again.salt);
  EXPECT_NE(a.salt, other_user.salt);
  EXPECT_NE(a.salt, other_secret.salt);
  EXPECT_TRUE(IsScramVerifier(ScramVerifierToString(a)));
  for (std::string_view guess : {"", "ghost", "process-secret"}) {
    ScramServerExchange server(a);
    ScramClientExchange client{std::string(guess)};
    Result<std::string> first = server.HandleClientFirst(client.ClientFirstMessage());
    ASSERT_TRUE(first.ok());
    Result<std::string> final_message = client.HandleServerFirst(*first);
    ASSERT_TRUE(final_message.ok());
    EXPECT_EQ(server.HandleClientFinal(*final_message).status().sqlstate(), "28P01");
  }
}

TEST(RandomBytesTest, GivesRequestedLengthAndFreshBytes) {
  EXPECT_EQ(RandomBytes(0).size(), 0u);
  EXPECT_EQ(RandomBytes(18).size(), 18u);
  EXPECT_NE(RandomBytes(32), RandomBytes(32));
}

// ---- full exchanges between our two classes ----

struct ExchangeOutcome {
  Status server_status;  // of HandleClientFinal
  Status client_status;  // of HandleServerFinal (only run if the server accepted)
};

ExchangeOutcome RunExchange(const ScramVerifier& verifier, const std::string& client_password) {
  ScramServerExchange server(verifier);
  ScramClientExchange client(client_password);
  Result<std::string> server_first = server.HandleClientFirst(client.ClientFirstMessage());
  EXPECT_TRUE(server_first.ok()) << server_first.status().ToString();
  Result<std::string> client_final = client.HandleServerFirst(*server_first);
  EXPECT_TRUE(client_final.ok()) << client_final.status().ToString();
  Result<std::string> server_final = server.HandleClientFinal(*client_final);
  if (!server_final.ok()) return {server_final.status(), Status::Ok()};
  return {Status::Ok(), client.HandleServerFinal(*server_final)};
}

TEST(ScramExchangeTest, RightPasswordSucceedsOnBothSides) {
  ExchangeOutcome out = RunExchange(MakeScramVerifierWithRandomSalt("s3cret pw!"), "s3cret pw!");
  EXPECT_TRUE(out.server_status.ok()) << out.server_status.ToString();
  EXPECT_TRUE(out.client_status.ok()) << out.client_status.ToString();
}

TEST(ScramExchangeTest, EmptyPasswordWorksWhenBothSidesAgree) {
  ExchangeOutcome out = RunExchange(MakeScramVerifier("", "salt", 1), "");
  EXPECT_TRUE(out.server_status.ok()) << out.server_status.ToString();
  EXPECT_TRUE(out.client_status.ok()) << out.client_status.ToString();
}

TEST(ScramExchangeTest, WrongPasswordFailsWith28P01) {
  ExchangeOutcome out = RunExchange(MakeScramVerifierWithRandomSalt("right"), "wrong");
  EXPECT_EQ(out.server_status.sqlstate(), "28P01");
  // Case and trailing bytes matter.
  EXPECT_EQ(RunExchange(MakeScramVerifier("Right", "salt"), "right").server_status.sqlstate(),
            "28P01");
  EXPECT_EQ(RunExchange(MakeScramVerifier("right", "salt"), "right ").server_status.sqlstate(),
            "28P01");
}

TEST(ScramExchangeTest, ClientFirstMessageHasEmptyUserAndRandomNonce) {
  ScramClientExchange a("pw"), b("pw");
  std::string first = a.ClientFirstMessage();
  ASSERT_TRUE(first.starts_with("n,,n=,r="));
  EXPECT_EQ(first.size(), std::string("n,,n=,r=").size() + 24);  // 18 raw bytes in base64
  EXPECT_EQ(a.ClientFirstMessage(), first);                       // stable across calls
  EXPECT_NE(b.ClientFirstMessage(), first);
}

TEST(ScramExchangeTest, ClientEscapesUserName) {
  ScramClientExchange client("pw", "abc", "a=b,c");
  EXPECT_EQ(client.ClientFirstMessage(), "n,,n=a=3Db=2Cc,r=abc");
}

TEST(ScramExchangeTest, ServerNoncesAreFreshPerExchange) {
  ScramVerifier v = MakeScramVerifier("pw", "salt");
  ScramServerExchange a(v), b(v);
  Result<std::string> fa = a.HandleClientFirst("n,,n=,r=abc");
  Result<std::string> fb = b.HandleClientFirst("n,,n=,r=abc");
  ASSERT_TRUE(fa.ok() && fb.ok());
  EXPECT_TRUE(fa->starts_with("r=abc"));
  EXPECT_NE(*fa, *fb);
}

// Builds a client-final-message by hand (straight from RFC 5802 with libcrypto), so the server
// can be driven with gs2 headers and bindings our own client never sends.
std::string HandMadeClientFinal(std::string_view password, std::string_view salt, int iterations,
                                std::string_view auth_prefix, std::string_view without_proof) {
  unsigned char salted[32], client_key[32], stored[32], signature[32];
  unsigned int len = 0;
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()),
                    static_cast<int>(salt.size()), iterations, EVP_sha256(), 32, salted);
  HMAC(EVP_sha256(), salted, 32, reinterpret_cast<const unsigned char*>("Client Key"), 10,
       client_key, &len);
  EVP_Digest(client_key, 32, stored, &len, EVP_sha256(), nullptr);
  std::string auth = std::string(auth_prefix) + "," + std::string(without_proof);
  HMAC(EVP_sha256(), stored, 32, reinterpret_cast<const unsigned char*>(auth.data()), auth.size(),
       signature, &len);
  std::string proof(32, '\0');
  for (int i = 0; i < 32; ++i) proof[i] = static_cast<char>(client_key[i] ^ signature[i]);
  return std::string(without_proof) + ",p=" + Base64Encode(proof);
}

class ScramServerMessagesTest : public ::testing::Test {
 protected:
  static constexpr std::string_view kNonce = "abc" "SERVERNONCE";
  ScramVerifier verifier_ = MakeScramVerifier("pw", "salty", 16);
  ScramServerExchange server_{verifier_, "SERVERNONCE"};

  // Runs client-first, then returns a correctly signed client-final for `binding`.
  std::string Start(std::string_view client_first, std::string_view binding = "biws",
                    std::string_view extensions = "") {
    Result<std::string> server_first = server_.HandleClientFirst(client_first);
    EXPECT_TRUE(server_first.ok()) << server_first.status().ToString();
    std::string bare(client_first.substr(3));
    return HandMadeClientFinal("pw", "salty", 16, bare + "," + *server_first,
                               "c=" + std::string(binding) + ",r=" + std::string(kNonce) +
                                   std::string(extensions));
  }
};

TEST_F(ScramServerMessagesTest, HandMadeClientFinalIsAccepted) {
  Result<std::string> r = server_.HandleClientFinal(Start("n,,n=,r=abc"));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
}

TEST_F(ScramServerMessagesTest, AcceptsYFlagWithMatchingBinding) {
  Result<std::string> r = server_.HandleClientFinal(Start("y,,n=,r=abc", "eSws"));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
}

TEST_F(ScramServerMessagesTest, IgnoresUserNameAndExtensions) {
  Result<std::string> r =
      server_.HandleClientFinal(Start("n,,n=somebody,r=abc,x=ext", "biws", ",x=ext"));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
}

TEST_F(ScramServerMessagesTest, RejectsBindingThatDoesNotMatchFlag) {
  Result<std::string> r = server_.HandleClientFinal(Start("y,,n=,r=abc", "biws"));
  EXPECT_EQ(r.status().sqlstate(), "08P01");
}

TEST_F(ScramServerMessagesTest, RejectsBindingForNFlagWrittenAsY) {
  Result<std::string> r = server_.HandleClientFinal(Start("n,,n=,r=abc", "eSws"));
  EXPECT_EQ(r.status().sqlstate(), "08P01");
}

TEST_F(ScramServerMessagesTest, CallsOutOfOrderFail) {
  EXPECT_EQ(server_.HandleClientFinal("c=biws,r=abc,p=x").status().sqlstate(), "08P01");
  // The exchange is finished after an error; even a valid first message is refused.
  EXPECT_FALSE(server_.HandleClientFirst("n,,n=,r=abc").ok());
}

TEST_F(ScramServerMessagesTest, SecondClientFirstFails) {
  ASSERT_TRUE(server_.HandleClientFirst("n,,n=,r=abc").ok());
  EXPECT_FALSE(server_.HandleClientFirst("n,,n=,r=abc").ok());
}

TEST_F(ScramServerMessagesTest, NothingAfterSuccess) {
  std::string final_message = Start("n,,n=,r=abc");
  ASSERT_TRUE(server_.HandleClientFinal(final_message).ok());
  EXPECT_FALSE(server_.HandleClientFinal(final_message).ok());
}

class ScramBadClientFirstTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ScramBadClientFirstTest, IsRejectedAsProtocolViolation) {
  ScramServerExchange server(MakeScramVerifier("pw", "salt", 16), "SRV");
  Result<std::string> r = server.HandleClientFirst(GetParam());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().sqlstate(), "08P01");
  EXPECT_FALSE(server.HandleClientFinal("c=biws,r=abcSRV,p=x").ok());
}

INSTANTIATE_TEST_SUITE_P(
    Table, ScramBadClientFirstTest,
    ::testing::Values(std::string(""), "\0"s, std::string("n"), std::string("n,"),
                      std::string("n,,"), std::string("x,,n=,r=abc"),
                      std::string("p=tls-server-end-point,,n=,r=abc"),
                      std::string("n,a=bob,n=,r=abc"), std::string("n;,n=,r=abc"),
                      std::string("n,,r=abc"), std::string("n,,n="), std::string("n,,n=,r="),
                      std::string("n,,n=,r=abc,"), std::string("n,,n=,r=a\x01" "c"),
                      std::string("n,,n=,r=a c"), "n,,n=,r=ab\0c"s,
                      std::string("n,,m=ext,n=,r=abc"), std::string("n,,n=,x=1,r=abc"),
                      std::string("n,,n=,r=abc,=x"), std::string("n,,n=,r=abc,1=x"),
                      std::string("n,,n=,r=abc,xx"), std::string(100000, 'n')));

class ScramBadClientFinalTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ScramBadClientFinalTest, IsRejectedAsProtocolViolation) {
  ScramServerExchange server(MakeScramVerifier("pw", "salt", 16), "SRV");
  ASSERT_TRUE(server.HandleClientFirst("n,,n=,r=abc").ok());
  Result<std::string> r = server.HandleClientFinal(GetParam());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().sqlstate(), "08P01") << r.status().ToString();
}

const std::string kProof = "p=" + Base64Encode(std::string(32, 'x'));

INSTANTIATE_TEST_SUITE_P(
    Table, ScramBadClientFinalTest,
    ::testing::Values(std::string(""), std::string("c=biws"), std::string("c=biws,r=abcSRV"),
                      std::string("c=biws,r=abcSRV,"), std::string("c=biws,r=abcSRV,p="),
                      "c=biws,r=abc," + kProof,                        // nonce without server part
                      "c=biws,r=abcSRVx," + kProof,                    // longer nonce
                      "c=biws,r=xbcSRV," + kProof,                     // wrong nonce
                      "r=abcSRV,c=biws," + kProof,                     // order
                      "c=eSws,r=abcSRV," + kProof,                     // binding of another flag
                      "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=abcSRV," + kProof,
                      "c=,r=abcSRV," + kProof, "c=biws,r=abcSRV,p=!!!!",
                      "c=biws,r=abcSRV,p=" + Base64Encode(std::string(31, 'x')),
                      "c=biws,r=abcSRV,p=" + Base64Encode(std::string(33, 'x')),
                      "c=biws,r=abcSRV," + kProof + ",x=after",
                      "c=biws,r=abcSRV," + kProof + ",",
                      "c=biws,r=abcSRV,\0"s + kProof, "c=biws,r=abcSRV,x" + kProof));

// ---- client side against malformed servers ----

class ScramBadServerFirstTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ScramBadServerFirstTest, IsRejectedAsProtocolViolation) {
  ScramClientExchange client("pw", "abc");
  Result<std::string> r = client.HandleServerFirst(GetParam());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().sqlstate(), "08P01") << r.status().ToString();
  EXPECT_FALSE(client.HandleServerFinal("v=" + Base64Encode(std::string(32, 'x'))).ok());
}

INSTANTIATE_TEST_SUITE_P(
    Table, ScramBadServerFirstTest,
    ::testing::Values(std::string(""), "\0"s, std::string("r=abc,s=c2FsdA==,i=1"),
                      std::string("r=xyzS,s=c2FsdA==,i=1"), std::string("r=abS,s=c2FsdA==,i=1"),
                      std::string("r=abcS\x01,s=c2FsdA==,i=1"), std::string("r=abcS,i=1,s=c2FsdA=="),
                      std::string("s=c2FsdA==,r=abcS,i=1"), std::string("r=abcS,s=c2FsdA=,i=1"),
                      std::string("r=abcS,s=!!!!,i=1"), std::string("r=abcS,s=,i=1"),
                      std::string("r=abcS,s=c2FsdA=="), std::string("r=abcS,s=c2FsdA==,i="),
                      std::string("r=abcS,s=c2FsdA==,i=0"), std::string("r=abcS,s=c2FsdA==,i=-1"),
                      std::string("r=abcS,s=c2FsdA==,i=+5"), std::string("r=abcS,s=c2FsdA==,i=4x"),
                      std::string("r=abcS,s=c2FsdA==,i=10000001"),
                      std::string("r=abcS,s=c2FsdA==,i=2147483648"),
                      std::string("r=abcS,s=c2FsdA==,i=99999999999999999999999"),
                      std::string("r=abcS,s=c2FsdA==,i=1,"),
                      std::string("r=abcS,s=c2FsdA==,i=1,x=ext"),
                      std::string("m=ext,r=abcS,s=c2FsdA==,i=1"),
                      "r=abcS,s=c2FsdA==,i=1\0"s));

TEST(ScramClientTest, AcceptsMinimalValidServerFirst) {
  ScramClientExchange client("pw", "abc");
  Result<std::string> r = client.HandleServerFirst("r=abcS,s=c2FsdA==,i=1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->starts_with("c=biws,r=abcS,p="));
}

class ScramBadServerFinalTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ScramBadServerFinalTest, IsRejected) {
  ScramClientExchange client("pencil", std::string(kRfcClientNonce), "user");
  ASSERT_TRUE(client.HandleServerFirst(kRfcServerFirst).ok());
  EXPECT_FALSE(client.HandleServerFinal(GetParam()).ok());
  // Finished after an error: even the right signature is refused now.
  EXPECT_FALSE(client.HandleServerFinal(kRfcServerFinal).ok());
}

INSTANTIATE_TEST_SUITE_P(
    Table, ScramBadServerFinalTest,
    ::testing::Values(std::string(""), std::string("v="), std::string("v=!!!!"), std::string("x=1"),
                      std::string("v"), "v=" + Base64Encode(std::string(31, 'x')),
                      std::string(kRfcServerFinal) + ",x=1", std::string(kRfcServerFinal) + ",",
                      std::string(kRfcServerFinal) + "\0"s,
                      std::string("e=invalid-proof"), std::string("e=")));

TEST(ScramClientTest, ServerErrorIsReportedAsAuthFailure) {
  ScramClientExchange client("pencil", std::string(kRfcClientNonce), "user");
  ASSERT_TRUE(client.HandleServerFirst(kRfcServerFirst).ok());
  Status s = client.HandleServerFinal("e=invalid-proof");
  EXPECT_EQ(s.sqlstate(), "28P01");
  EXPECT_NE(s.message().find("invalid-proof"), std::string::npos);
}

TEST(ScramClientTest, ServerFinalBeforeServerFirstFails) {
  ScramClientExchange client("pencil", std::string(kRfcClientNonce), "user");
  EXPECT_EQ(client.HandleServerFinal(kRfcServerFinal).sqlstate(), "08P01");
}

}  // namespace
}  // namespace pgtenant::protocol
