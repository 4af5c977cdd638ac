// Forwards a client's CancelRequest to the backend that runs that client's query: a new TCP
// connection to the backend carrying the backend's own (pid, key), closed right after.
// Loop-affine; the forwarder frees itself when done.
#pragma once

#include <uv.h>

#include <cstdint>

namespace pgtenant::proxy {

void SendCancelToBackend(uv_loop_t* loop, const sockaddr_storage& backend, int32_t pid, int32_t key);

}  // namespace pgtenant::proxy
