#include "conf/check_config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>
#include <string>

namespace pgtenant::conf {
namespace {

const std::string kTestdata = PGTENANT_TESTDATA;

TEST(CheckConfigMain, ValidConfigPrintsOk) {
  std::string file = kTestdata + "/minimal.yaml";
  std::ostringstream out;
  EXPECT_EQ(CheckConfigMain(file, out), 0);
  EXPECT_EQ(out.str(), file + ": OK\n");
}

TEST(CheckConfigMain, WarningsStillOk) {
  std::string file = kTestdata + "/plaintext_warning.yaml";
  std::ostringstream out;
  EXPECT_EQ(CheckConfigMain(file, out), 0);
  EXPECT_EQ(out.str(), file + ":4: warning: auth.users.app.password: plaintext password (hint: "
                              "store a SCRAM verifier (SCRAM-SHA-256$...) or use password_env)\n" +
                       file + ": OK\n");
}

TEST(CheckConfigMain, ErrorsAreCountedAndEachPrinted) {
  std::string file = kTestdata + "/several_errors.yaml";
  std::ostringstream out;
  EXPECT_EQ(CheckConfigMain(file, out), 1);
  std::string text = out.str();
  EXPECT_NE(text.find(file + ":12: error: pools.shared.size: must be at least 1, got 0\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find(file + ":3: error: listen.max_client_conections: unknown key; did you mean "
                      "'max_client_connections'?"), std::string::npos) << text;
  size_t lines = 0;
  for (char c : text) lines += c == '\n';
  EXPECT_EQ(lines, 12u) << text;
  EXPECT_NE(text.rfind(file + ": 11 error(s)\n"), std::string::npos) << text;
}

TEST(CheckConfigMain, MissingFile) {
  std::ostringstream out;
  EXPECT_EQ(CheckConfigMain("/nonexistent/pgtenant.yaml", out), 1);
  EXPECT_EQ(out.str(),
            "/nonexistent/pgtenant.yaml: error: cannot open the config file: No such file or directory\n"
            "/nonexistent/pgtenant.yaml: 1 error(s)\n");
}

}  // namespace
}  // namespace pgtenant::conf
