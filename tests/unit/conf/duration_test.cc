#include "conf/duration.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>

namespace pgtenant::conf {
namespace {

TEST(ParseDuration, UnitsAndBareSeconds) {
  EXPECT_EQ(ParseDuration("500ms"), 500);
  EXPECT_EQ(ParseDuration("15s"), 15000);
  EXPECT_EQ(ParseDuration("10m"), 600000);
  EXPECT_EQ(ParseDuration("1h"), 3600000);
  EXPECT_EQ(ParseDuration("2d"), 172800000);
  EXPECT_EQ(ParseDuration("30"), 30000);
  EXPECT_EQ(ParseDuration("0"), 0);
  EXPECT_EQ(ParseDuration("0ms"), 0);
  EXPECT_EQ(ParseDuration("007s"), 7000);
}

TEST(ParseDuration, RejectsEverythingElse) {
  for (const char* bad : {"", "s", "ms", "-1", "-5s", "+5s", "1.5s", "5 s", " 5s", "5s ", "5S",
                          "5sec", "5msx", "5y", "0x10", "1e3", "5ss"}) {
    EXPECT_EQ(ParseDuration(bad), std::nullopt) << bad;
  }
}

TEST(ParseDuration, RejectsOverflow) {
  EXPECT_EQ(ParseDuration("99999999999999999999"), std::nullopt);  // beyond uint64
  EXPECT_EQ(ParseDuration("9223372036854775807s"), std::nullopt);  // fits, but not in ms
  EXPECT_EQ(ParseDuration("106751991168d"), std::nullopt);
  EXPECT_EQ(ParseDuration("106751991167d"), int64_t{106751991167} * 86400000);
  EXPECT_EQ(ParseDuration("9223372036854775807ms"), INT64_MAX);
}

TEST(FormatDuration, PicksTheLargestExactUnit) {
  EXPECT_EQ(FormatDuration(0), "0");
  EXPECT_EQ(FormatDuration(500), "500ms");
  EXPECT_EQ(FormatDuration(1500), "1500ms");
  EXPECT_EQ(FormatDuration(15000), "15s");
  EXPECT_EQ(FormatDuration(600000), "10m");
  EXPECT_EQ(FormatDuration(3600000), "1h");
  EXPECT_EQ(FormatDuration(172800000), "2d");
  for (Millis m : {Millis{1}, Millis{999}, Millis{61000}, Millis{90061001}}) {
    EXPECT_EQ(ParseDuration(FormatDuration(m)), m);
  }
}

TEST(ParseByteSize, SuffixesArePowersOf1024) {
  EXPECT_EQ(ParseByteSize("1024"), 1024u);
  EXPECT_EQ(ParseByteSize("100B"), 100u);
  EXPECT_EQ(ParseByteSize("64kB"), 64u * 1024);
  EXPECT_EQ(ParseByteSize("64KB"), 64u * 1024);
  EXPECT_EQ(ParseByteSize("16MB"), 16u * 1024 * 1024);
  EXPECT_EQ(ParseByteSize("16mb"), 16u * 1024 * 1024);
  EXPECT_EQ(ParseByteSize("1GB"), 1024u * 1024 * 1024);
  EXPECT_EQ(ParseByteSize("0"), 0u);
}

TEST(ParseByteSize, RejectsEverythingElse) {
  for (const char* bad : {"", "kB", "-1", "1.5MB", "16 MB", "16M", "16MiB", "1TB", "lots",
                          "18446744073709551616", "17179869184GB"}) {
    EXPECT_EQ(ParseByteSize(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(ParseByteSize("18446744073709551615"), UINT64_MAX);
}

}  // namespace
}  // namespace pgtenant::conf
