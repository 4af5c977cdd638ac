#include "protocol/md5_auth.h"

#include <gtest/gtest.h>

#include <array>
#include <cctype>

namespace pgtenant::protocol {
namespace {

// printf secretapp | md5sum  -> 6a422f785c9e20873908ce25d1736ae2
constexpr std::string_view kSecretAppHash = "md56a422f785c9e20873908ce25d1736ae2";
// md5("6a422f785c9e20873908ce25d1736ae2" + "\x01\x02\x03\x04"), computed with Python hashlib.
constexpr std::string_view kSecretAppResponse = "md5911f527656472583a006e7727877b33e";
constexpr std::array<uint8_t, 4> kSalt = {1, 2, 3, 4};

TEST(Md5PasswordHashTest, MatchesKnownValue) {
  EXPECT_EQ(Md5PasswordHash("secret", "app"), kSecretAppHash);
}

TEST(Md5PasswordHashTest, EmptyInputsHashTheEmptyString) {
  EXPECT_EQ(Md5PasswordHash("", ""), "md5d41d8cd98f00b204e9800998ecf8427e");
}

TEST(Md5PasswordHashTest, UserIsPartOfTheHash) {
  EXPECT_NE(Md5PasswordHash("secret", "app"), Md5PasswordHash("secret", "app2"));
  // Only the concatenation counts, exactly as in Postgres.
  EXPECT_EQ(Md5PasswordHash("secreta", "pp"), kSecretAppHash);
}

TEST(IsMd5HashTest, AcceptsOnlyPrefixPlus32LowercaseHex) {
  EXPECT_TRUE(IsMd5Hash(kSecretAppHash));
  EXPECT_TRUE(IsMd5Hash(Md5PasswordHash("x", "y")));
  EXPECT_FALSE(IsMd5Hash(""));
  EXPECT_FALSE(IsMd5Hash("md5"));
  EXPECT_FALSE(IsMd5Hash("md56a422f785c9e20873908ce25d1736ae"));    // 31 hex
  EXPECT_FALSE(IsMd5Hash("md56a422f785c9e20873908ce25d1736ae2f"));  // 33 hex
  EXPECT_FALSE(IsMd5Hash("md56A422F785C9E20873908CE25D1736AE2"));   // uppercase
  EXPECT_FALSE(IsMd5Hash("MD56a422f785c9e20873908ce25d1736ae2"));
  EXPECT_FALSE(IsMd5Hash("md46a422f785c9e20873908ce25d1736ae2"));
  EXPECT_FALSE(IsMd5Hash("md56a422f785c9e20873908ce25d1736aeg"));   // non-hex
  EXPECT_FALSE(IsMd5Hash("6a422f785c9e20873908ce25d1736ae2abc"));   // right length, no prefix
  EXPECT_FALSE(IsMd5Hash("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$a:b"));
}

TEST(Md5SaltedResponseTest, MatchesKnownValue) {
  EXPECT_EQ(Md5SaltedResponse(kSecretAppHash, kSalt), kSecretAppResponse);
}

TEST(Md5SaltedResponseTest, SaltChangesTheResponse) {
  std::array<uint8_t, 4> other = {1, 2, 3, 5};
  std::string a = Md5SaltedResponse(kSecretAppHash, kSalt);
  std::string b = Md5SaltedResponse(kSecretAppHash, other);
  EXPECT_NE(a, b);
  EXPECT_TRUE(IsMd5Hash(b));
}

TEST(Md5SaltedResponseTest, SaltMayContainZeroAndHighBytes) {
  std::array<uint8_t, 4> salt = {0, 0xff, 0, 0x80};
  std::string r = Md5SaltedResponse(kSecretAppHash, salt);
  EXPECT_TRUE(IsMd5Hash(r));
  EXPECT_NE(r, Md5SaltedResponse(kSecretAppHash, std::array<uint8_t, 4>{0, 0, 0, 0}));
}

TEST(Md5SaltedResponseTest, NonHashStoredValueGivesEmpty) {
  EXPECT_EQ(Md5SaltedResponse("", kSalt), "");
  EXPECT_EQ(Md5SaltedResponse("secret", kSalt), "");
  EXPECT_EQ(Md5SaltedResponse("md56A422F785C9E20873908CE25D1736AE2", kSalt), "");
}

TEST(Md5VerifyTest, AcceptsTheRightResponse) {
  EXPECT_TRUE(Md5Verify(kSecretAppHash, kSalt, kSecretAppResponse));
  // Client side and server side agree for an arbitrary password.
  std::string stored = Md5PasswordHash("pa ss,word", "tenant_user");
  EXPECT_TRUE(Md5Verify(stored, kSalt, Md5SaltedResponse(stored, kSalt)));
}

TEST(Md5VerifyTest, RejectsWrongResponses) {
  std::string response(kSecretAppResponse);
  EXPECT_FALSE(Md5Verify(kSecretAppHash, std::array<uint8_t, 4>{4, 3, 2, 1}, response));
  EXPECT_FALSE(Md5Verify(Md5PasswordHash("wrong", "app"), kSalt, response));
  EXPECT_FALSE(Md5Verify(kSecretAppHash, kSalt, ""));
  EXPECT_FALSE(Md5Verify(kSecretAppHash, kSalt, "md5"));
  EXPECT_FALSE(Md5Verify(kSecretAppHash, kSalt, response.substr(0, 34)));
  EXPECT_FALSE(Md5Verify(kSecretAppHash, kSalt, response + "0"));
  std::string flipped = response;
  flipped.back() = flipped.back() == 'e' ? 'f' : 'e';
  EXPECT_FALSE(Md5Verify(kSecretAppHash, kSalt, flipped));
  std::string upper = response;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_FALSE(Md5Verify(kSecretAppHash, kSalt, upper));
  // The stored hash itself (a "pass-the-hash" without salting) is not a valid response.
  EXPECT_FALSE(Md5Verify(kSecretAppHash, kSalt, kSecretAppHash));
}

TEST(Md5VerifyTest, NonHashStoredValueNeverVerifies) {
  EXPECT_FALSE(Md5Verify("", kSalt, ""));
  EXPECT_FALSE(Md5Verify("secret", kSalt, Md5SaltedResponse(kSecretAppHash, kSalt)));
}

}  // namespace
}  // namespace pgtenant::protocol
