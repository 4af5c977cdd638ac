// Fuzzes both sides of SCRAM-SHA-256 (protocol/scram.h) with hostile messages.
//
// Input: byte 0 picks the mode; the rest is split at its first NUL into `first` and `second`.
//   0  server side: HandleClientFirst(first), then HandleClientFinal(second). The verifier is of
//      a random password nobody knows, so a client-final that passes is a forged proof: abort.
//   1  client side: HandleServerFirst(first), then HandleServerFinal(second), with a random
//      password, so an accepted server signature is forged: abort. Iteration counts the parser
//      would accept are scaled down first so that PBKDF2 does not dominate the run.
//   2  an honest exchange between the two sides, client password `first`, with the byte flip
//      described by `second` (message, offset, xor) applied on the way. Unflipped, it must
//      succeed exactly when the password is right.
//   3  the stored-verifier and base64 parsers on `first`, which must round-trip.
// Verifiers are made once, with few iterations on the client's path, to keep runs fast.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/base64.h"
#include "protocol/scram.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace protocol = pgtenant::protocol;

constexpr std::string_view kServerNonce = "3rfcNHYJY1ZVvWVs7j";
constexpr std::string_view kClientNonce = "fyko+d2lbbFgONRv9qkxdawL";
constexpr std::string_view kPassword = "pencil";
constexpr int kFastIterations = 16;  // what the client side may have to compute per run

struct Setup {
  std::string secret = protocol::Base64Encode(protocol::RandomBytes(24));
  protocol::ScramVerifier unknown = protocol::MakeScramVerifierWithRandomSalt(secret, 4096);
  protocol::ScramVerifier pencil =
      protocol::MakeScramVerifier(kPassword, "saltsaltsalt", kFastIterations);
};

// Rewrites "i=<n>" fields with 64 < n <= kMaxScramIterations to a small count. Larger counts
// stay: the parser must refuse them before deriving anything.
std::string CapIterations(std::string_view message) {
  std::string out;
  size_t start = 0;
  while (start <= message.size()) {
    size_t comma = message.find(',', start);
    if (comma == std::string_view::npos) comma = message.size();
    std::string_view field = message.substr(start, comma - start);
    if (field.starts_with("i=") && field.size() > 2 &&
        field.find_first_not_of("0123456789", 2) == std::string_view::npos) {
      std::string_view digits = field.substr(2);
      while (digits.size() > 1 && digits[0] == '0') digits.remove_prefix(1);
      if (digits.size() <= 8) {
        const long n = std::stol(std::string(digits));
        if (n > 64 && n <= protocol::kMaxScramIterations) field = "i=7";
      }
    }
    out += field;
    if (comma < message.size()) out += ',';
    start = comma + 1;
  }
  return out;
}

void ServerSide(const Setup& setup, std::string_view first, std::string_view second) {
  protocol::ScramServerExchange server(setup.unknown, std::string(kServerNonce));
  auto server_first = server.HandleClientFirst(first);
  if (!server_first.ok()) {
    FUZZ_CHECK(server.HandleClientFinal(second).status().sqlstate() == "08P01");  // out of order
    return;
  }
  FUZZ_CHECK(server_first->starts_with("r=") &&
             server_first->find(kServerNonce) != std::string::npos);
  auto server_final = server.HandleClientFinal(second);
  FUZZ_CHECK(!server_final.ok());
  FUZZ_CHECK(!server.HandleClientFinal(second).ok());  // finished after an error
}

void ClientSide(const Setup& setup, std::string_view first, std::string_view second) {
  protocol::ScramClientExchange client(setup.secret, std::string(kClientNonce));
  auto client_final = client.HandleServerFirst(CapIterations(first));
  if (client_final.ok())
    FUZZ_CHECK(client_final->starts_with("c=biws,r=") &&
               client_final->find(",p=") != std::string::npos);
  FUZZ_CHECK(!client.HandleServerFinal(second).ok());
}

void Flip(std::string* message, int which, int target, size_t offset, uint8_t mask) {
  if (which != target || message->empty()) return;
  (*message)[offset % message->size()] ^= static_cast<char>(mask);
}

void RoundTrip(const Setup& setup, std::string_view password, std::string_view second) {
  const int which = second.size() > 0 ? static_cast<uint8_t>(second[0]) % 5 : 4;  // 4: none
  const size_t offset = second.size() > 1 ? static_cast<uint8_t>(second[1]) : 0;
  const uint8_t mask = second.size() > 2 ? static_cast<uint8_t>(second[2]) : 0;
  const bool tampered = which != 4 && mask != 0;

  protocol::ScramClientExchange client(std::string(password), std::string(kClientNonce), "user");
  protocol::ScramServerExchange server(setup.pencil, std::string(kServerNonce));
  std::string message = client.ClientFirstMessage();
  Flip(&message, which, 0, offset, mask);
  auto server_first = server.HandleClientFirst(message);
  if (!server_first.ok()) {
    FUZZ_CHECK(tampered);
    return;
  }
  message = *server_first;
  Flip(&message, which, 1, offset, mask);
  auto client_final = client.HandleServerFirst(CapIterations(message));
  if (!client_final.ok()) {
    FUZZ_CHECK(tampered);
    return;
  }
  message = *client_final;
  Flip(&message, which, 2, offset, mask);
  auto server_final = server.HandleClientFinal(message);
  if (!tampered) FUZZ_CHECK(server_final.ok() == (password == kPassword));
  if (!server_final.ok()) return;
  message = *server_final;
  Flip(&message, which, 3, offset, mask);
  const bool accepted = client.HandleServerFinal(message).ok();
  if (!tampered) FUZZ_CHECK(accepted);
}

void Verifiers(std::string_view text) {
  if (auto decoded = protocol::Base64Decode(text)) {
    FUZZ_CHECK(protocol::Base64Decode(protocol::Base64Encode(*decoded)) == decoded);
  }
  auto verifier = protocol::ParseScramVerifier(text);
  FUZZ_CHECK(verifier.ok() == protocol::IsScramVerifier(text));
  if (!verifier.ok()) return;
  auto again = protocol::ParseScramVerifier(protocol::ScramVerifierToString(*verifier));
  FUZZ_CHECK(again.ok() && again->iterations == verifier->iterations &&
             again->salt == verifier->salt && again->stored_key == verifier->stored_key &&
             again->server_key == verifier->server_key);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Setup* setup = new Setup();
  if (size < 1) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t nul = rest.find('\0');
  const std::string_view first = rest.substr(0, nul);
  const std::string_view second =
      nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);
  switch (data[0] % 4) {
    case 0:
      ServerSide(*setup, first, second);
      break;
    case 1:
      ClientSide(*setup, first, second);
      break;
    case 2:
      RoundTrip(*setup, first, second);
      break;
    default:
      Verifiers(first);
      break;
  }
  return 0;
}
