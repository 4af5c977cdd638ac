// Window arithmetic and meter-event identifiers (billing/window.h), meters (billing/meter.h) and
// the JSON helpers (billing/json.h).
#include "billing/window.h"

#include <gtest/gtest.h>

#include <set>

#include "billing/json.h"
#include "billing/meter.h"

namespace pgtenant::billing {
namespace {

TEST(WindowTest, WindowsAreAlignedOnTheEpoch) {
  EXPECT_EQ(WindowStart(1700000000, 3600), 1699999200);  // 22:00:00 UTC
  EXPECT_EQ(WindowStart(1699999200, 3600), 1699999200) << "a window's first second is inside it";
  EXPECT_EQ(WindowStart(1699999199, 3600), 1699995600);
  EXPECT_EQ(WindowStart(17, 5), 15);
  EXPECT_EQ(WindowEnd(15, 5), 20);
  EXPECT_EQ(WindowStart(-1, 3600), -3600) << "floors, even for a clock before 1970";
}

TEST(WindowTest, PlainIdentifierNamesEveryPart) {
  EXPECT_EQ(MeterEventIdentifier("eu1", "pgtenant_queries", "acme", 1699999200),
            "eu1-pgtenant_queries-acme-1699999200");
}

TEST(WindowTest, IdentifierIsDeterministicAndDistinct) {
  std::set<std::string> seen;
  for (std::string_view instance : {"a", "b"}) {
    for (std::string_view event : {"queries", "bytes_in"}) {
      for (std::string_view tenant : {"acme", "globex", "acme_2"}) {
        for (int64_t start : {0, 3600, 7200}) {
          std::string id = MeterEventIdentifier(instance, event, tenant, start);
          EXPECT_EQ(id, MeterEventIdentifier(instance, event, tenant, start));
          EXPECT_TRUE(seen.insert(id).second) << id;
        }
      }
    }
  }
}

TEST(WindowTest, LongOrAmbiguousPartsAreHashedWithinStripesLimit) {
  std::string long_tenant(90, 't');
  std::string id = MeterEventIdentifier("instance_name_twenty", "queries", long_tenant, 1699999200);
  EXPECT_LE(id.size(), kStripeIdentifierMaxLength);
  EXPECT_EQ(id.rfind("instance_name_twenty--", 0), 0u) << id;
  EXPECT_NE(id, MeterEventIdentifier("instance_name_twenty", "queries", long_tenant + "u", 1699999200));

  // With '-' inside a part, ("a-b", "c") and ("a", "b-c") would print alike: both are hashed.
  std::string x = MeterEventIdentifier("i", "a-b", "c", 60);
  std::string y = MeterEventIdentifier("i", "a", "b-c", 60);
  EXPECT_NE(x, y);
  EXPECT_EQ(x.rfind("i--", 0), 0u);
  // A tenant id of any bytes (a custom tenancy.id_pattern) stays within Stripe's limit.
  EXPECT_LE(MeterEventIdentifier("i", "e", std::string(1024, '\xff'), -1).size(), kStripeIdentifierMaxLength);
}

TEST(WindowTest, InstancePrefixRule) {
  EXPECT_TRUE(ValidInstance("eu_west_1"));
  EXPECT_FALSE(ValidInstance(""));
  EXPECT_FALSE(ValidInstance("EU"));
  EXPECT_FALSE(ValidInstance("eu-1")) << "'-' separates the identifier's parts";
  EXPECT_FALSE(ValidInstance(std::string(21, 'a')));
}

TEST(MeterTest, ServerTimeIsRoundedOncePerWindow) {
  EXPECT_EQ(BilledValue(Meter::kServerTime, 1499), 1u);
  EXPECT_EQ(BilledValue(Meter::kServerTime, 1500), 2u);
  EXPECT_EQ(BilledValue(Meter::kServerTime, 499), 0u);
  EXPECT_EQ(BilledValue(Meter::kQueries, 499), 499u);
  for (size_t i = 0; i < kMeterCount; ++i) {
    EXPECT_EQ(MeterFromName(MeterName(static_cast<Meter>(i))), static_cast<Meter>(i));
  }
  EXPECT_FALSE(MeterFromName("nope"));
}

TEST(JsonTest, EscapesForTheDeadLetterFile) {
  std::string out;
  AppendJsonString(&out, "a\"b\\c\nd\x01");
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\nd\\u0001\"");
}

TEST(JsonTest, ReadsStripesErrorObject) {
  auto e = StringMembersOf(
      R"({"error": {"code": "rate_limit", "doc_url": null, "message": "Too \"many\"", "param": ["x", {"y": 1}], "type": "invalid_request_error"}})",
      "error");
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)["code"], "rate_limit");
  EXPECT_EQ((*e)["message"], "Too \"many\"");
  EXPECT_EQ((*e)["type"], "invalid_request_error");
  EXPECT_EQ(e->count("doc_url"), 0u);
  for (std::string_view bad : {"", "<html>502</html>", "{\"error\": {\"message\": \"unterminated",
                               "{\"other\": 1}", "[1,2]"}) {
    EXPECT_FALSE(StringMembersOf(bad, "error")) << bad;
  }
  std::string deep(10000, '[');
  EXPECT_FALSE(StringMembersOf("{\"a\":" + deep, "error")) << "nesting is bounded";
}

}  // namespace
}  // namespace pgtenant::billing
