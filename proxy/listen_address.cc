#include "proxy/listen_address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cstring>

namespace pgtenant::proxy {

namespace {

// Appended piece by piece: GCC 12 at -O3 reports a false -Wrestrict on `"[" + std::string(...)`.
std::string AddressText(const sockaddr* sa) {
  char ip[INET6_ADDRSTRLEN] = "";
  std::string out;
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
    out += '[';
    out += ip;
    out += "]:";
    out += std::to_string(ntohs(in6->sin6_port));
    return out;
  }
  const auto* in4 = reinterpret_cast<const sockaddr_in*>(sa);
  inet_ntop(AF_INET, &in4->sin_addr, ip, sizeof(ip));
  out += ip;
  out += ':';
  out += std::to_string(ntohs(in4->sin_port));
  return out;
}

}  // namespace

Result<std::vector<ListenAddress>> ResolveListenHost(const std::string& host, int port) {
  addrinfo hints;
  std::memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  // AI_PASSIVE: with no node ("*"), the wildcard addresses; AI_ADDRCONFIG is left out so that a
  // host without a routable address still gets its loopback names.
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  const char* node = host == "*" ? nullptr : host.c_str();
  std::string service = std::to_string(port);
  addrinfo* res = nullptr;
  int rc = getaddrinfo(node, service.c_str(), &hints, &res);
  if (rc != 0) {
    return Status::Error("F0000", "listen.host \"" + host + "\": cannot resolve: " + gai_strerror(rc));
  }
  std::vector<ListenAddress> out;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
    ListenAddress a;
    std::memset(&a.addr, 0, sizeof(a.addr));
    std::memcpy(&a.addr, ai->ai_addr, ai->ai_addrlen);
    a.text = AddressText(ai->ai_addr);
    // /etc/hosts may name an address twice; bind it once.
    bool seen = false;
    for (const ListenAddress& b : out) seen = seen || b.text == a.text;
    if (!seen) out.push_back(std::move(a));
  }
  freeaddrinfo(res);
  if (out.empty()) {
    return Status::Error("F0000", "listen.host \"" + host + "\" has no IPv4 or IPv6 address");
  }
  return out;
}

}  // namespace pgtenant::proxy
