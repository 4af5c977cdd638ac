// Forwards a client's CancelRequest to the backend that runs that client's query: a new TCP
// connection to the backend carrying the backend's own (pid, key).
//
// The race every pooler has: the query may end, and the server connection go to another
// client, before the backend acts on the cancel, which would then cancel the other client's
// query. The postmaster signals the backend before it closes the cancel connection, and a
// backend drops a cancel that arrives while it waits for a command. So the server connection
// is parked (not handed to anyone) until the postmaster has closed every cancel connection
// sent for it; the CancelGate counts them.
// Loop-affine; the forwarder frees itself when done.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>

namespace pgtenant::proxy {

class ServerSession;

struct CancelGate {
  int inflight = 0;                 // cancel connections not yet closed by the postmaster
  ServerSession* server = nullptr;  // null once the server connection is gone
};

// `done` runs once the postmaster has closed the cancel connection (or it failed): the
// requesting client's own cancel connection is closed then, so that a driver that waits for
// that close knows the cancel can no longer hit its next statement.
void SendCancelToBackend(uv_loop_t* loop, const sockaddr_storage& backend, int32_t pid, int32_t key,
                         std::shared_ptr<CancelGate> gate, std::function<void()> done);

}  // namespace pgtenant::proxy
