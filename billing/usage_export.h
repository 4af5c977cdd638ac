// `pgtenant usage export` (issue 17, docs/billing.md "Export"): the usage ledger's records as CSV
// or JSON lines, for billing systems other than Stripe.
//
// One row per (tenant, meter, window) record, sorted by window start, tenant, meter (in the
// order of billing/meter.h), with the fields
//   tenant, meter, window_start, window_end, value, billed_value, state
// window_start and window_end are RFC 3339 UTC ("2026-12-05T01:00:00Z"; window_end is the first
// second after the window); value is the ledger's count in the meter's counting unit and
// billed_value what is (or would be) sent to Stripe (billing::BilledValue: server time in ms);
// state is billing::RecordStateName (an "open" window is still counting).
//   CSV: a header line, then rows; a tenant holding a comma, a double quote, CR or LF is quoted
//        (RFC 4180: "a""b"). Lines end with LF.
//   JSON lines: one object a line, the same members plus window_start_unix (Unix seconds).
// Pure; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "billing/usage_ledger.h"
#include "protocol/status.h"

namespace pgtenant::billing {

enum class ExportFormat { kCsv, kJsonLines };

// "csv" or "jsonl".
std::optional<ExportFormat> ParseExportFormat(std::string_view name);

// A point in time for --since / --until, as Unix seconds:
//   RFC 3339: 2026-12-01T00:00:00Z, 2026-12-01T01:00:00+01:00, 2026-12-01T00:00:00.5Z (fractions
//             are dropped; 't', 'z' and a space for 'T' are accepted too)
//   a date:   2026-12-01 (midnight UTC)
//   Unix seconds: 1796083200
// Error (22007) naming the accepted forms otherwise.
Result<int64_t> ParseExportTime(std::string_view text);

// RFC 3339 UTC with seconds: 2026-12-05T01:00:00Z.
std::string FormatRfc3339(int64_t unix_seconds);

struct ExportOptions {
  ExportFormat format = ExportFormat::kCsv;
  std::optional<int64_t> since;  // keep windows that end after it
  std::optional<int64_t> until;  // keep windows that start before it
};

// Filters, sorts and writes `records`. Returns how many rows were written (the CSV header line
// not counted).
size_t WriteUsageExport(std::vector<RecordView> records, const ExportOptions& options, std::ostream& out);

// One row, without its line end (for tests and WriteUsageExport).
std::string CsvRow(const RecordView& r);
std::string JsonRow(const RecordView& r);
inline constexpr const char* kCsvHeader = "tenant,meter,window_start,window_end,value,billed_value,state";

}  // namespace pgtenant::billing
