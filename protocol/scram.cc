#include "protocol/scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>

#include "protocol/base64.h"

namespace pgtenant::protocol {
namespace {

using Key = std::array<uint8_t, 32>;

// libcrypto only fails these calls on allocation failure or a broken provider set-up; the
// fixed-signature API has no way to report that, and continuing with zeroed keys would be a
// security bug, so stop.
[[noreturn]] void CryptoFailure(const char* what) {
  std::fprintf(stderr, "pgtenant: fatal: OpenSSL %s failed\n", what);
  std::abort();
}

Key HmacSha256(std::span<const uint8_t> key, std::string_view data) {
  Key out;
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(),
           &len) == nullptr ||
      len != out.size()) {
    CryptoFailure("HMAC-SHA-256");
  }
  return out;
}

Key Sha256(std::span<const uint8_t> data) {
  Key out;
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != out.size()) {
    CryptoFailure("SHA-256");
  }
  return out;
}

// Hi() of RFC 5802 is PBKDF2 with one output block.
Key SaltedPassword(std::string_view password, std::string_view salt, int iterations) {
  Key out;
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), iterations, EVP_sha256(),
                        static_cast<int>(out.size()), out.data()) != 1) {
    CryptoFailure("PBKDF2");
  }
  return out;
}

struct DerivedKeys {
  Key client_key, stored_key, server_key;
};

DerivedKeys DeriveKeys(std::string_view password, std::string_view salt, int iterations) {
  Key salted = SaltedPassword(password, salt, iterations < 1 ? 1 : iterations);
  DerivedKeys keys;
  keys.client_key = HmacSha256(salted, "Client Key");
  keys.stored_key = Sha256(keys.client_key);
  keys.server_key = HmacSha256(salted, "Server Key");
  OPENSSL_cleanse(salted.data(), salted.size());
  return keys;
}

bool ConstantTimeEqual(const Key& a, const Key& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// Decodes base64 that must hold exactly one 32-byte key (a proof, signature or stored key).
bool DecodeKey(std::string_view b64, Key* out) {
  std::optional<std::string> raw = Base64Decode(b64);
  if (!raw || raw->size() != out->size()) return false;
  std::copy(raw->begin(), raw->end(), out->begin());
  return true;
}

// RFC 5802 "printable": %x21-2B / %x2D-7E, i.e. visible ASCII except ','.
bool IsValidNonce(std::string_view nonce) {
  if (nonce.empty()) return false;
  for (char c : nonce) {
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  }
  return true;
}

bool ParseIterations(std::string_view text, int64_t max, int* out) {
  int64_t v = 0;
  if (text.empty() || text[0] < '0' || text[0] > '9') return false;  // no sign, no space
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < 1 || v > max) return false;
  *out = static_cast<int>(v);
  return true;
}

// SASLname escaping of RFC 5802 section 5.1.
std::string EscapeSaslName(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c == '=') out += "=3D";
    else if (c == ',') out += "=2C";
    else out += c;
  }
  return out;
}

// Walks the comma-separated "x=value" attributes of a SCRAM message. Values are views into
// the message. A trailing ',' leaves an empty attribute pending, so it is not "at end".
class AttrReader {
 public:
  explicit AttrReader(std::string_view text) : rest_(text), done_(text.empty()) {}
  bool AtEnd() const { return done_; }

  bool Next(char* attr, std::string_view* value) {
    if (done_) return false;
    size_t comma = rest_.find(',');
    std::string_view field = rest_.substr(0, comma);
    if (comma == std::string_view::npos) {
      done_ = true;
    } else {
      rest_.remove_prefix(comma + 1);
    }
    if (field.size() < 2 || field[1] != '=') return false;
    bool letter = (field[0] >= 'a' && field[0] <= 'z') || (field[0] >= 'A' && field[0] <= 'Z');
    if (!letter) return false;
    *attr = field[0];
    *value = field.substr(2);
    return true;
  }
  bool Expect(char attr, std::string_view* value) {
    char got = 0;
    return Next(&got, value) && got == attr;
  }

 private:
  std::string_view rest_;
  bool done_;
};

Status Malformed(std::string_view what) {
  return Status::ProtocolViolation("malformed SCRAM message (" + std::string(what) + ")");
}

// Messages arrive from length-prefixed packets; an embedded NUL would make C-string based
// peers (Postgres, libpq) see a different message than we do.
Status CheckMessageBytes(std::string_view message) {
  if (message.empty()) return Malformed("empty message");
  if (message.find('\0') != std::string_view::npos) return Malformed("embedded NUL byte");
  return Status::Ok();
}

Status OutOfOrder() {
  return Status::ProtocolViolation("SCRAM message out of sequence for this exchange");
}

}  // namespace

// ---- Verifiers ----

Result<ScramVerifier> ParseScramVerifier(std::string_view text) {
  // The verifier text is secret-equivalent, so errors say what is wrong but never echo it.
  auto bad = [](const char* why) {
    return Status::InvalidParameter(std::string("invalid SCRAM-SHA-256 verifier: ") + why);
  };
  constexpr std::string_view kPrefix = "SCRAM-SHA-256$";
  if (!text.starts_with(kPrefix)) return bad("must start with \"SCRAM-SHA-256$\"");
  text.remove_prefix(kPrefix.size());
  // base64 never contains ':' or '$', so the separators can be found by search.
  size_t colon1 = text.find(':');
  size_t dollar = text.find('$', colon1 == std::string_view::npos ? 0 : colon1);
  size_t colon2 = text.find(':', dollar == std::string_view::npos ? 0 : dollar);
  if (colon1 == std::string_view::npos || dollar == std::string_view::npos ||
      colon2 == std::string_view::npos) {
    return bad("expected <iterations>:<salt>$<StoredKey>:<ServerKey>");
  }
  ScramVerifier v;
  if (!ParseIterations(text.substr(0, colon1), INT32_MAX, &v.iterations)) {
    return bad("iteration count is not a positive integer");
  }
  std::optional<std::string> salt = Base64Decode(text.substr(colon1 + 1, dollar - colon1 - 1));
  if (!salt || salt->empty()) return bad("salt is not valid non-empty base64");
  v.salt = std::move(*salt);
  if (!DecodeKey(text.substr(dollar + 1, colon2 - dollar - 1), &v.stored_key)) {
    return bad("StoredKey is not 32 bytes of base64");
  }
  if (!DecodeKey(text.substr(colon2 + 1), &v.server_key)) {
    return bad("ServerKey is not 32 bytes of base64");
  }
  return v;
}

bool IsScramVerifier(std::string_view text) { return ParseScramVerifier(text).ok(); }

ScramVerifier MakeScramVerifier(std::string_view password, std::string_view salt,
                                int iterations) {
  DerivedKeys keys = DeriveKeys(password, salt, iterations);
  OPENSSL_cleanse(keys.client_key.data(), keys.client_key.size());
  return ScramVerifier{iterations < 1 ? 1 : iterations, std::string(salt), keys.stored_key,
                       keys.server_key};
}

ScramVerifier MakeScramVerifierWithRandomSalt(std::string_view password, int iterations) {
  return MakeScramVerifier(password, RandomBytes(kScramSaltLength), iterations);
}

ScramVerifier MakeMockScramVerifier(std::string_view user, std::string_view server_secret) {
  std::string seed(user);
  seed.append(server_secret);
  Key digest = Sha256(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(seed.data()),
                                               seed.size()));
  ScramVerifier v;
  v.iterations = kDefaultScramIterations;
  v.salt.assign(reinterpret_cast<const char*>(digest.data()), kScramSaltLength);
  // Random keys: nobody knows a ClientKey whose hash is this StoredKey.
  std::string random = RandomBytes(v.stored_key.size() + v.server_key.size());
  std::copy_n(random.begin(), v.stored_key.size(), v.stored_key.begin());
  std::copy_n(random.begin() + v.stored_key.size(), v.server_key.size(), v.server_key.begin());
  return v;
}

std::string ScramVerifierToString(const ScramVerifier& v) {
  return "SCRAM-SHA-256$" + std::to_string(v.iterations) + ":" + Base64Encode(v.salt) + "$" +
         Base64Encode(v.stored_key) + ":" + Base64Encode(v.server_key);
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    CryptoFailure("RAND_bytes");
  }
  return out;
}

std::string RandomHex(size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : RandomBytes(n)) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

// ---- Server side ----

ScramServerExchange::ScramServerExchange(const ScramVerifier& verifier)
    : ScramServerExchange(verifier, Base64Encode(RandomBytes(kScramNonceRawLength))) {}

ScramServerExchange::ScramServerExchange(const ScramVerifier& verifier, std::string server_nonce)
    : verifier_(verifier), server_nonce_(std::move(server_nonce)) {}

Status ScramServerExchange::ParseClientFirst(std::string_view message) {
  // gs2-header: cbind-flag "," [authzid] ","
  if (message[0] == 'p') {
    return Status::ProtocolViolation(
        "client selected SCRAM-SHA-256-PLUS channel binding, which was not offered");
  }
  if (message[0] != 'n' && message[0] != 'y') return Malformed("unexpected channel-binding flag");
  if (message.size() < 3 || message[1] != ',') return Malformed("comma expected after flag");
  if (message[2] == 'a') {
    return Status::ProtocolViolation(
        "client uses SCRAM authorization identity, which is not supported");
  }
  if (message[2] != ',') return Malformed("unexpected attribute in gs2 header");
  gs2_header_ = std::string(message.substr(0, 3));
  client_first_bare_ = std::string(message.substr(3));

  AttrReader reader(client_first_bare_);
  std::string_view user, nonce, ignored;
  if (client_first_bare_.starts_with("m=")) {
    return Status::ProtocolViolation("client requires an unsupported SCRAM extension");
  }
  // The user name is ignored, as Postgres does: the startup packet already named the role.
  if (!reader.Expect('n', &user)) return Malformed("user name attribute expected");
  if (!reader.Expect('r', &nonce)) return Malformed("nonce attribute expected");
  if (!IsValidNonce(nonce)) return Malformed("nonce is empty or not printable");
  char attr = 0;
  while (!reader.AtEnd()) {  // optional extensions, ignored
    if (!reader.Next(&attr, &ignored)) return Malformed("invalid attribute");
  }
  combined_nonce_ = std::string(nonce) + server_nonce_;
  return Status::Ok();
}

Result<std::string> ScramServerExchange::HandleClientFirst(std::string_view message) {
  // Any failure below, including this one, ends the exchange.
  bool in_order = state_ == State::kExpectClientFirst;
  state_ = State::kDone;
  if (!in_order) return OutOfOrder();
  if (Status s = CheckMessageBytes(message); !s.ok()) return s;
  if (Status s = ParseClientFirst(message); !s.ok()) return s;
  server_first_ = "r=" + combined_nonce_ + ",s=" + Base64Encode(verifier_.salt) +
                  ",i=" + std::to_string(verifier_.iterations);
  state_ = State::kExpectClientFinal;
  return server_first_;
}

Result<std::string> ScramServerExchange::HandleClientFinal(std::string_view message) {
  // Any failure below, including this one, ends the exchange.
  bool in_order = state_ == State::kExpectClientFinal;
  state_ = State::kDone;
  if (!in_order) return OutOfOrder();
  if (Status s = CheckMessageBytes(message); !s.ok()) return s;
  AttrReader reader(message);
  std::string_view binding, nonce, value;
  if (!reader.Expect('c', &binding)) return Malformed("channel-binding attribute expected");
  // Without -PLUS the binding data is just the gs2 header the client sent first.
  if (binding != Base64Encode(gs2_header_)) {
    return Status::ProtocolViolation("unexpected SCRAM channel-binding attribute");
  }
  if (!reader.Expect('r', &nonce)) return Malformed("nonce attribute expected");
  if (nonce != combined_nonce_) return Status::ProtocolViolation("SCRAM nonce mismatch");
  char attr = 0;
  do {  // extensions may precede the proof, which must come last
    if (!reader.Next(&attr, &value)) return Malformed("proof attribute expected");
  } while (attr != 'p');
  if (!reader.AtEnd()) return Malformed("garbage after proof");
  Key proof;
  if (!DecodeKey(value, &proof)) return Malformed("proof is not 32 bytes of base64");

  size_t proof_field = static_cast<size_t>(value.data() - message.data()) - 2;  // "p="
  std::string auth_message = client_first_bare_ + "," + server_first_ + "," +
                             std::string(message.substr(0, proof_field - 1));  // drop ','
  Key client_key = HmacSha256(verifier_.stored_key, auth_message);  // ClientSignature
  for (size_t i = 0; i < client_key.size(); ++i) client_key[i] ^= proof[i];
  if (!ConstantTimeEqual(Sha256(client_key), verifier_.stored_key)) {
    return Status::AuthFailed("password authentication failed");
  }
  return "v=" + Base64Encode(HmacSha256(verifier_.server_key, auth_message));
}

// ---- Client side ----

ScramClientExchange::ScramClientExchange(std::string password)
    : ScramClientExchange(std::move(password), Base64Encode(RandomBytes(kScramNonceRawLength))) {}

ScramClientExchange::ScramClientExchange(std::string password, std::string client_nonce,
                                         std::string user)
    : password_(std::move(password)),
      client_nonce_(std::move(client_nonce)),
      client_first_bare_("n=" + EscapeSaslName(user) + ",r=" + client_nonce_) {}

std::string ScramClientExchange::ClientFirstMessage() const { return "n,," + client_first_bare_; }

Result<std::string> ScramClientExchange::HandleServerFirst(std::string_view message) {
  // Any failure below, including this one, ends the exchange.
  bool in_order = state_ == State::kExpectServerFirst;
  state_ = State::kDone;
  if (!in_order) return OutOfOrder();
  if (Status s = CheckMessageBytes(message); !s.ok()) return s;
  AttrReader reader(message);
  std::string_view nonce, salt_b64, iterations_text;
  if (!reader.Expect('r', &nonce)) return Malformed("nonce attribute expected");
  if (!IsValidNonce(nonce) || nonce.size() <= client_nonce_.size() ||
      !nonce.starts_with(client_nonce_)) {
    return Status::ProtocolViolation("SCRAM nonce mismatch in server-first-message");
  }
  if (!reader.Expect('s', &salt_b64)) return Malformed("salt attribute expected");
  std::optional<std::string> salt = Base64Decode(salt_b64);
  if (!salt || salt->empty()) return Malformed("salt is not valid non-empty base64");
  if (!reader.Expect('i', &iterations_text)) return Malformed("iteration attribute expected");
  int iterations = 0;
  if (!ParseIterations(iterations_text, kMaxScramIterations, &iterations)) {
    return Malformed("iteration count must be between 1 and 10000000");
  }
  if (!reader.AtEnd()) return Malformed("garbage at end of server-first-message");

  DerivedKeys keys = DeriveKeys(password_, *salt, iterations);
  std::string without_proof = "c=biws,r=" + std::string(nonce);
  std::string auth_message =
      client_first_bare_ + "," + std::string(message) + "," + without_proof;
  Key proof = HmacSha256(keys.stored_key, auth_message);  // ClientSignature
  for (size_t i = 0; i < proof.size(); ++i) proof[i] ^= keys.client_key[i];
  expected_server_signature_ = HmacSha256(keys.server_key, auth_message);
  OPENSSL_cleanse(keys.client_key.data(), keys.client_key.size());
  state_ = State::kExpectServerFinal;
  return without_proof + ",p=" + Base64Encode(proof);
}

Status ScramClientExchange::HandleServerFinal(std::string_view message) {
  // Any failure below, including this one, ends the exchange.
  bool in_order = state_ == State::kExpectServerFinal;
  state_ = State::kDone;
  if (!in_order) return OutOfOrder();
  if (Status s = CheckMessageBytes(message); !s.ok()) return s;
  AttrReader reader(message);
  char attr = 0;
  std::string_view value;
  if (!reader.Next(&attr, &value)) return Malformed("attribute expected");
  if (attr == 'e') {
    // server-error-value is a short token ("invalid-proof", ...); keep what we log tame.
    std::string reason(value.substr(0, 64));
    for (char& c : reason) {
      if (c < 0x20 || c > 0x7e) c = '?';
    }
    return Status::AuthFailed("server rejected SCRAM authentication: " + reason);
  }
  if (attr != 'v') return Malformed("verifier attribute expected");
  if (!reader.AtEnd()) return Malformed("garbage at end of server-final-message");
  Key signature;
  if (!DecodeKey(value, &signature)) return Malformed("signature is not 32 bytes of base64");
  if (!ConstantTimeEqual(signature, expected_server_signature_)) {
    return Status::AuthFailed("incorrect server signature: the server does not know the password");
  }
  return Status::Ok();
}

}  // namespace pgtenant::protocol
