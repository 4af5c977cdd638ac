// Fuzzes exact SQL recognition (routing/sql_statement.h): AnalyzeSql over libpg_query and the
// NeedsAnalysis pre-check the proxy runs on every Query and Parse.
//
// Input: byte 0 picks the tenant variable (bits 0-2); the rest is the SQL text.
//
// Invariants checked besides "no crash, no leak, no UB":
//   * NeedsAnalysis is a safe pre-check: when it is false, AnalyzeSql returns only plain
//     kOther statements (no flag) or one kParseError (the proxy skips the parser on its word);
//   * a kParseError is the only result; otherwise statements lie inside the text, in order;
//   * kSetConfigCall has at least one call and every $N it names is >= 1.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "routing/sql_statement.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace routing = pgtenant::routing;
using K = routing::SqlStatementKind;

constexpr std::string_view kVariables[] = {"app.tenant_id", "tenant",  "app.Tenant_ID", "a.b.c",
                                           "myapp.t",       "app.t\xc3\xa9", "x.id",     "search_path"};

void CheckArgument(const routing::SqlArgument& a) {
  if (a.kind == routing::SqlArgument::Kind::kParam) FUZZ_CHECK(a.param >= 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 4096) return 0;
  const std::string_view variable = kVariables[data[0] & 7];
  const std::string_view sql(reinterpret_cast<const char*>(data) + 1, size - 1);

  const std::vector<routing::StatementInfo> all = routing::AnalyzeSql(sql, variable);
  const bool parse_error = all.size() == 1 && all[0].kind == K::kParseError;
  size_t previous_end = 0;
  for (const routing::StatementInfo& s : all) {
    if (s.kind == K::kParseError) FUZZ_CHECK(all.size() == 1);
    FUZZ_CHECK(s.begin <= s.end && s.end <= sql.size());
    if (!parse_error) {
      FUZZ_CHECK(s.begin >= previous_end);
      previous_end = s.end;
    }
    if (s.kind == K::kSetConfigCall) {
      FUZZ_CHECK(!s.set_config_calls.empty());
      for (const routing::SetConfigCall& c : s.set_config_calls) {
        CheckArgument(c.name);
        CheckArgument(c.value);
        CheckArgument(c.is_local_arg);
      }
    }
  }
  if (!routing::NeedsAnalysis(sql) && !parse_error) {
    for (const routing::StatementInfo& s : all) {
      FUZZ_CHECK(s.kind == K::kOther);
      FUZZ_CHECK(!s.creates_session_state);
      FUZZ_CHECK(!s.mentions_tenant_unknowably);
      FUZZ_CHECK(!s.names_tenant);
    }
  }
  return 0;
}
