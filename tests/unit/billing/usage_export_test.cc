// `pgtenant usage export`'s formatting (billing/usage_export.h): CSV and JSON lines, quoting,
// filtering and order, and the --since / --until time forms.
#include "billing/usage_export.h"

#include <gtest/gtest.h>

#include <sstream>

namespace pgtenant::billing {
namespace {

constexpr int64_t k20261205T01 = 1796432400;  // 2026-12-05T01:00:00Z

RecordView Row(std::string tenant, Meter meter, int64_t start, uint64_t value,
               RecordState state = RecordState::kClosed, uint32_t window = 3600) {
  RecordView v;
  v.tenant = std::move(tenant);
  v.meter = meter;
  v.window_start = start;
  v.window_seconds = window;
  v.value = value;
  v.state = state;
  return v;
}

std::string Export(std::vector<RecordView> rows, ExportOptions o) {
  std::ostringstream out;
  WriteUsageExport(std::move(rows), o, out);
  return out.str();
}

int64_t TimeOk(std::string_view text) {
  auto t = ParseExportTime(text);
  EXPECT_TRUE(t.ok()) << text << ": " << t.status().ToString();
  return t.ok() ? *t : -1;
}

TEST(UsageExportTest, FormatsRfc3339Utc) {
  EXPECT_EQ(FormatRfc3339(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(k20261205T01), "2026-12-05T01:00:00Z");
  EXPECT_EQ(FormatRfc3339(951782400), "2000-02-29T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(1700000000), "2023-11-14T22:13:20Z");
  EXPECT_EQ(FormatRfc3339(-1), "1969-12-31T23:59:59Z");
}

TEST(UsageExportTest, CsvHasAHeaderAndOneRowPerRecord) {
  std::vector<RecordView> rows = {Row("acme", Meter::kServerTime, k20261205T01, 1500),
                                  Row("acme", Meter::kQueries, k20261205T01 + 3600, 7, RecordState::kOpen)};
  EXPECT_EQ(Export(rows, {}),
            "tenant,meter,window_start,window_end,value,billed_value,state\n"
            "acme,server_ms,2026-12-05T01:00:00Z,2026-12-05T02:00:00Z,1500,2,closed\n"
            "acme,queries,2026-12-05T02:00:00Z,2026-12-05T03:00:00Z,7,7,open\n");
}

TEST(UsageExportTest, CsvQuotesATenantThatNeedsIt) {
  auto csv = [](const char* tenant) { return CsvRow(Row(tenant, Meter::kQueries, 0, 1)); };
  EXPECT_EQ(CsvRow(Row("a,b", Meter::kQueries, 0, 1)),
            "\"a,b\",queries,1970-01-01T00:00:00Z,1970-01-01T01:00:00Z,1,1,closed");
  EXPECT_TRUE(csv("say \"hi\"").starts_with("\"say \"\"hi\"\"\",")) << csv("say \"hi\"");
  EXPECT_TRUE(csv("two\nlines").starts_with("\"two\nlines\",")) << csv("two\nlines");
  EXPECT_TRUE(csv("plain-tenant_1.x").starts_with("plain-tenant_1.x,")) << csv("plain-tenant_1.x");
}

TEST(UsageExportTest, JsonLinesHoldTheSameFieldsAndUnixStart) {
  std::vector<RecordView> rows = {Row("acme", Meter::kServerTime, k20261205T01, 1499, RecordState::kDelivered),
                                  Row("a\"b\\c", Meter::kBytesIn, k20261205T01, 10)};
  ExportOptions o;
  o.format = ExportFormat::kJsonLines;
  EXPECT_EQ(Export(rows, o),
            "{\"tenant\":\"a\\\"b\\\\c\",\"meter\":\"bytes_in\",\"window_start\":\"2026-12-05T01:00:00Z\","
            "\"window_end\":\"2026-12-05T02:00:00Z\",\"window_start_unix\":1796432400,\"value\":10,"
            "\"billed_value\":10,\"state\":\"closed\"}\n"
            "{\"tenant\":\"acme\",\"meter\":\"server_ms\",\"window_start\":\"2026-12-05T01:00:00Z\","
            "\"window_end\":\"2026-12-05T02:00:00Z\",\"window_start_unix\":1796432400,\"value\":1499,"
            "\"billed_value\":1,\"state\":\"delivered\"}\n");
}

TEST(UsageExportTest, SortsByWindowTenantMeterAndFiltersBySinceAndUntil) {
  int64_t h = 3600;
  std::vector<RecordView> rows = {
      Row("b", Meter::kQueries, k20261205T01, 1),      Row("a", Meter::kQueries, k20261205T01, 2),
      Row("a", Meter::kServerTime, k20261205T01, 3),   Row("a", Meter::kQueries, k20261205T01 - h, 4),
      Row("a", Meter::kQueries, k20261205T01 + h, 5),
  };
  auto values = [&](ExportOptions o) {
    std::vector<uint64_t> out;
    std::istringstream in(Export(rows, o));
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {  // the value: the fifth field (no tenant here is quoted)
      std::istringstream fields(line);
      std::string field;
      for (int i = 0; i < 5; ++i) std::getline(fields, field, ',');
      out.push_back(std::stoull(field));
    }
    return out;
  };
  EXPECT_EQ(values({}), (std::vector<uint64_t>{4, 3, 2, 1, 5}));
  ExportOptions since;
  since.since = k20261205T01;  // the window ending then is out; the one starting then is in
  EXPECT_EQ(values(since), (std::vector<uint64_t>{3, 2, 1, 5}));
  since.since = k20261205T01 + 1;
  EXPECT_EQ(values(since), (std::vector<uint64_t>{3, 2, 1, 5}));
  ExportOptions until;
  until.since = k20261205T01;
  until.until = k20261205T01 + h;  // windows starting before it
  EXPECT_EQ(values(until), (std::vector<uint64_t>{3, 2, 1}));
  ExportOptions none;
  none.since = k20261205T01 + 2 * h;
  EXPECT_EQ(Export(rows, none), std::string(kCsvHeader) + "\n");
}

TEST(UsageExportTest, ParsesTheTimeForms) {
  EXPECT_EQ(TimeOk("2026-12-05T01:00:00Z"), k20261205T01);
  EXPECT_EQ(TimeOk("2026-12-05t01:00:00z"), k20261205T01);
  EXPECT_EQ(TimeOk("2026-12-05 01:00:00Z"), k20261205T01);
  EXPECT_EQ(TimeOk("2026-12-05T02:30:00+01:30"), k20261205T01);
  EXPECT_EQ(TimeOk("2026-12-04T20:00:00-05:00"), k20261205T01);
  EXPECT_EQ(TimeOk("2026-12-05T01:00:00.999Z"), k20261205T01);
  EXPECT_EQ(TimeOk("2026-12-05"), k20261205T01 - 3600);
  EXPECT_EQ(TimeOk("2024-02-29"), 1709164800);
  EXPECT_EQ(TimeOk("1796432400"), k20261205T01);
  EXPECT_EQ(TimeOk("0"), 0);
}

TEST(UsageExportTest, RefusesBadTimes) {
  for (const char* bad : {"", "yesterday", "2026-13-01", "2026-02-29", "2026-12-00", "2026-12-5",
                          "2026-12-05T01:00:00", "2026-12-05T24:00:00Z", "2026-12-05T01:60:00Z",
                          "2026-12-05T01:00Z", "2026-12-05T01:00:00+0100", "2026-12-05T01:00:00.Z",
                          "2026-12-05X01:00:00Z", "-5", "1e9", "99999999999999999999", "2026-12-05T01:00:00Zjunk"}) {
    auto t = ParseExportTime(bad);
    EXPECT_FALSE(t.ok()) << "\"" << bad << "\" gave " << (t.ok() ? *t : 0);
    if (!t.ok()) {
      EXPECT_NE(t.status().message().find("RFC 3339"), std::string::npos);
      EXPECT_EQ(t.status().sqlstate(), "22007");
    }
  }
}

TEST(UsageExportTest, ParsesTheFormatNames) {
  EXPECT_EQ(ParseExportFormat("csv"), ExportFormat::kCsv);
  EXPECT_EQ(ParseExportFormat("jsonl"), ExportFormat::kJsonLines);
  EXPECT_FALSE(ParseExportFormat("json"));
  EXPECT_FALSE(ParseExportFormat("CSV"));
}

}  // namespace
}  // namespace pgtenant::billing
