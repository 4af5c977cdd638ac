// ResolveListenHost: listen.host as PgBouncer's listen_addr (an address, "*", or a host name).
// Only names that need no DNS server: addresses, "*" and localhost (from /etc/hosts).
#include "proxy/listen_address.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace pgtenant::proxy {
namespace {

std::vector<std::string> Texts(const std::string& host, int port) {
  auto r = ResolveListenHost(host, port);
  EXPECT_TRUE(r.ok()) << host << ": " << r.status().message();
  std::vector<std::string> out;
  if (r.ok()) {
    for (const ListenAddress& a : *r) out.push_back(a.text);
  }
  return out;
}

bool Has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST(ResolveListenHost, AnAddressIsItself) {
  EXPECT_EQ(Texts("127.0.0.1", 6432), std::vector<std::string>{"127.0.0.1:6432"});
  EXPECT_EQ(Texts("0.0.0.0", 1), std::vector<std::string>{"0.0.0.0:1"});
  EXPECT_EQ(Texts("::1", 6432), std::vector<std::string>{"[::1]:6432"});
  EXPECT_EQ(Texts("::", 6432), std::vector<std::string>{"[::]:6432"});
}

TEST(ResolveListenHost, StarIsEveryAddress) {
  std::vector<std::string> all = Texts("*", 6432);
  EXPECT_TRUE(Has(all, "0.0.0.0:6432")) << ::testing::PrintToString(all);
}

TEST(ResolveListenHost, LocalhostIsResolvedOnceEach) {
  std::vector<std::string> local = Texts("localhost", 6432);
  EXPECT_TRUE(Has(local, "127.0.0.1:6432")) << ::testing::PrintToString(local);
  std::vector<std::string> sorted = local;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end()) << "duplicates";
}

}  // namespace
}  // namespace pgtenant::proxy
