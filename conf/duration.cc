#include "conf/duration.h"

#include <array>
#include <charconv>
#include <limits>
#include <utility>

namespace pgtenant::conf {
namespace {

// Splits "15s" into 15 and "s". Only decimal digits are accepted: no sign, no fraction, no
// spaces, so "-5s" and "1.5s" are rejected rather than silently truncated.
std::optional<std::pair<uint64_t, std::string_view>> SplitNumber(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return std::nullopt;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + digits, value);
  if (ec != std::errc() || end != text.data() + digits) return std::nullopt;
  return std::make_pair(value, text.substr(digits));
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::optional<uint64_t> Multiply(uint64_t value, uint64_t unit, uint64_t limit) {
  if (unit != 0 && value > limit / unit) return std::nullopt;
  return value * unit;
}

struct Unit {
  std::string_view suffix;
  uint64_t scale;
};

// Largest first, so FormatDuration picks the coarsest exact unit.
constexpr std::array<Unit, 5> kDurationUnits = {{
    {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}}};

constexpr std::array<Unit, 5> kSizeUnits = {{
    {"", 1}, {"b", 1}, {"kb", 1024}, {"mb", 1024 * 1024}, {"gb", 1024 * 1024 * 1024}}};

}  // namespace

std::optional<Millis> ParseDuration(std::string_view text) {
  auto split = SplitNumber(text);
  if (!split) return std::nullopt;
  auto [value, suffix] = *split;
  // A bare integer is seconds, as in PostgreSQL's timeout settings.
  uint64_t scale = suffix.empty() ? 1000 : 0;
  for (const Unit& unit : kDurationUnits) {
    if (suffix == unit.suffix) scale = unit.scale;
  }
  if (scale == 0) return std::nullopt;
  auto millis = Multiply(value, scale, static_cast<uint64_t>(std::numeric_limits<Millis>::max()));
  if (!millis) return std::nullopt;
  return static_cast<Millis>(*millis);
}

std::string FormatDuration(Millis millis) {
  if (millis <= 0) return "0";
  for (const Unit& unit : kDurationUnits) {
    auto scale = static_cast<Millis>(unit.scale);
    if (millis % scale == 0) return std::to_string(millis / scale) + std::string(unit.suffix);
  }
  return std::to_string(millis) + "ms";  // not reached: the ms unit always divides
}

std::optional<uint64_t> ParseByteSize(std::string_view text) {
  auto split = SplitNumber(text);
  if (!split) return std::nullopt;
  auto [value, suffix] = *split;
  for (const Unit& unit : kSizeUnits) {
    if (EqualsIgnoreCase(suffix, unit.suffix)) {
      return Multiply(value, unit.scale, std::numeric_limits<uint64_t>::max());
    }
  }
  return std::nullopt;
}

}  // namespace pgtenant::conf
