#include "billing/window.h"

#include <openssl/evp.h>

namespace pgtenant::billing {
namespace {

bool PlainField(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.';
    if (!ok) return false;  // '-' separates fields, so it would make the plain form ambiguous
  }
  return true;
}

// 32 hex digits (128 bits) of SHA-256 over the length-prefixed fields: the length prefixes keep
// ("ab", "c") and ("a", "bc") apart.
std::string HashFields(std::string_view event_name, std::string_view tenant) {
  std::string input;
  input.append(std::to_string(event_name.size())).append(":").append(event_name);
  input.append(std::to_string(tenant.size())).append(":").append(tenant);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(input.data(), input.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < 16 && i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

}  // namespace

int64_t WindowStart(int64_t unix_seconds, int64_t window_seconds) {
  int64_t r = unix_seconds % window_seconds;
  if (r < 0) r += window_seconds;
  return unix_seconds - r;
}

std::string MeterEventIdentifier(std::string_view instance, std::string_view event_name,
                                 std::string_view tenant, int64_t window_start) {
  std::string start = std::to_string(window_start);
  std::string id;
  id.append(instance).append("-");
  if (PlainField(event_name) && PlainField(tenant) &&
      instance.size() + event_name.size() + tenant.size() + start.size() + 3 <=
          kStripeIdentifierMaxLength) {
    id.append(event_name).append("-").append(tenant);
  } else {
    id.append("-").append(HashFields(event_name, tenant));
  }
  id.append("-").append(start);
  return id;
}

}  // namespace pgtenant::billing
