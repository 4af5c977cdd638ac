// PostgreSQL's "md5" password method: the hash pg_authid stores and the salted response a
// client sends for AuthenticationMD5Password.
//
//   stored   = "md5" + hex(md5(password + user))
//   response = "md5" + hex(md5(hex-part-of-stored + 4-byte salt))
//
// The proxy uses both directions: verifying a client against a stored hash, and answering a
// backend's challenge with Md5SaltedResponse(Md5PasswordHash(password, user), salt).
//
// Pure functions, no state: safe from any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace pgtenant::protocol {

// "md5" followed by 32 lowercase hex digits: what pg_authid stores.
std::string Md5PasswordHash(std::string_view password, std::string_view user);

// True for exactly "md5" + 32 lowercase hex digits (Postgres's own test for an md5 secret).
bool IsMd5Hash(std::string_view text);

// The response to AuthenticationMD5Password. If `stored_md5_hash` is not IsMd5Hash, returns ""
// (which no Md5Verify accepts) rather than hashing garbage.
std::string Md5SaltedResponse(std::string_view stored_md5_hash, std::span<const uint8_t, 4> salt);

// True if `client_response` is the salted response for `stored_md5_hash`. The comparison takes
// the same time wherever the first differing byte is. False if the stored hash is not IsMd5Hash.
bool Md5Verify(std::string_view stored_md5_hash, std::span<const uint8_t, 4> salt,
               std::string_view client_response);

}  // namespace pgtenant::protocol
