// pgtenant command line: run the proxy, check a config (docs/reference.md section 1), or export
// the usage ledger (docs/billing.md, "Export").
#include <signal.h>
#include <sys/resource.h>
#include <uv.h>

#include <cstring>
#include <iostream>
#include <optional>
#include <string>

#include "billing/usage_export.h"
#include "billing/usage_reader.h"
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
  pgtenant usage export [--config FILE] [--state-dir DIR] [--since T] [--until T]
                        [--format csv|jsonl]
                                         print the usage ledger of billing.state_dir (or DIR)
                                         to stdout, one (tenant, meter, window) a row, windows
                                         ending after --since and starting before --until
                                         (T: 2026-12-01T00:00:00Z, 2026-12-01 or Unix seconds);
                                         reads a running pgtenant's ledger without disturbing it
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

// `pgtenant usage export ...`; argv[first] is the first argument after "export".
// Exit 0: exported; 1: no ledger to read (or a bad config); 2: a usage error.
int UsageExportMain(int argc, char** argv, int first) {
  namespace billing = pgtenant::billing;
  std::string config_path = "pgtenant.yaml";
  std::optional<std::string> state_dir;
  billing::ExportOptions options;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* what) -> std::optional<std::string> {
      if (i + 1 >= argc) {
        std::cerr << "pgtenant usage export: " << arg << " needs " << what << "\n";
        return std::nullopt;
      }
      return std::string(argv[++i]);
    };
    auto when = [&](std::optional<int64_t>* out) -> bool {
      std::optional<std::string> v = value("a time");
      if (!v) return false;
      pgtenant::Result<int64_t> t = billing::ParseExportTime(*v);
      if (!t.ok()) {
        std::cerr << "pgtenant usage export: " << arg << ": " << t.status().message() << "\n";
        return false;
      }
      *out = *t;
      return true;
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (arg == "--config" || arg == "-c") {
      std::optional<std::string> v = value("a FILE");
      if (!v) return 2;
      config_path = *v;
    } else if (arg == "--state-dir") {
      state_dir = value("a DIR");
      if (!state_dir) return 2;
      if (state_dir->empty()) {
        std::cerr << "pgtenant usage export: --state-dir needs a DIR\n";
        return 2;
      }
    } else if (arg == "--since") {
      if (!when(&options.since)) return 2;
    } else if (arg == "--until") {
      if (!when(&options.until)) return 2;
    } else if (arg == "--format") {
      std::optional<std::string> v = value("csv or jsonl");
      if (!v) return 2;
      std::optional<billing::ExportFormat> f = billing::ParseExportFormat(*v);
      if (!f) {
        std::cerr << "pgtenant usage export: unknown format \"" << *v << "\" (csv or jsonl)\n";
        return 2;
      }
      options.format = *f;
    } else {
      std::cerr << "pgtenant usage export: unknown argument \"" << arg << "\"\n" << kUsage;
      return 2;
    }
  }
  if (options.since && options.until && *options.until <= *options.since) {
    std::cerr << "pgtenant usage export: --until must be after --since\n";
    return 2;
  }
  if (!state_dir) {
    // The config is read for billing.state_dir only; the export needs nothing else from it.
    pgtenant::conf::LoadResult r = pgtenant::conf::LoadConfigFile(config_path);
    if (!r.ok()) {
      for (const auto& d : r.diagnostics) std::cerr << pgtenant::conf::FormatDiagnostic(d, config_path) << "\n";
      std::cerr << config_path << ": invalid config, cannot find billing.state_dir\n";
      return 1;
    }
    if (!r.config->billing.enabled()) {
      std::cerr << "pgtenant usage export: billing is off in " << config_path
                << " (no billing.state_dir): name the ledger's directory with --state-dir DIR\n";
      return 1;
    }
    state_dir = r.config->billing.state_dir;
  }
  pgtenant::Result<billing::LedgerContents> ledger = billing::ReadUsageLedger(billing::LedgerPathIn(*state_dir));
  if (!ledger.ok()) {
    std::cerr << "pgtenant usage export: " << ledger.status().message() << "\n";
    return 1;
  }
  if (ledger->corrupt > 0) {
    std::cerr << "pgtenant usage export: " << ledger->corrupt
              << " records fail their checksum (torn writes?) and are not exported\n";
  }
  billing::WriteUsageExport(std::move(ledger->records), options, std::cout);
  std::cout.flush();
  if (!std::cout) {
    std::cerr << "pgtenant usage export: cannot write to stdout\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = "pgtenant.yaml";
  if (argc >= 2 && std::strcmp(argv[1], "usage") == 0) {
    if (argc >= 3 && std::strcmp(argv[2], "export") == 0) return UsageExportMain(argc, argv, 3);
    std::cerr << "pgtenant usage: expected \"export\"\n" << kUsage;
    return 2;
  }
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
