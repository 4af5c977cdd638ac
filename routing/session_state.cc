#include "routing/session_state.h"

#include <cctype>
#include <string>

#include "routing/transaction_rules.h"

namespace pgtenant::routing {
namespace {

bool ContainsNoCase(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    size_t j = 0;
    while (j < needle.size() &&
           std::tolower(static_cast<unsigned char>(hay[i + j])) == needle[j]) {
      ++j;
    }
    if (j == needle.size()) return true;
  }
  return false;
}

// Session-level advisory locks; the _xact_ variants end with the transaction and are fine.
bool TakesSessionAdvisoryLock(std::string_view sql) {
  if (!ContainsNoCase(sql, "advisory_lock")) return false;
  for (std::string_view f : {"pg_advisory_lock", "pg_try_advisory_lock"}) {
    size_t from = 0;
    std::string lower(sql);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    while ((from = lower.find(f, from)) != std::string::npos) {
      size_t after = from + f.size();
      // pg_advisory_lock( or pg_advisory_lock_shared( — not pg_advisory_unlock, not _xact_.
      std::string_view rest = std::string_view(lower).substr(after);
      if (rest.substr(0, 1) == "(" || rest.substr(0, 8) == "_shared(" || rest.substr(0, 7) == "_shared") return true;
      from = after;
    }
  }
  return false;
}

}  // namespace

bool CreatesSessionState(std::string_view sql, bool (*tracked_set)(std::string_view name)) {
  std::string first = FirstKeyword(sql);
  if (first == "prepare") return !ContainsNoCase(sql, "transaction");
  if (first == "listen" || first == "load") return true;
  if (first == "declare") return ContainsNoCase(sql, "with hold");
  if (first == "create" && (ContainsNoCase(sql, "temp ") || ContainsNoCase(sql, "temporary "))) return true;
  if (first == "select" && ContainsNoCase(sql, "into temp")) return true;
  if (first == "set") {
    // SET LOCAL ends with the transaction; SET [SESSION] name ... stays.
    std::vector<std::string> w = FirstWords(sql, 3);
    if (w.size() < 2) return false;
    if (w[1] == "local" || w[1] == "transaction" || w[1] == "constraints") return false;
    std::string name = w[1] == "session" ? (w.size() > 2 ? w[2] : "") : w[1];
    if (name == "role" || name == "authorization") return true;
    return !(tracked_set && tracked_set(name));
  }
  return TakesSessionAdvisoryLock(sql);
}

}  // namespace pgtenant::routing
