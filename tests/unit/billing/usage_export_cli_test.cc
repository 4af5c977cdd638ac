// `pgtenant usage export` end to end, without PostgreSQL: the built pgtenant binary
// (PGTENANT_BINARY) reads a ledger this test writes, and holds open (locked) as a running
// pgtenant would; its stdout, stderr and exit status are checked.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "billing/usage_ledger.h"
#include "billing/usage_reader.h"
#include "temp_dir.h"

namespace pgtenant::billing {
namespace {

constexpr int64_t k20261205T01 = 1796432400;  // 2026-12-05T01:00:00Z

struct RunResult {
  int status = -1;  // the exit status; -1 when killed (the 30 s bound)
  std::string out;
  std::string err;
};

// Runs pgtenant with `args` in `cwd`, its output captured; killed after 30 s.
RunResult RunPgtenant(const std::vector<std::string>& args, const std::string& cwd = ".") {
  int out_pipe[2], err_pipe[2];
  EXPECT_EQ(pipe2(out_pipe, O_CLOEXEC), 0);
  EXPECT_EQ(pipe2(err_pipe, O_CLOEXEC), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    if (chdir(cwd.c_str()) != 0) _exit(127);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(PGTENANT_BINARY));
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(PGTENANT_BINARY, argv.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  RunResult r;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0 && std::chrono::steady_clock::now() < deadline) {
    if (poll(fds, 2, 100) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (const pollfd& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
  if (open_fds > 0) kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

class UsageExportCliTest : public ::testing::Test {
 protected:
  // A live ledger: one closed hour of acme and globex, and acme's next hour still open.
  void SetUp() override {
    LedgerOptions o;
    o.path = LedgerPathIn(dir_.File(""));
    o.window_seconds = 3600;
    o.segment0_records = 32;
    auto l = UsageLedger::Open(o, nullptr);
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    ledger_ = std::move(l).value();
    ASSERT_TRUE(ledger_->Add("globex", Meter::kQueries, 12, k20261205T01 + 5));
    ASSERT_TRUE(ledger_->Add("acme", Meter::kServerTime, 2500, k20261205T01 + 10));
    ASSERT_TRUE(ledger_->Add("acme", Meter::kQueries, 3, k20261205T01 + 20));
    ASSERT_EQ(ledger_->CloseWindowsBefore(k20261205T01 + 3600), 3u);
    ASSERT_TRUE(ledger_->Add("acme", Meter::kQueries, 4, k20261205T01 + 3700));
  }
  std::string StateDir() const { return dir_.File(""); }

  TempDir dir_;
  std::unique_ptr<UsageLedger> ledger_;  // held open: the flock of a running pgtenant
};

TEST_F(UsageExportCliTest, ExportsJsonLinesOfALiveLedger) {
  RunResult r = RunPgtenant({"usage", "export", "--state-dir", StateDir(), "--format", "jsonl"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 4u) << r.out;
  EXPECT_EQ(lines[0],
            "{\"tenant\":\"acme\",\"meter\":\"server_ms\",\"window_start\":\"2026-12-05T01:00:00Z\","
            "\"window_end\":\"2026-12-05T02:00:00Z\",\"window_start_unix\":1796432400,\"value\":2500,"
            "\"billed_value\":3,\"state\":\"closed\"}");
  EXPECT_EQ(lines[1],
            "{\"tenant\":\"acme\",\"meter\":\"queries\",\"window_start\":\"2026-12-05T01:00:00Z\","
            "\"window_end\":\"2026-12-05T02:00:00Z\",\"window_start_unix\":1796432400,\"value\":3,"
            "\"billed_value\":3,\"state\":\"closed\"}");
  EXPECT_NE(lines[2].find("\"tenant\":\"globex\",\"meter\":\"queries\""), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("\"value\":12,"), std::string::npos) << lines[2];
  EXPECT_EQ(lines[3],
            "{\"tenant\":\"acme\",\"meter\":\"queries\",\"window_start\":\"2026-12-05T02:00:00Z\","
            "\"window_end\":\"2026-12-05T03:00:00Z\",\"window_start_unix\":1796436000,\"value\":4,"
            "\"billed_value\":4,\"state\":\"open\"}");
  // The export disturbed nothing: the owner still adds.
  EXPECT_TRUE(ledger_->Add("acme", Meter::kQueries, 1, k20261205T01 + 3701));
  RunResult again = RunPgtenant({"usage", "export", "--state-dir", StateDir(), "--format", "jsonl"});
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_NE(again.out.find("\"value\":5,\"billed_value\":5,\"state\":\"open\""), std::string::npos) << again.out;
}

TEST_F(UsageExportCliTest, ExportsCsvSinceATime) {
  RunResult r = RunPgtenant({"usage", "export", "--state-dir", StateDir(), "--since", "2026-12-05T02:00:00Z"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "tenant,meter,window_start,window_end,value,billed_value,state\n"
            "acme,queries,2026-12-05T02:00:00Z,2026-12-05T03:00:00Z,4,4,open\n");
  r = RunPgtenant({"usage", "export", "--state-dir", StateDir(), "--since", "2026-12-05",
                   "--until", "1796436000"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(Lines(r.out).size(), 4u) << r.out;  // the header and the three closed windows
}

TEST_F(UsageExportCliTest, ReadsTheStateDirFromTheConfig) {
  std::string config = dir_.File("pgtenant.yaml");
  {
    std::ofstream f(config);
    f << "billing:\n  state_dir: .\n"  // relative to the config file's directory
         "tenancy: {default_pool: p}\n"
         "pools:\n  p: {database: d, user: u}\n";
  }
  RunResult r = RunPgtenant({"usage", "export", "--config", config});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(Lines(r.out).size(), 5u) << r.out;
  r = RunPgtenant({"usage", "export"}, StateDir());  // ./pgtenant.yaml by default
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(Lines(r.out).size(), 5u) << r.out;

  {
    std::ofstream f(config);
    f << "tenancy: {default_pool: p}\npools:\n  p: {database: d, user: u}\n";
  }
  r = RunPgtenant({"usage", "export", "--config", config});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("billing is off"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  {
    std::ofstream f(config);
    f << "pools: [\n";
  }
  r = RunPgtenant({"usage", "export", "--config", config});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("invalid config"), std::string::npos) << r.err;
}

TEST_F(UsageExportCliTest, ErrorsAndUsageErrors) {
  RunResult r = RunPgtenant({"usage", "export", "--state-dir", dir_.File("nowhere")});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("no billing ledger at"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"usage"}, {"usage", "import"}, {"usage", "export", "--format", "xml"},
        {"usage", "export", "--since", "yesterday"}, {"usage", "export", "--state-dir"},
        {"usage", "export", "--bogus"},
        {"usage", "export", "--since", "2026-12-05", "--until", "2026-12-04"}}) {
    r = RunPgtenant(args);
    EXPECT_EQ(r.status, 2) << args.back() << ": " << r.err;
    EXPECT_FALSE(r.err.empty()) << args.back();
    EXPECT_EQ(r.out, "") << args.back();
  }
  r = RunPgtenant({"--help"});
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("pgtenant usage export"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace pgtenant::billing
