// SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL speaks it: stored verifiers, the server
// side of the exchange (clients logging in to pgtenant) and the client side (pgtenant logging in
// to a backend with a plaintext password).
//
// Only the mechanism "SCRAM-SHA-256" is offered; channel binding (-PLUS) is never advertised,
// so a client that asks for it ("p=...") is refused, while "n" and "y" gs2 flags are accepted.
// As in Postgres, the user name inside client-first-message is ignored (the startup packet
// already named the user) and may be empty.
//
// Passwords get only the ASCII part of SASLprep: they are used byte for byte. That is exactly
// what Postgres does for ASCII passwords and for passwords that are not valid UTF-8; a non-ASCII
// UTF-8 password that NFKC normalisation would change derives a different verifier than
// Postgres's.
//
// Errors: malformed messages and out-of-order calls give 08P01 (protocol_violation); a wrong
// password gives 28P01 (invalid_password). After any error an exchange object is finished and
// every further call fails.
//
// Thread-safety: the free functions are safe from any thread. Exchange objects hold per-login
// state and belong to the one connection (loop thread) that drives them.
//
// Cost: deriving keys runs PBKDF2 with the verifier's iteration count (4096 by default, a few
// milliseconds); ScramClientExchange::HandleServerFirst refuses counts above
// kMaxScramIterations so a hostile backend cannot stall the event loop.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/status.h"

namespace pgtenant::protocol {

inline constexpr int kDefaultScramIterations = 4096;      // Postgres's scram_iterations default
inline constexpr int kMaxScramIterations = 10'000'000;    // ceiling accepted from a backend
inline constexpr size_t kScramSaltLength = 16;            // Postgres's SCRAM_DEFAULT_SALT_LEN
inline constexpr size_t kScramNonceRawLength = 18;        // Postgres's SCRAM_RAW_NONCE_LEN
inline constexpr std::string_view kScramMechanism = "SCRAM-SHA-256";

struct ScramVerifier {
  int iterations = 0;
  std::string salt;  // raw bytes
  std::array<uint8_t, 32> stored_key{};
  std::array<uint8_t, 32> server_key{};
};

// Parses Postgres's stored form
// "SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>".
// Iterations must be a positive decimal int, the salt non-empty, both keys exactly 32 bytes.
Result<ScramVerifier> ParseScramVerifier(std::string_view text);
bool IsScramVerifier(std::string_view text);

// Derives the verifier Postgres would store for `password`.
// REQUIRES: iterations >= 1 (smaller values are treated as 1).
ScramVerifier MakeScramVerifier(std::string_view password, std::string_view salt,
                                int iterations = kDefaultScramIterations);
// Same with a fresh random salt of kScramSaltLength bytes, as CREATE ROLE ... PASSWORD does.
ScramVerifier MakeScramVerifierWithRandomSalt(std::string_view password,
                                              int iterations = kDefaultScramIterations);

// A verifier no password matches, for users that do not exist: running the exchange against it
// (and failing with 28P01 at the end) hides which user names exist, as Postgres's mock
// authentication does. The salt is derived from `user` and `server_secret` (a random value the
// caller keeps for the process lifetime) so repeated probes of one name see the same salt.
ScramVerifier MakeMockScramVerifier(std::string_view user, std::string_view server_secret);

// The same text Postgres stores in pg_authid.rolpassword; ParseScramVerifier inverts it.
std::string ScramVerifierToString(const ScramVerifier& verifier);

// `n` bytes from OpenSSL's CSPRNG. If the CSPRNG fails the process aborts: handing out
// predictable nonces or salts would be worse than stopping.
std::string RandomBytes(size_t n);
// `n` random bytes as 2n lower-case hex digits (names that must not be guessed).
std::string RandomHex(size_t n);

// Server side of one SCRAM login. Call HandleClientFirst with the SASLInitialResponse data,
// send its result as AuthenticationSASLContinue; call HandleClientFinal with the SASLResponse
// data and send its result as AuthenticationSASLFinal.
class ScramServerExchange {
 public:
  explicit ScramServerExchange(const ScramVerifier& verifier);
  // Test hook: a fixed server nonce. REQUIRES: non-empty, printable ASCII without ','.
  ScramServerExchange(const ScramVerifier& verifier, std::string server_nonce);

  // Returns server-first-message "r=<client+server nonce>,s=<salt>,i=<iterations>".
  Result<std::string> HandleClientFirst(std::string_view client_first_message);
  // Checks the channel binding ("c=biws" / "c=eSws", matching the gs2 flag), the nonce and
  // (in constant time) the proof. Returns server-final-message "v=<server signature>".
  // A wrong proof gives Status::AuthFailed (28P01).
  Result<std::string> HandleClientFinal(std::string_view client_final_message);

 private:
  enum class State { kExpectClientFirst, kExpectClientFinal, kDone };
  Status ParseClientFirst(std::string_view message);

  ScramVerifier verifier_;
  std::string server_nonce_;
  State state_ = State::kExpectClientFirst;
  std::string gs2_header_;         // "n,," or "y,,", echoed back in c= by the client
  std::string client_first_bare_;  // part of AuthMessage
  std::string server_first_;       // part of AuthMessage
  std::string combined_nonce_;
};

// Client side of one SCRAM login with a plaintext password (pgtenant -> backend).
class ScramClientExchange {
 public:
  explicit ScramClientExchange(std::string password);
  // Test hook: a fixed client nonce and the user name to put in client-first-message (libpq
  // sends it empty). REQUIRES: nonce non-empty, printable ASCII without ','.
  ScramClientExchange(std::string password, std::string client_nonce, std::string user = "");

  // "n,,n=<user>,r=<nonce>"; the same string on every call.
  std::string ClientFirstMessage() const;
  // Validates server-first-message (nonce extends ours, salt decodes and is non-empty,
  // 0 < iterations <= kMaxScramIterations, nothing after) and returns client-final-message.
  Result<std::string> HandleServerFirst(std::string_view server_first_message);
  // Checks the server signature "v=..."; "e=<reason>" becomes Status::AuthFailed (28P01),
  // as does a signature that does not match (the server does not know the password).
  Status HandleServerFinal(std::string_view server_final_message);

 private:
  enum class State { kExpectServerFirst, kExpectServerFinal, kDone };

  std::string password_;
  std::string client_nonce_;
  std::string client_first_bare_;
  State state_ = State::kExpectServerFirst;
  std::array<uint8_t, 32> expected_server_signature_{};
};

}  // namespace pgtenant::protocol
