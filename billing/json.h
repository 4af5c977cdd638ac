// The little JSON billing needs, with no JSON library: escaping strings for the dead-letter
// file (billing/sender.cc) and reading the string members of Stripe's error object
// {"error": {"type": ..., "code": ..., "message": ...}} (docs.stripe.com/api/errors).
// Pure; any thread.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace pgtenant::billing {

// Appends `s` as a JSON string literal (quotes included). Bytes >= 0x80 are copied as they are
// (tenant ids and Stripe's messages are UTF-8); control characters are escaped.
void AppendJsonString(std::string* out, std::string_view s);

// The string members of the top-level object's member `object_key` (for Stripe: "error").
// Members that are not strings are skipped. nullopt when `json` is not an object holding such an
// object (an HTML error page from a proxy, a truncated body). Nesting is bounded (64 levels).
std::optional<std::map<std::string, std::string>> StringMembersOf(std::string_view json,
                                                                  std::string_view object_key);

}  // namespace pgtenant::billing
