// The fixture of the machine tests: a FakePostgres backend, a real Pooler in front of it
// (PoolerHarness), libpq clients, and what pgtenant sent the backend. Pool `shared` has ONE
// server connection unless a test asks otherwise, so consecutive clients share it and every
// transaction of each shows up, in order, on backend connection 0.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "fake_postgres.h"
#include "pooler_harness.h"
#include "proxy/backend_state.h"
#include "proxy/pool.h"
#include "proxy/pooler.h"

namespace pgtenant::testing {

// What a session acts for, as the backend shows it: the tenant variable, or <none> when it is
// not set (never defined, or '' after a RESET of the placeholder).
inline constexpr const char* kTenantProbe =
    "select coalesce(nullif(current_setting('app.tenant_id', true), ''), '<none>')";

class MachineTest : public ::testing::Test {
 public:
  void SetUp() override { ASSERT_NE(fake_.port(), 0) << "the fake backend cannot listen"; }
  void TearDown() override {
    EXPECT_TRUE(harness_.Stop()) << "the pooler did not shut down in time";
    if (getenv("PGTENANT_TEST_VERBOSE") != nullptr || HasFailure()) {
      for (int conn = 0; conn < fake_.connections(); ++conn) {
        std::cerr << "backend connection " << conn << " received:\n";
        for (const std::string& m : fake_.Received(conn)) std::cerr << "  " << m << "\n";
      }
    }
  }

  void StartPooler(HarnessOptions options = {}) {
    options.backend_port = fake_.port();
    std::string error;
    ASSERT_TRUE(harness_.Start(options, &error)) << error;
  }

  // A client of `tenant` (startup option), with more conninfo `extra`.
  PGconnPtr Client(const std::string& tenant, const std::string& extra = "") {
    std::string error;
    std::string conninfo = tenant.empty() ? std::string() : "options='-c app.tenant_id=" + tenant + "' ";
    conninfo += extra;
    PGconnPtr c = harness_.Connect(conninfo, &error);
    EXPECT_TRUE(c) << "connect " << conninfo << ": " << error;
    return c;
  }
  // A client whose options are `options` verbatim.
  PGconnPtr ClientWithOptions(const std::string& options) {
    std::string error;
    PGconnPtr c = harness_.Connect("options='" + options + "'", &error);
    EXPECT_TRUE(c) << "connect with " << options << ": " << error;
    return c;
  }

  // Server connections of pool `name` right now, as the pooler counts them (-1: no answer).
  int ServerCount(const std::string& name) {
    int n = -1;
    harness_.RunOnLoop([&](proxy::Pooler& p) {
      auto it = p.pools().find(name);
      n = it == p.pools().end() ? 0 : it->second->server_count();
    });
    return n;
  }

  static std::string Tenant(PGconn* c) { return Value(c, kTenantProbe); }
  static std::string Show(PGconn* c, const std::string& name) { return Value(c, "SHOW " + name); }

  // Backend connection 0's messages from `mark` on (see FakePostgres::Received).
  size_t Mark(int conn = 0) const { return fake_.ReceivedCount(conn); }
  std::vector<std::string> SentSince(size_t mark, int conn = 0) const { return fake_.ReceivedSince(conn, mark); }

  // pgtenant's own statements (names drawn per process).
  static const std::string& SetName() { return proxy::BackendState::OwnStatementName(proxy::BackendState::kSetTenant); }
  static const std::string& ResetName() {
    return proxy::BackendState::OwnStatementName(proxy::BackendState::kResetTenant);
  }
  // The readable messages of pgtenant's tenant Bind/Execute for `tenant` ("" resets).
  static std::vector<std::string> BindTenant(const std::string& tenant) {
    if (tenant.empty()) return {"B::" + ResetName() + ":", "E:"};
    return {"B::" + SetName() + ":" + tenant, "E:"};
  }
  static std::string ParseSetTenant() {
    return "P:" + SetName() + ":SELECT pg_catalog.set_config('app.tenant_id', $1, false)";
  }
  static std::string CloseSetTenant() { return "C:S:" + SetName(); }

  // Concatenates vectors of expected messages.
  static std::vector<std::string> Seq(std::initializer_list<std::vector<std::string>> parts) {
    std::vector<std::string> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
  }

  FakePostgres fake_;
  PoolerHarness harness_;
};

}  // namespace pgtenant::testing
