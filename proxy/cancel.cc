#include "proxy/cancel.h"

#include <string>

#include "protocol/messages.h"
#include "proxy/log.h"

namespace pgtenant::proxy {
namespace {

struct CancelForwarder {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_write_t write_req;
  std::string packet;
};

void OnClosed(uv_handle_t* h) { delete static_cast<CancelForwarder*>(h->data); }

void OnWritten(uv_write_t* req, int) {
  auto* f = static_cast<CancelForwarder*>(req->data);
  uv_close(reinterpret_cast<uv_handle_t*>(&f->tcp), OnClosed);
}

void OnConnected(uv_connect_t* req, int status) {
  auto* f = static_cast<CancelForwarder*>(req->data);
  if (status != 0) {
    LOG_WARNING("cannot forward a cancel request to the backend: %s", uv_strerror(status));
    uv_close(reinterpret_cast<uv_handle_t*>(&f->tcp), OnClosed);
    return;
  }
  uv_buf_t buf = uv_buf_init(f->packet.data(), static_cast<unsigned>(f->packet.size()));
  f->write_req.data = f;
  if (uv_write(&f->write_req, reinterpret_cast<uv_stream_t*>(&f->tcp), &buf, 1, OnWritten) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&f->tcp), OnClosed);
  }
}

}  // namespace

void SendCancelToBackend(uv_loop_t* loop, const sockaddr_storage& backend, int32_t pid, int32_t key) {
  auto* f = new CancelForwarder();
  protocol::AppendCancelRequest(&f->packet, pid, key);
  uv_tcp_init(loop, &f->tcp);
  f->tcp.data = f;
  f->connect_req.data = f;
  if (uv_tcp_connect(&f->connect_req, &f->tcp, reinterpret_cast<const sockaddr*>(&backend), OnConnected) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&f->tcp), OnClosed);
  }
}

}  // namespace pgtenant::proxy
