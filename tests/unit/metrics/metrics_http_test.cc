// The exposer over real HTTP on 127.0.0.1 with a free port, and promtool's verdict on the scrape.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "metrics/prometheus_metrics.h"
#include "tests/unit/metrics/exposition.h"

namespace pgtenant::metrics {
namespace {

std::unique_ptr<PrometheusMetrics> Serve(int port) {
  PrometheusOptions o;
  o.version = "0.1.0";
  o.host = "127.0.0.1";
  o.port = port;
  auto m = PrometheusMetrics::Create(o);
  if (!m.ok()) {
    ADD_FAILURE() << m.status().ToString();
    return nullptr;
  }
  return std::move(m).value();
}

// A minimal HTTP/1.0 GET; returns the whole response (status line, headers, body).
std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return "connect failed";
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return "write failed";
  }
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) resp.append(buf, n);
  close(fd);
  return resp;
}

std::string Body(const std::string& response) {
  size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

TEST(MetricsHttp, ServesTheScrapeOnAFreePortAndNothingElse) {
  auto m = Serve(0);
  ASSERT_NE(m, nullptr);
  ASSERT_GT(m->port(), 0);
  m->OnQuery(m->Tenant("shared", "acme"));
  m->OnQuery(m->Tenant("shared", "acme"));

  std::string resp = HttpGet(m->port(), "/metrics");
  ASSERT_EQ(resp.rfind("HTTP/1.", 0), 0u) << resp.substr(0, 200);
  ASSERT_EQ(resp.find(" 200 "), 8u) << resp.substr(0, 200);
  EXPECT_NE(resp.find("text/plain"), std::string::npos) << "Prometheus text format content type";
  testing::Exposition e = testing::ParseExposition(Body(resp));
  EXPECT_EQ(e.Value("pgtenant_queries_total{pool=\"shared\",tenant=\"acme\"}"), 2);
  EXPECT_EQ(e.Value("pgtenant_up"), 1);

  // Other paths are not served. (One exposer for both: stopping one takes civetweb up to 2 s.)
  resp = HttpGet(m->port(), "/nothing");
  EXPECT_EQ(resp.find(" 404 "), 8u) << resp.substr(0, 200);
}

TEST(MetricsHttp, PortInUseIsAnErrorThatNamesTheAddress) {
  auto first = Serve(0);
  ASSERT_NE(first, nullptr);
  PrometheusOptions o;
  o.port = first->port();
  auto second = PrometheusMetrics::Create(o);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().sqlstate(), "F0000");
  EXPECT_NE(second.status().message().find("127.0.0.1:" + std::to_string(o.port)), std::string::npos)
      << second.status().message();
}

TEST(MetricsHttp, BadHostIsAnError) {
  PrometheusOptions o;
  o.host = "not-an-address";
  o.port = 0;
  auto m = PrometheusMetrics::Create(o);
  EXPECT_FALSE(m.ok());
}

TEST(MetricsHttp, NoExposerWhenNotServing) {
  PrometheusOptions o;
  o.serve_http = false;
  auto m = PrometheusMetrics::Create(o);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)->port(), 0);
  EXPECT_NE((*m)->Scrape().find("pgtenant_up 1"), std::string::npos);
}

// promtool (Debian package `prometheus`) lints names, types, help and histogram shape.
TEST(MetricsHttp, PromtoolAcceptsTheScrape) {
  const char* promtool = "/usr/bin/promtool";
  if (access(promtool, X_OK) != 0) GTEST_SKIP() << "promtool not installed (apt-get install prometheus)";
  PrometheusOptions o;
  o.serve_http = false;
  o.tenant_labels = TenantLabels::kDedicated;
  o.default_pool = "shared";
  auto m = std::move(PrometheusMetrics::Create(o)).value();
  PoolHandle* p = m->Pool("shared");
  m->OnWait(p, 0.01);
  m->OnTransactionDuration(p, 0.2);
  m->SetClientCounts(p, {.active = 1, .waiting = 0, .idle = 2});
  m->OnTransaction(m->Tenant("shared", "a"), 0.2);
  m->OnBytes(m->Tenant("acme", "acme"), 10, 20);
  m->OnReload(false);
  m->OnClientConnected();

  std::string path = ::testing::TempDir() + "/pgtenant_scrape.txt";
  std::string out = path + ".out";
  std::ofstream(path) << m->Scrape();
  std::string cmd = std::string(promtool) + " check metrics < " + path + " > " + out + " 2>&1";
  int rc = std::system(cmd.c_str());
  std::ifstream in(out);
  std::string report((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(rc, 0) << report;
  EXPECT_EQ(report, "") << "promtool lint findings";
  std::remove(path.c_str());
  std::remove(out.c_str());
}

}  // namespace
}  // namespace pgtenant::metrics
