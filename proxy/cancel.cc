#include "proxy/cancel.h"

#include <string>

#include "protocol/messages.h"
#include "proxy/log.h"
#include "proxy/server_session.h"

namespace pgtenant::proxy {
namespace {

struct CancelForwarder {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_write_t write_req;
  std::string packet;
  char read_buf[64];
  std::shared_ptr<CancelGate> gate;
  std::function<void()> done;
};

void OnClosed(uv_handle_t* h) {
  auto* f = static_cast<CancelForwarder*>(h->data);
  std::shared_ptr<CancelGate> gate = std::move(f->gate);
  std::function<void()> done = std::move(f->done);
  delete f;
  if (gate && --gate->inflight == 0 && gate->server != nullptr) gate->server->OnCancelsDelivered();
  if (done) done();
}

void Finish(CancelForwarder* f) {
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&f->tcp))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&f->tcp), OnClosed);
  }
}

void OnAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* f = static_cast<CancelForwarder*>(h->data);
  *buf = uv_buf_init(f->read_buf, sizeof f->read_buf);
}

// The postmaster answers nothing: it signals the backend and closes. EOF means delivered.
void OnRead(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
  if (nread < 0) Finish(static_cast<CancelForwarder*>(s->data));
}

void OnWritten(uv_write_t* req, int status) {
  auto* f = static_cast<CancelForwarder*>(req->data);
  if (status != 0 || uv_read_start(reinterpret_cast<uv_stream_t*>(&f->tcp), OnAlloc, OnRead) != 0) Finish(f);
}

void OnConnected(uv_connect_t* req, int status) {
  auto* f = static_cast<CancelForwarder*>(req->data);
  if (status != 0) {
    LOG_WARNING("cannot forward a cancel request to the backend: %s", uv_strerror(status));
    Finish(f);
    return;
  }
  uv_buf_t buf = uv_buf_init(f->packet.data(), static_cast<unsigned>(f->packet.size()));
  f->write_req.data = f;
  if (uv_write(&f->write_req, reinterpret_cast<uv_stream_t*>(&f->tcp), &buf, 1, OnWritten) != 0) Finish(f);
}

}  // namespace

void SendCancelToBackend(uv_loop_t* loop, const sockaddr_storage& backend, int32_t pid, int32_t key,
                         std::shared_ptr<CancelGate> gate, std::function<void()> done) {
  auto* f = new CancelForwarder();
  f->done = std::move(done);
  protocol::AppendCancelRequest(&f->packet, pid, key);
  f->gate = std::move(gate);
  if (f->gate) ++f->gate->inflight;
  uv_tcp_init(loop, &f->tcp);
  f->tcp.data = f;
  f->connect_req.data = f;
  if (uv_tcp_connect(&f->connect_req, &f->tcp, reinterpret_cast<const sockaddr*>(&backend), OnConnected) != 0) {
    Finish(f);
  }
}

}  // namespace pgtenant::proxy
