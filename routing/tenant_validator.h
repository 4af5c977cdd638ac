// Checks tenant ids against tenancy.id_pattern. The pattern is compiled once per config (held
// by RoutingTable) because std::regex construction is slow; the default pattern
// "^[a-z0-9_]{1,63}$" is matched by hand because std::regex matching is slow too.
//
// The id must match the whole pattern (std::regex_match, ECMAScript). Ids longer than
// kMaxTenantIdLength never match: libstdc++'s regex recurses per input character, so an
// attacker-sized id could exhaust the stack.
//
// An invalid pattern (the config validator should have refused it) makes every id fail, so a
// bad config fails closed.
//
// Thread-safety: immutable after construction; Matches() may be called from any thread.
#pragma once

#include <optional>
#include <regex>
#include <string>
#include <string_view>

#include "conf/config.h"

namespace pgtenant::routing {

inline constexpr size_t kMaxTenantIdLength = 1024;
inline constexpr std::string_view kDefaultIdPattern = "^[a-z0-9_]{1,63}$";

class TenantValidator {
 public:
  explicit TenantValidator(const conf::Tenancy& tenancy);

  bool Matches(std::string_view id) const;

  // False when id_pattern did not compile; error() says why.
  bool pattern_ok() const { return pattern_ok_; }
  const std::string& error() const { return error_; }
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  bool is_default_ = false;
  bool pattern_ok_ = true;
  std::string error_;
  std::optional<std::regex> regex_;
};

// For messages: the id clipped to 64 bytes with non-printable bytes as \xNN, so a hostile id
// cannot flood or forge log lines.
std::string DisplayTenant(std::string_view id);

}  // namespace pgtenant::routing
