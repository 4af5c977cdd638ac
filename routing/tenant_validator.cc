#include "routing/tenant_validator.h"

#include <algorithm>

namespace pgtenant::routing {
namespace {

bool MatchesDefaultPattern(std::string_view id) {
  if (id.empty() || id.size() > 63) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

}  // namespace

TenantValidator::TenantValidator(const conf::Tenancy& tenancy)
    : pattern_(tenancy.id_pattern), is_default_(tenancy.id_pattern == kDefaultIdPattern) {
  if (is_default_) return;
  // std::regex reports a bad pattern only by throwing; keep that at this boundary.
  try {
    regex_.emplace(pattern_, std::regex::ECMAScript | std::regex::optimize);
  } catch (const std::regex_error& e) {
    pattern_ok_ = false;
    error_ = std::string("tenancy.id_pattern does not compile: ") + e.what();
  }
}

bool TenantValidator::Matches(std::string_view id) const {
  if (is_default_) return MatchesDefaultPattern(id);
  if (!pattern_ok_ || id.size() > kMaxTenantIdLength) return false;
  try {
    return std::regex_match(id.begin(), id.end(), *regex_);
  } catch (const std::regex_error&) {
    return false;  // error_complexity / error_stack: refuse rather than guess
  }
}

std::string DisplayTenant(std::string_view id) {
  constexpr size_t kMaxShown = 64;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < id.size() && i < kMaxShown; ++i) {
    const auto c = static_cast<unsigned char>(id[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  if (id.size() > kMaxShown) out += "...";
  return out;
}

}  // namespace pgtenant::routing
