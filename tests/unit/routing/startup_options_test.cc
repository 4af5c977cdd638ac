#include "routing/startup_options.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <utility>
#include <vector>

namespace pgtenant::routing {
namespace {

using Settings = std::vector<std::pair<std::string, std::string>>;
using Tokens = std::vector<std::string>;

struct OptionsCase {
  const char* name;
  std::string options;
  Settings settings;
  Tokens unparsed;
};

class StartupOptionsTable : public ::testing::TestWithParam<OptionsCase> {};

TEST_P(StartupOptionsTable, Parses) {
  const OptionsCase& c = GetParam();
  Result<StartupOptions> got = ParseStartupOptions(c.options);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->settings, c.settings);
  EXPECT_EQ(got->unparsed, c.unparsed);
  // Formatting and parsing again gives the same settings and switches.
  Result<StartupOptions> again = ParseStartupOptions(FormatStartupOptions(*got));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->settings, c.settings);
  EXPECT_EQ(again->unparsed, c.unparsed);
}

const OptionsCase kOptionsCases[] = {
    {"empty", "", {}, {}},
    {"spaces_only", "  \t\n ", {}, {}},
    {"c_separate", "-c app.tenant_id=acme", {{"app.tenant_id", "acme"}}, {}},
    {"c_attached", "-capp.tenant_id=acme", {{"app.tenant_id", "acme"}}, {}},
    {"double_dash", "--app.tenant_id=acme", {{"app.tenant_id", "acme"}}, {}},
    {"dash_in_name_becomes_underscore", "--app.tenant-id=a-b", {{"app.tenant_id", "a-b"}}, {}},
    {"several", "-c a=1   --b=2 -cc=3", {{"a", "1"}, {"b", "2"}, {"c", "3"}}, {}},
    {"escaped_space", "-c search_path=a\\ b", {{"search_path", "a b"}}, {}},
    {"escaped_backslash", "-c x=a\\\\b", {{"x", "a\\b"}}, {}},
    {"escaped_space_between", "-c\\ x=1", {{" x", "1"}}, {}},
    {"empty_value", "-c x=", {{"x", ""}}, {}},
    {"value_with_equals", "-c x=a=b", {{"x", "a=b"}}, {}},
    {"cluster_with_c", "-ec app.tenant_id=evil", {{"app.tenant_id", "evil"}}, {"-e"}},
    {"cluster_with_attached_c", "-Fcx=1", {{"x", "1"}}, {"-F"}},
    {"switch_with_argument", "-B 100 -c x=1", {{"x", "1"}}, {"-B", "100"}},
    {"switch_with_attached_argument", "-B100", {}, {"-B", "100"}},
    {"argument_looks_like_c", "-D -c x=1", {}, {"-D", "-c", "x=1"}},
    {"flag_only", "-e -F", {}, {"-e", "-F"}},
    {"end_of_switches", "--", {}, {"--"}},
    {"not_a_switch", "foo -c x=1", {{"x", "1"}}, {"foo"}},
    {"lone_dash", "-", {}, {"-"}},
    {"trailing_backslash", "-c x=1\\", {{"x", "1"}}, {}},
};

INSTANTIATE_TEST_SUITE_P(Cases, StartupOptionsTable, ::testing::ValuesIn(kOptionsCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(StartupOptions, ArgumentLooksLikeCIsNotASetting) {
  // "-D -c" hands "-c" to -D as its argument, so "x=1" is a stray word, not a setting.
  Result<StartupOptions> got = ParseStartupOptions("-D -c x=1");
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->settings.empty());
}

TEST(StartupOptions, Errors) {
  const char* bad[] = {"-c", "-c x", "--x", "-c x=1 -c", "-ec", "-c\\ ", "-B \\", "-c x=1 \\"};
  for (const char* options : bad) {
    Result<StartupOptions> got = ParseStartupOptions(options);
    ASSERT_FALSE(got.ok()) << options;
    EXPECT_EQ(got.status().sqlstate(), "42601") << options;
  }
  EXPECT_NE(ParseStartupOptions("--x").status().message().find("--x requires a value"),
            std::string::npos);
}

TEST(StartupOptions, SplitMatchesPgSplitOpts) {
  EXPECT_EQ(SplitOptionsString(" a  b\\ c\td\\\\ "), (Tokens{"a", "b c", "d\\"}));
  EXPECT_EQ(SplitOptionsString("\\"), (Tokens{""}));
  EXPECT_EQ(SplitOptionsString("a\\"), (Tokens{"a"}));
}

TEST(StartupOptions, EscapeRoundTrips) {
  const std::string tokens[] = {"plain", "a b", "tab\there", "back\\slash", "new\nline", " "};
  for (const std::string& t : tokens) {
    EXPECT_EQ(SplitOptionsString(EscapeOptionToken(t)), Tokens{t}) << t;
  }
}

TEST(StartupOptions, RandomBytesRoundTrip) {
  const std::string alphabet = "-c=\\ \tabx.B-";
  std::mt19937 rng(99);
  for (int round = 0; round < 20000; ++round) {
    std::string options(rng() % 24, ' ');
    for (char& c : options) c = alphabet[rng() % alphabet.size()];
    Result<StartupOptions> got = ParseStartupOptions(options);
    if (!got.ok()) {
      EXPECT_EQ(got.status().sqlstate(), "42601");
      continue;
    }
    Result<StartupOptions> again = ParseStartupOptions(FormatStartupOptions(*got));
    ASSERT_TRUE(again.ok()) << options;
    ASSERT_EQ(again->settings, got->settings) << options;
  }
}

TEST(StartupOptions, OversizedInput) {
  std::string options;
  for (int i = 0; i < 5000; ++i) options += "-c k" + std::to_string(i) + "=v ";
  Result<StartupOptions> got = ParseStartupOptions(options);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->settings.size(), 5000u);
  EXPECT_EQ(got->settings.back(), (std::pair<std::string, std::string>{"k4999", "v"}));
}

}  // namespace
}  // namespace pgtenant::routing
