// The addresses pgtenant listens on for `listen.host` (docs/configuration.md, `listen`), as
// PgBouncer reads listen_addr: an IP address as written; `*` every IPv4 and IPv6 address; a host
// name every address it resolves to when pgtenant starts.
//
// Blocking (getaddrinfo): call it at start, before the loop runs, never on the loop.
#pragma once

#include <sys/socket.h>

#include <string>
#include <vector>

#include "protocol/status.h"

namespace pgtenant::proxy {

struct ListenAddress {
  sockaddr_storage addr;
  std::string text;  // "127.0.0.1:6432", "[::1]:6432": for logs and errors
};

// The distinct addresses of `host` with `port`, in getaddrinfo's order. An error (F0000) names
// listen.host and says why it could not be resolved.
Result<std::vector<ListenAddress>> ResolveListenHost(const std::string& host, int port);

}  // namespace pgtenant::proxy
