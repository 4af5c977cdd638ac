#include "billing/usage_export.h"

#include <algorithm>
#include <tuple>

#include "billing/json.h"
#include "billing/meter.h"
#include "billing/window.h"

namespace pgtenant::billing {
namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// The inverse (civil_from_days).
void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysIn(int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// `n` digits at s[pos]; false when any is not a digit.
bool Digits(std::string_view s, size_t pos, size_t n, unsigned* out) {
  if (pos + n > s.size()) return false;
  unsigned v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + static_cast<unsigned>(s[i] - '0');
  }
  *out = v;
  return true;
}

Status BadTime(std::string_view text) {
  std::string m = "cannot read \"";
  m.append(text).append("\" as a time: use RFC 3339 (2026-12-01T00:00:00Z), a date (2026-12-01)");
  m.append(" or Unix seconds");
  return Status::Error("22007", std::move(m));
}

void AppendTwo(std::string* out, unsigned v) {
  out->push_back(static_cast<char>('0' + v / 10 % 10));
  out->push_back(static_cast<char>('0' + v % 10));
}

// Quoted (RFC 4180) when it holds a separator, a quote or a line end.
void AppendCsvField(std::string* out, std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) {
    out->append(s);
    return;
  }
  out->push_back('"');
  for (char c : s) {
    if (c == '"') out->push_back('"');
    out->push_back(c);
  }
  out->push_back('"');
}

}  // namespace

std::optional<ExportFormat> ParseExportFormat(std::string_view name) {
  if (name == "csv") return ExportFormat::kCsv;
  if (name == "jsonl") return ExportFormat::kJsonLines;
  return std::nullopt;
}

Result<int64_t> ParseExportTime(std::string_view text) {
  if (text.empty()) return BadTime(text);
  if (std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (text.size() > 12) return BadTime(text);  // beyond year 33658: a typo, not a time
    int64_t v = 0;
    for (char c : text) v = v * 10 + (c - '0');
    return v;
  }
  unsigned year = 0, month = 0, day = 0;
  if (!Digits(text, 0, 4, &year) || text.size() < 10 || text[4] != '-' || !Digits(text, 5, 2, &month) ||
      text[7] != '-' || !Digits(text, 8, 2, &day)) {
    return BadTime(text);
  }
  if (month < 1 || month > 12 || day < 1 || day > DaysIn(year, month)) return BadTime(text);
  int64_t seconds = DaysFromCivil(year, month, day) * 86400;
  if (text.size() == 10) return seconds;

  unsigned hour = 0, minute = 0, second = 0;
  if ((text[10] != 'T' && text[10] != 't' && text[10] != ' ') || !Digits(text, 11, 2, &hour) ||
      text.size() < 19 || text[13] != ':' || !Digits(text, 14, 2, &minute) || text[16] != ':' ||
      !Digits(text, 17, 2, &second)) {
    return BadTime(text);
  }
  if (hour > 23 || minute > 59 || second > 60) return BadTime(text);  // 60: a leap second
  seconds += int64_t{hour} * 3600 + minute * 60 + second;
  size_t pos = 19;
  if (pos < text.size() && text[pos] == '.') {
    size_t digits = 0;
    while (++pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++digits;
    if (digits == 0) return BadTime(text);
  }
  if (pos == text.size()) return BadTime(text);  // RFC 3339 requires the offset
  std::string_view zone = text.substr(pos);
  if (zone == "Z" || zone == "z") return seconds;
  unsigned oh = 0, om = 0;
  if (zone.size() != 6 || (zone[0] != '+' && zone[0] != '-') || !Digits(zone, 1, 2, &oh) ||
      zone[3] != ':' || !Digits(zone, 4, 2, &om) || oh > 23 || om > 59) {
    return BadTime(text);
  }
  int64_t offset = int64_t{oh} * 3600 + om * 60;
  return zone[0] == '+' ? seconds - offset : seconds + offset;
}

std::string FormatRfc3339(int64_t unix_seconds) {
  int64_t days = unix_seconds / 86400;
  int64_t rest = unix_seconds % 86400;
  if (rest < 0) {
    rest += 86400;
    --days;
  }
  int64_t y = 0;
  unsigned m = 0, d = 0;
  CivilFromDays(days, &y, &m, &d);
  std::string out;
  if (y < 0 || y > 9999) {
    out.append(std::to_string(y));  // outside RFC 3339; still readable
  } else {
    auto year = static_cast<unsigned>(y);
    AppendTwo(&out, year / 100);
    AppendTwo(&out, year % 100);
  }
  out.push_back('-');
  AppendTwo(&out, m);
  out.push_back('-');
  AppendTwo(&out, d);
  out.push_back('T');
  AppendTwo(&out, static_cast<unsigned>(rest / 3600));
  out.push_back(':');
  AppendTwo(&out, static_cast<unsigned>(rest / 60 % 60));
  out.push_back(':');
  AppendTwo(&out, static_cast<unsigned>(rest % 60));
  out.push_back('Z');
  return out;
}

std::string CsvRow(const RecordView& r) {
  std::string out;
  AppendCsvField(&out, r.tenant);
  out.append(",").append(MeterName(r.meter));
  out.append(",").append(FormatRfc3339(r.window_start));
  out.append(",").append(FormatRfc3339(WindowEnd(r.window_start, r.window_seconds)));
  out.append(",").append(std::to_string(r.value));
  out.append(",").append(std::to_string(BilledValue(r.meter, r.value)));
  out.append(",").append(RecordStateName(r.state));
  return out;
}

std::string JsonRow(const RecordView& r) {
  std::string out = "{\"tenant\":";
  AppendJsonString(&out, r.tenant);
  out.append(",\"meter\":\"").append(MeterName(r.meter));
  out.append("\",\"window_start\":\"").append(FormatRfc3339(r.window_start));
  out.append("\",\"window_end\":\"").append(FormatRfc3339(WindowEnd(r.window_start, r.window_seconds)));
  out.append("\",\"window_start_unix\":").append(std::to_string(r.window_start));
  out.append(",\"value\":").append(std::to_string(r.value));
  out.append(",\"billed_value\":").append(std::to_string(BilledValue(r.meter, r.value)));
  out.append(",\"state\":\"").append(RecordStateName(r.state));
  out.append("\"}");
  return out;
}

size_t WriteUsageExport(std::vector<RecordView> records, const ExportOptions& options, std::ostream& out) {
  std::erase_if(records, [&](const RecordView& r) {
    return (options.since && WindowEnd(r.window_start, r.window_seconds) <= *options.since) ||
           (options.until && r.window_start >= *options.until);
  });
  std::sort(records.begin(), records.end(), [](const RecordView& a, const RecordView& b) {
    return std::tie(a.window_start, a.tenant, a.meter, a.slot) < std::tie(b.window_start, b.tenant, b.meter, b.slot);
  });
  if (options.format == ExportFormat::kCsv) out << kCsvHeader << '\n';
  for (const RecordView& r : records) {
    out << (options.format == ExportFormat::kCsv ? CsvRow(r) : JsonRow(r)) << '\n';
  }
  return records.size();
}

}  // namespace pgtenant::billing
