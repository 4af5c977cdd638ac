// harness.h: the PostgreSQL fixture, child processes (pg_ctl, pgtenant) and the test base class.
// libpq helpers are in pq_util.cc, the standard config in proxy_config.cc.
#include "integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#ifndef PGTENANT_BINARY
#error "PGTENANT_BINARY must name the pgtenant executable"
#endif

namespace pgtenant::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return static_cast<bool>(out);
}

std::string MakeTempDir() {
  char tmpl[] = "/tmp/pgtenant-it.XXXXXX";
  const char* dir = mkdtemp(tmpl);
  return dir ? dir : "";
}

// Converts a waitpid status to exit code, or 128+signal.
int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Who a child runs as; resolved before fork because NSS look-ups are not safe in a forked child
// of a multi-threaded process.
struct Identity {
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

// Switching needs root; as anyone else the child runs as ourselves.
bool ResolveIdentity(const std::string& user, Identity* id) {
  if (user.empty() || geteuid() != 0) return true;
  struct passwd* pw = getpwnam(user.c_str());
  if (pw == nullptr) return false;
  id->switch_user = true;
  id->uid = pw->pw_uid;
  id->gid = pw->pw_gid;
  int n = 64;
  id->groups.resize(n);
  if (getgrouplist(user.c_str(), pw->pw_gid, id->groups.data(), &n) < 0) {
    id->groups.resize(n);
    getgrouplist(user.c_str(), pw->pw_gid, id->groups.data(), &n);
  }
  id->groups.resize(n);
  return true;
}

// In a forked child: exec argv with stdout/stderr into `log_fd`. Never returns.
[[noreturn]] void ExecChild(char* const* argv, int log_fd, const Identity& id) {
  // The child must not outlive a crashed test binary.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int null_fd = open("/dev/null", O_RDONLY);
  dup2(null_fd, STDIN_FILENO);
  dup2(log_fd, STDOUT_FILENO);
  dup2(log_fd, STDERR_FILENO);
  bool ok = chdir("/") == 0;
  if (ok && id.switch_user) {
    ok = setgroups(id.groups.size(), id.groups.data()) == 0 && setgid(id.gid) == 0 &&
         setuid(id.uid) == 0;
  }
  if (!ok) {
    dprintf(STDERR_FILENO, "harness: cannot switch user: %s\n", strerror(errno));
    _exit(126);
  }
  execv(argv[0], argv);
  dprintf(STDERR_FILENO, "harness: exec %s: %s\n", argv[0], strerror(errno));
  _exit(127);
}

// argv as execv wants it; the strings stay owned by `args`.
std::vector<char*> ArgvOf(const std::vector<std::string>& args) {
  std::vector<char*> out;
  for (const auto& a : args) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

bool TcpConnects(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

}  // namespace

// ---- PgFixture ----

const PgFixture& PgFixture::Get() {
  static const PgFixture fixture = [] {
    PgFixture f;
    const char* env_path = getenv("PGTENANT_FIXTURE_ENV");
    if (env_path == nullptr || *env_path == '\0') {
      fprintf(stderr,
              "PGTENANT_FIXTURE_ENV is not set: run the integration tests through ctest, or "
              "start tests/integration/pg_fixture.sh start DIR and export "
              "PGTENANT_FIXTURE_ENV=DIR/pg.env\n");
      exit(2);
    }
    std::ifstream in(env_path);
    std::string line;
    std::map<std::string, std::string> kv;
    while (std::getline(in, line)) {
      size_t eq = line.find('=');
      if (eq != std::string::npos) kv[line.substr(0, eq)] = line.substr(eq + 1);
    }
    f.port = atoi(kv["PGT_PG_PORT"].c_str());
    f.data_dir = kv["PGT_PG_DATA"];
    f.bin_dir = kv["PGT_PG_BIN"];
    f.log_file = kv["PGT_PG_LOG"];
    f.run_as = kv["PGT_PG_RUNAS"];
    f.superuser = kv["PGT_PG_SUPERUSER"];
    f.superpass = kv["PGT_PG_SUPERPASS"];
    f.ca_file = kv["PGT_PG_CA"];
    if (f.port <= 0 || f.data_dir.empty() || f.bin_dir.empty()) {
      fprintf(stderr, "%s does not describe a running fixture (no port/data/bin)\n", env_path);
      exit(2);
    }
    if (f.log_file.empty()) f.log_file = f.data_dir + "/postgres.log";
    return f;
  }();
  return fixture;
}

std::string PgFixture::ConnInfo(const std::string& db, const std::string& user,
                                const std::string& password) const {
  return "host=127.0.0.1 port=" + std::to_string(port) + " dbname=" + db + " user=" + user +
         " password=" + password + " sslmode=disable connect_timeout=10";
}

void PgFixture::StopImmediate() const {
  CommandResult r = RunCommand({bin_dir + "/pg_ctl", "-D", data_dir, "-m", "immediate", "-w",
                                "stop"},
                               milliseconds(60000), run_as);
  EXPECT_EQ(r.exit_code, 0) << "pg_ctl stop failed: " << r.output;
}

void PgFixture::Start() const {
  CommandResult r = RunCommand({bin_dir + "/pg_ctl", "-D", data_dir, "-l", log_file, "-w", "-t",
                                "60", "start"},
                               milliseconds(90000), run_as);
  EXPECT_EQ(r.exit_code, 0) << "pg_ctl start failed: " << r.output;
}

bool PgFixture::IsRunning() const {
  CommandResult r =
      RunCommand({bin_dir + "/pg_ctl", "-D", data_dir, "status"}, milliseconds(30000), run_as);
  return r.exit_code == 0;
}

void PgFixture::EnsureRunning() const {
  if (!IsRunning()) Start();
}

// ---- processes ----

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

bool DirectMode() {
  const char* v = getenv("PGTENANT_TEST_DIRECT");
  return v != nullptr && std::string(v) == "1";
}

CommandResult RunCommand(const std::vector<std::string>& argv, milliseconds timeout,
                         const std::string& run_as) {
  CommandResult result;
  // Output goes to a file, not a pipe: a daemon started by the command (pg_ctl start) must not
  // hold our read end open.
  char tmpl[] = "/tmp/pgtenant-cmd.XXXXXX";
  int log_fd = mkstemp(tmpl);
  if (log_fd < 0) return result;
  std::string log_path = tmpl;
  Identity id;
  if (!ResolveIdentity(run_as, &id)) {
    close(log_fd);
    unlink(log_path.c_str());
    result.output = "no such user: " + run_as;
    return result;
  }
  std::vector<char*> exec_argv = ArgvOf(argv);
  pid_t pid = fork();
  if (pid == 0) ExecChild(exec_argv.data(), log_fd, id);
  close(log_fd);
  if (pid < 0) {
    unlink(log_path.c_str());
    return result;
  }
  auto deadline = Clock::now() + timeout;
  int status = 0;
  for (;;) {
    pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      break;
    }
    if (Clock::now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      result.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  result.output = ReadFile(log_path);
  unlink(log_path.c_str());
  return result;
}

// ---- ProxyProcess ----

std::unique_ptr<ProxyProcess> ProxyProcess::Start(const std::string& yaml, std::string* error) {
  std::unique_ptr<ProxyProcess> p(new ProxyProcess());
  p->port_ = ListenPortOf(yaml);
  p->dir_ = MakeTempDir();
  if (p->port_ <= 0 || p->dir_.empty()) {
    *error = "no listen port in the config, or no temp dir";
    return nullptr;
  }
  p->config_path_ = p->dir_ + "/pgtenant.yaml";
  p->log_path_ = p->dir_ + "/pgtenant.log";
  if (!WriteFile(p->config_path_, yaml)) {
    *error = "cannot write " + p->config_path_;
    return nullptr;
  }
  int log_fd = open(p->log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    *error = "cannot create " + p->log_path_;
    return nullptr;
  }
  std::vector<std::string> args = {PGTENANT_BINARY, "--config", p->config_path_};
  std::vector<char*> exec_argv = ArgvOf(args);
  p->pid_ = fork();
  if (p->pid_ == 0) ExecChild(exec_argv.data(), log_fd, Identity{});
  close(log_fd);
  if (p->pid_ < 0) {
    *error = "fork failed";
    return nullptr;
  }
  auto deadline = Clock::now() + milliseconds(10000);
  while (Clock::now() < deadline) {
    if (!p->Running()) {
      *error = "pgtenant exited with status " + std::to_string(p->exit_status_) +
               " before listening; its log:\n" + p->Log();
      return nullptr;
    }
    if (TcpConnects(p->port_)) return p;
    std::this_thread::sleep_for(milliseconds(50));
  }
  *error = "pgtenant did not listen on 127.0.0.1:" + std::to_string(p->port_) +
           " within 10 s; its log:\n" + p->Log();
  return nullptr;  // the destructor kills it
}

ProxyProcess::~ProxyProcess() {
  if (pid_ > 0) Stop();
  if (!dir_.empty()) {
    unlink(config_path_.c_str());
    unlink(log_path_.c_str());
    rmdir(dir_.c_str());
  }
}

bool ProxyProcess::Running() {
  if (exited_ || pid_ <= 0) return false;
  int status = 0;
  pid_t done = waitpid(pid_, &status, WNOHANG);
  if (done == pid_) {
    exited_ = true;
    exit_status_ = DecodeWaitStatus(status);
    return false;
  }
  return true;
}

bool ProxyProcess::WaitExit(milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Running()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return true;
}

bool ProxyProcess::Stop() {
  if (!Running()) return true;
  kill(pid_, SIGTERM);
  if (WaitExit(milliseconds(10000))) return true;
  kill(pid_, SIGKILL);
  WaitExit(milliseconds(10000));
  return false;
}

void ProxyProcess::Signal(int sig) {
  if (Running()) kill(pid_, sig);
}

std::string ProxyProcess::Log() const { return ReadFile(log_path_); }

// ---- IntegrationTest ----

void MakeTestCerts(const std::string& dir) {
  CommandResult r = RunCommand(
      {"/bin/bash", std::string(PGTENANT_INTEGRATION_DIR) + "/make_test_certs.sh", dir}, std::chrono::seconds(60));
  ASSERT_EQ(r.exit_code, 0) << "make_test_certs.sh failed: " << r.output;
}

std::string ListenTlsYaml(const std::string& mode, const std::string& dir) {
  return "  tls:\n    mode: " + mode + "\n    cert_file: " + dir + "/server.crt\n    key_file: " + dir +
         "/server.key\n";
}

void IntegrationTest::TearDown() {
  if (proxy_ && !proxy_->Stop()) {
    ADD_FAILURE() << "pgtenant did not exit within 10 s of SIGTERM; its log:\n" << proxy_->Log();
  }
  proxy_.reset();
}

void IntegrationTest::StartTarget(const ProxyConfigOptions& options, bool direct_ok) {
  const PgFixture& pg = PgFixture::Get();
  if (DirectMode()) {
    if (!direct_ok) GTEST_SKIP() << "needs pgtenant (PGTENANT_TEST_DIRECT=1)";
    return;
  }
  std::string error;
  // A port picked free can be taken before pgtenant binds it; try a few.
  for (int attempt = 0; attempt < 3 && !proxy_; ++attempt) {
    proxy_ = ProxyProcess::Start(ProxyConfig(FreePort(), pg, options), &error);
  }
  ASSERT_TRUE(proxy_) << error;
}

std::string IntegrationTest::ClientConnInfo(const std::string& extra) const {
  std::string base = DirectMode()
                         ? "user=app_rls password=app_rls_pw"
                         : "user=app password=app_pw";
  return "host=127.0.0.1 port=" + std::to_string(TargetPort()) + " dbname=app " + base +
         " sslmode=disable connect_timeout=10 " + extra;
}

int IntegrationTest::TargetPort() const {
  return proxy_ ? proxy_->port() : PgFixture::Get().port;
}

bool IntegrationTest::TargetAlive() { return proxy_ ? proxy_->Running() : true; }

std::string IntegrationTest::ProxyLog() const { return proxy_ ? proxy_->Log() : ""; }

}  // namespace pgtenant::testing
