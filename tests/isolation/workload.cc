// workload.h: running the clients and summing up what they saw.
#include "isolation/workload.h"

#include <memory>
#include <sstream>
#include <thread>

#include "isolation/worker.h"

namespace pgtenant::isolation {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr int kSamplesPerKind = 5;
constexpr std::chrono::seconds kOverrunGrace{60};

}  // namespace

void Tally::Sample(const std::string& kind, const std::string& text) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [k, n] : per_kind_) {
    if (k != kind) continue;
    if (n >= kSamplesPerKind) return;
    ++n;
    samples_.push_back(kind + ": " + text);
    return;
  }
  per_kind_.emplace_back(kind, 1);
  samples_.push_back(kind + ": " + text);
}

std::vector<std::string> Tally::Samples() const {
  std::lock_guard<std::mutex> lock(mu_);
  return samples_;
}

std::string WorkloadReport::Summary() const {
  std::ostringstream s;
  s << clients << " clients, " << seconds << " s: " << actions << " actions, " << units_checked
    << " units checked (" << units_unchecked << " unchecked after the client's own hidden "
    << "change), " << connects << " connects, " << tenant_switches << " tenant switches, "
    << adversarial_actions << " adversarial actions, " << cancels_sent << " cancels ("
    << cancels_effective << " effective)\n"
    << "tenant leaks " << tenant_leaks << ", state leaks " << state_leaks << ", self mismatches "
    << self_mismatches << ", unexpected errors " << unexpected_errors << " (honest clients' "
    << honest_errors << "), expected errors "
    << expected_errors << (overran ? ", OVERRAN (watchdog fired)" : "") << "\n";
  for (const auto& line : samples) s << "  " << line << "\n";
  return s.str();
}

WorkloadReport RunWorkload(const WorkloadOptions& options,
                           const std::function<void()>& on_overrun) {
  Tally tally;
  auto start = Clock::now();
  auto deadline = start + options.duration;
  std::atomic<int> running{options.clients};
  std::vector<std::thread> threads;
  threads.reserve(options.clients);
  for (int i = 0; i < options.clients; ++i) {
    threads.emplace_back([&, i] {
      {
        Worker worker(i, options, &tally, deadline);
        worker.Run();
      }
      --running;
    });
  }
  bool overran = false;
  while (running > 0) {
    if (!overran && Clock::now() > deadline + kOverrunGrace) {
      overran = true;
      if (on_overrun) on_overrun();
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  for (auto& t : threads) t.join();

  WorkloadReport r;
  r.clients = options.clients;
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.actions = tally.actions;
  r.units_checked = tally.units_checked;
  r.units_unchecked = tally.units_unchecked;
  r.connects = tally.connects;
  r.tenant_switches = tally.tenant_switches;
  r.adversarial_actions = tally.adversarial_actions;
  r.expected_errors = tally.expected_errors;
  r.unexpected_errors = tally.unexpected_errors;
  r.honest_errors = tally.honest_errors;
  r.tenant_leaks = tally.tenant_leaks;
  r.state_leaks = tally.state_leaks;
  r.self_mismatches = tally.self_mismatches;
  r.cancels_sent = tally.cancels_sent;
  r.cancels_effective = tally.cancels_effective;
  r.overran = overran;
  r.samples = tally.Samples();
  return r;
}

}  // namespace pgtenant::isolation
