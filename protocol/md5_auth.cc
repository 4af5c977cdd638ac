#include "protocol/md5_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>

namespace pgtenant::protocol {
namespace {

constexpr std::string_view kPrefix = "md5";
constexpr size_t kHexLength = 32;

// "md5" + hex(md5(data)).
std::string Md5Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_md5(), nullptr) != 1 || len != 16) {
    // Only a provider set-up without MD5 (FIPS mode) gets here; an empty or fake hash would
    // silently lock out or let in users, so stop loudly instead.
    std::fprintf(stderr, "pgtenant: fatal: OpenSSL MD5 unavailable\n");
    std::abort();
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(kPrefix);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

}  // namespace

std::string Md5PasswordHash(std::string_view password, std::string_view user) {
  std::string input(password);
  input.append(user);
  std::string hash = Md5Hex(input);
  OPENSSL_cleanse(input.data(), input.size());
  return hash;
}

bool IsMd5Hash(std::string_view text) {
  if (text.size() != kPrefix.size() + kHexLength || !text.starts_with(kPrefix)) return false;
  for (char c : text.substr(kPrefix.size())) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string Md5SaltedResponse(std::string_view stored_md5_hash, std::span<const uint8_t, 4> salt) {
  if (!IsMd5Hash(stored_md5_hash)) return "";
  std::string input(stored_md5_hash.substr(kPrefix.size()));
  input.append(reinterpret_cast<const char*>(salt.data()), salt.size());
  return Md5Hex(input);
}

bool Md5Verify(std::string_view stored_md5_hash, std::span<const uint8_t, 4> salt,
               std::string_view client_response) {
  std::string expected = Md5SaltedResponse(stored_md5_hash, salt);
  // The length is public (always 35 for a real client), so only the bytes need constant time.
  if (expected.empty() || client_response.size() != expected.size()) return false;
  return CRYPTO_memcmp(expected.data(), client_response.data(), expected.size()) == 0;
}

}  // namespace pgtenant::protocol
