#include "routing/transaction_rules.h"

#include <array>
#include <cctype>
#include <string>

namespace pgtenant::routing {
namespace {

// Skips whitespace and comments; returns the next word lower-cased (letters and '_' only).
std::string NextWord(std::string_view sql, size_t* pos) {
  size_t i = *pos;
  while (i < sql.size()) {
    char c = sql[i];
    if (std::isspace(static_cast<unsigned char>(c)) || c == '(') {
      ++i;
    } else if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      while (i < sql.size() && sql[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
      int depth = 1;
      i += 2;
      while (i < sql.size() && depth > 0) {
        if (sql[i] == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
          ++depth;
          i += 2;
        } else if (sql[i] == '*' && i + 1 < sql.size() && sql[i + 1] == '/') {
          --depth;
          i += 2;
        } else {
          ++i;
        }
      }
    } else {
      break;
    }
  }
  std::string word;
  while (i < sql.size() && (std::isalpha(static_cast<unsigned char>(sql[i])) || sql[i] == '_')) {
    char c = sql[i];
    word.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c);
    ++i;
  }
  *pos = i;
  return word;
}

}  // namespace

std::string FirstKeyword(std::string_view sql) {
  size_t pos = 0;
  return NextWord(sql, &pos);
}

std::vector<std::string> FirstWords(std::string_view sql, int n) {
  std::vector<std::string> words;
  size_t pos = 0;
  for (int i = 0; i < n; ++i) {
    std::string w = NextWord(sql, &pos);
    if (w.empty()) break;
    words.push_back(std::move(w));
  }
  return words;
}

bool MayNeedOwnTransaction(std::string_view sql) {
  size_t pos = 0;
  std::string first = NextWord(sql, &pos);
  if (first == "vacuum" || first == "reindex" || first == "cluster") return true;
  if (first == "discard") return NextWord(sql, &pos) == "all";
  if (first != "create" && first != "drop" && first != "alter" && first != "commit" &&
      first != "rollback") {
    return false;
  }
  // CREATE/DROP DATABASE, TABLESPACE, SUBSCRIPTION; CREATE/DROP INDEX CONCURRENTLY;
  // ALTER SYSTEM; COMMIT/ROLLBACK PREPARED: look at the next few words.
  static constexpr std::array<std::string_view, 6> kMarkers = {
      "database", "tablespace", "subscription", "concurrently", "system", "prepared"};
  for (int n = 0; n < 4; ++n) {
    std::string w = NextWord(sql, &pos);
    if (w.empty()) break;
    for (std::string_view m : kMarkers) {
      if (w == m) return true;
    }
  }
  return false;
}

}  // namespace pgtenant::routing
