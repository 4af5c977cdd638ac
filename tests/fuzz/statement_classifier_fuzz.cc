// Fuzzes the statement classifier (routing/statement_classifier.h) and the other SQL scanners
// the proxy runs on client query text: CreatesSessionState (routing/session_state.h) and
// MayNeedOwnTransaction / FirstKeyword / FirstWords (routing/transaction_rules.h), and
// ParseSettingChange (routing/setting_statement.h).
//
// Input: byte 0 picks the tenant variable (bits 0-2) and standard_conforming_strings (bit 3);
// the rest is the SQL text.
//
// Invariants checked besides "no crash, no UB":
//   * MightTouchTenant is a safe pre-check: when it is false, ClassifyQuery finds nothing but
//     kOther, kBegin and kCommitOrRollback (the proxy skips the lexer on its word);
//   * MayCreateSessionState is a safe pre-check of StatementsCreateSessionState in the same way;
//   * statements lie inside the text, in order, and each one classifies the same on its own;
//   * a recognised setting change names a followed setting, and its text is one SET or RESET
//     statement (FirstKeyword agrees, and no second statement follows).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "routing/session_state.h"
#include "routing/setting_statement.h"
#include "routing/statement_classifier.h"
#include "routing/transaction_rules.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace routing = pgtenant::routing;
using routing::StatementKind;

constexpr std::string_view kVariables[] = {"app.tenant_id", "tenant",     "app.Tenant_ID",
                                           "a.b.c",         "myapp.t",    "app.t\xc3\xa9",
                                           "x.id",          "search_path"};

bool Tracked(std::string_view name) {
  return name == "search_path" || name == "statement_timeout" || name == "timezone";
}

bool Ignorable(StatementKind k) {
  return k == StatementKind::kOther || k == StatementKind::kBegin ||
         k == StatementKind::kCommitOrRollback;
}

void CheckClassification(std::string_view sql, std::string_view variable,
                         const routing::ClassifyOptions& options) {
  const std::vector<routing::ClassifiedStatement> statements =
      routing::ClassifyQuery(sql, variable, options);
  const bool might = routing::MightTouchTenant(sql, variable);
  size_t previous_end = 0;
  for (const routing::ClassifiedStatement& s : statements) {
    if (!might) FUZZ_CHECK(Ignorable(s.kind));
    FUZZ_CHECK(s.begin >= previous_end && s.begin <= s.end && s.end <= sql.size());
    FUZZ_CHECK(routing::StatementKindName(s.kind)[0] != '?');
    if (s.value_is_param) FUZZ_CHECK(s.value.empty());
    previous_end = s.end;
    // One statement's bytes classify alone as they did in the batch.
    const auto alone =
        routing::ClassifyQuery(sql.substr(s.begin, s.end - s.begin), variable, options);
    FUZZ_CHECK(alone.size() == 1 && alone[0].kind == s.kind && alone[0].value == s.value &&
               alone[0].param_index == s.param_index && alone[0].is_default == s.is_default);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view variable = kVariables[data[0] & 7];
  routing::ClassifyOptions options;
  options.standard_conforming_strings = (data[0] & 8) == 0;
  const std::string_view sql(reinterpret_cast<const char*>(data + 1), size - 1);

  CheckClassification(sql, variable, options);
  const bool creates = routing::StatementsCreateSessionState(sql, variable, Tracked);
  if (!routing::MayCreateSessionState(sql)) FUZZ_CHECK(!creates);
  FUZZ_CHECK(routing::CreatesSessionState(sql, variable, Tracked) == creates);
  routing::MayNeedOwnTransaction(sql);
  const std::string first = routing::FirstKeyword(sql);
  const std::vector<std::string> words = routing::FirstWords(sql, 3);
  FUZZ_CHECK(words.size() <= 3);
  for (char c : first) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
  if (const auto change = routing::ParseSettingChange(sql)) {
    FUZZ_CHECK(routing::IsUnreportedTrackedSetting(change->name));
    FUZZ_CHECK(first == "set" || first == "reset");
    FUZZ_CHECK(routing::ClassifyQuery(sql, variable, options).size() <= 1);
  }
  return 0;
}
