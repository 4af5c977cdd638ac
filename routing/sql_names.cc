#include "routing/sql_names.h"

#include <algorithm>
#include <array>
#include <iterator>

namespace pgtenant::routing {
namespace {

// Taken from PostgreSQL 16 src/include/parser/kwlist.h.
constexpr std::string_view kReserved[] = {
    "all",          "analyse",
    "analyze",      "and",
    "any",          "array",
    "as",           "asc",
    "asymmetric",   "both",
    "case",         "cast",
    "check",        "collate",
    "column",       "constraint",
    "create",       "current_catalog",
    "current_date", "current_role",
    "current_time", "current_timestamp",
    "current_user", "default",
    "deferrable",   "desc",
    "distinct",     "do",
    "else",         "end",
    "except",       "false",
    "fetch",        "for",
    "foreign",      "from",
    "grant",        "group",
    "having",       "in",
    "initially",    "intersect",
    "into",         "lateral",
    "leading",      "limit",
    "localtime",    "localtimestamp",
    "not",          "null",
    "offset",       "on",
    "only",         "or",
    "order",        "placing",
    "primary",      "references",
    "returning",    "select",
    "session_user", "some",
    "symmetric",    "system_user",
    "table",        "then",
    "to",           "trailing",
    "true",         "union",
    "unique",       "user",
    "using",        "variadic",
    "when",         "where",
    "window",       "with",
};

constexpr std::string_view kTypeFuncName[] = {
    "authorization", "binary", "collation", "concurrently", "cross",   "current_schema",
    "freeze",        "full",   "ilike",     "inner",        "is",      "isnull",
    "join",          "left",   "like",      "natural",      "notnull", "outer",
    "overlaps",      "right",  "similar",   "tablesample",  "verbose",
};

template <size_t N>
bool Contains(const std::string_view (&table)[N], std::string_view word) {
  return std::find(std::begin(table), std::end(table), word) != std::end(table);
}

}  // namespace

bool EqualsIgnoreAsciiCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

size_t FindIgnoreAsciiCase(std::string_view hay, std::string_view lower_needle) {
  if (lower_needle.empty()) return 0;
  if (hay.size() < lower_needle.size()) return std::string_view::npos;
  const size_t last = hay.size() - lower_needle.size();
  for (size_t i = 0; i <= last; ++i) {
    size_t k = 0;
    while (k < lower_needle.size() && AsciiLower(hay[i + k]) == lower_needle[k]) ++k;
    if (k == lower_needle.size()) return i;
  }
  return std::string_view::npos;
}

std::string AsciiLowerCopy(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = AsciiLower(c);
  return out;
}

bool IsReservedKeyword(std::string_view word) { return Contains(kReserved, word); }

bool IsTypeFuncNameKeyword(std::string_view word) { return Contains(kTypeFuncName, word); }

bool IsBareIdentifier(std::string_view part) {
  if (part.empty()) return false;
  auto first_ok = [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; };
  auto rest_ok = [&](char c) { return first_ok(c) || (c >= '0' && c <= '9') || c == '$'; };
  if (!first_ok(part[0])) return false;
  if (!std::all_of(part.begin() + 1, part.end(), rest_ok)) return false;
  return !IsReservedKeyword(part) && !IsTypeFuncNameKeyword(part);
}

std::string QuoteIdentifierIfNeeded(std::string_view part) {
  if (IsBareIdentifier(part)) return std::string(part);
  std::string out;
  out.reserve(part.size() + 2);
  out.push_back('"');
  for (char c : part) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

bool ContainsAnyIgnoreAsciiCase(std::string_view text, std::span<const std::string_view> needles) {
  std::array<bool, 256> starts{};  // both cases of every needle's first character
  size_t shortest = std::string_view::npos;
  for (std::string_view needle : needles) {
    if (needle.empty()) return true;
    const char c = AsciiLower(needle[0]);
    starts[static_cast<unsigned char>(c)] = true;
    if (c >= 'a' && c <= 'z') starts[static_cast<unsigned char>(c - 32)] = true;
    shortest = std::min(shortest, needle.size());
  }
  if (needles.empty() || text.size() < shortest) return false;
  for (size_t i = 0; i + shortest <= text.size(); ++i) {
    if (!starts[static_cast<unsigned char>(text[i])]) continue;
    for (std::string_view needle : needles) {
      if (text.size() - i < needle.size() || AsciiLower(text[i]) != AsciiLower(needle[0])) continue;
      if (EqualsIgnoreAsciiCase(text.substr(i, needle.size()), needle)) return true;
    }
  }
  return false;
}

}  // namespace pgtenant::routing
