// Standard base64 (RFC 4648 section 4, with '=' padding), as SCRAM and Postgres's stored
// verifiers use it.
//
// Decoding is strict: no whitespace, no missing padding, no characters outside the alphabet.
// Postgres's own decoder also skips whitespace; SCRAM attributes and pg_authid verifiers never
// contain any, so refusing it only rejects input that did not come from a real peer.
//
// Pure functions, no state: safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace pgtenant::protocol {

std::string Base64Encode(std::string_view bytes);
std::string Base64Encode(std::span<const uint8_t> bytes);

// Returns the decoded bytes, or nullopt if `text` is not well-formed padded base64.
// The empty string decodes to the empty string.
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace pgtenant::protocol
