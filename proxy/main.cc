// pgtenant command line: run the proxy, or check a config (docs/reference.md section 1).
#include <signal.h>
#include <sys/resource.h>
#include <uv.h>

#include <cstring>
#include <iostream>
#include <string>

#include "conf/check_config.h"
#include "conf/loader.h"
#include "proxy/log.h"
#include "proxy/pooler.h"

namespace {

constexpr const char* kUsage = R"(pgtenant - a PostgreSQL connection pooler for multi-tenant SaaS

Usage:
  pgtenant [--config FILE] [--verbose]   run the proxy (default FILE: ./pgtenant.yaml)
  pgtenant --check-config FILE           validate FILE, print every problem with its key path,
                                         exit 0 (valid) or 1 (invalid)
  pgtenant --version                     print the version
  pgtenant --help                        print this help

Signals: SIGHUP reloads the config; SIGTERM and SIGINT shut down gracefully (running
transactions may finish within timeouts.shutdown); a second SIGINT exits at once.
Logs go to stderr, one event a line. See docs/configuration.md for the config keys.
)";

// Thousands of clients need thousands of descriptors: take the hard limit.
void RaiseFileLimit() {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int Run(const std::string& path) {
  pgtenant::conf::LoadResult r = pgtenant::conf::LoadConfigFile(path);
  for (const auto& d : r.diagnostics) std::cerr << pgtenant::conf::FormatDiagnostic(d, path) << "\n";
  if (!r.ok()) {
    std::cerr << path << ": invalid config, not starting\n";
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  RaiseFileLimit();
  uv_loop_t* loop = uv_default_loop();
  int rc = 0;
  {
    pgtenant::proxy::Pooler pooler(loop, r.config);
    pgtenant::Status s = pooler.Start();
    if (!s.ok()) {
      LOG_ERROR("%s", s.message().c_str());
      uv_run(loop, UV_RUN_NOWAIT);
      return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    LOG_INFO("pgtenant stopped");
  }
  uv_loop_close(loop);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = "pgtenant.yaml";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "pgtenant: " << flag << " needs a FILE\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (arg == "--version" || arg == "-V") {
      std::cout << "pgtenant " << PGTENANT_VERSION << "\n";
      return 0;
    } else if (arg == "--check-config") {
      return pgtenant::conf::CheckConfigMain(value("--check-config"), std::cout);
    } else if (arg == "--config" || arg == "-c") {
      config_path = value("--config");
    } else if (arg == "--verbose" || arg == "-v") {
      pgtenant::proxy::SetLogLevel(pgtenant::proxy::LogLevel::kDebug);
    } else {
      std::cerr << "pgtenant: unknown argument \"" << arg << "\"\n" << kUsage;
      return 2;
    }
  }
  return Run(config_path);
}
