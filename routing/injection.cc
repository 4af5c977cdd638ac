#include "routing/injection.h"

#include "routing/sql_names.h"

namespace pgtenant::routing {

std::string QuoteLiteral(std::string_view value) {
  const bool escape_form =
      value.find_first_of(std::string_view("\\\0", 2)) != std::string_view::npos;
  std::string out;
  out.reserve(value.size() + 4);
  if (escape_form) out.push_back('E');
  out.push_back('\'');
  for (char c : value) {
    if (c == '\'') {
      out += "''";
    } else if (c == '\\' && escape_form) {
      out += "\\\\";
    } else if (c == '\0') {
      out += "\\000";
    } else {
      out.push_back(c);
    }
  }
  out.push_back('\'');
  return out;
}

std::string QuoteVariableName(std::string_view variable) {
  std::string out;
  size_t start = 0;
  for (;;) {
    const size_t dot = variable.find('.', start);
    const std::string_view part = variable.substr(
        start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    out += QuoteIdentifierIfNeeded(part);
    if (dot == std::string_view::npos) return out;
    out.push_back('.');
    start = dot + 1;
  }
}

std::string BuildSetTenantSql(std::string_view variable, std::string_view tenant) {
  return "SET " + QuoteVariableName(variable) + " = " + QuoteLiteral(tenant);
}

std::string BuildResetTenantSql(std::string_view variable) {
  return "RESET " + QuoteVariableName(variable);
}

}  // namespace pgtenant::routing
