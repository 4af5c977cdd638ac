#include "proxy/stream.h"

#include <arpa/inet.h>

#include <algorithm>

#include "proxy/log.h"

namespace pgtenant::proxy {
namespace {

// One scratch buffer for every read on the loop: callbacks never overlap, and whatever a
// handler does not consume is copied out before the next read.
constexpr size_t kReadScratchSize = 256 * 1024;
alignas(64) char g_read_scratch[kReadScratchSize];
// Decrypted bytes of a TLS read, offered to the handler like g_read_scratch's.
alignas(64) uint8_t g_plain_scratch[kReadScratchSize];

}  // namespace

Stream::Stream(uv_loop_t* loop, StreamHandler* handler) : handler_(handler) {
  uv_tcp_init(loop, &tcp_);
  tcp_.data = this;
}

void Stream::StartReading() {
  if (reading_ || closing_) return;
  if (uv_read_start(uv_stream(), AllocCb, ReadCb) == 0) reading_ = true;
}

void Stream::StopReading() {
  if (!reading_) return;
  uv_read_stop(uv_stream());
  reading_ = false;
}

void Stream::AllocCb(uv_handle_t*, size_t, uv_buf_t* buf) {
  buf->base = g_read_scratch;
  buf->len = kReadScratchSize;
}

void Stream::ReadCb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<Stream*>(s->data);
  if (self->closing_) return;
  if (nread > 0) {
    std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(buf->base), nread);
    if (self->tls_) {
      self->OfferCiphertext(bytes);
    } else {
      self->Offer(bytes);
    }
  } else if (nread < 0) {
    self->StopReading();
    self->handler_->OnStreamEnd(static_cast<int>(nread));
  }
}

void Stream::Offer(std::span<const uint8_t> fresh) {
  if (kept_.empty()) {
    size_t used = handler_->OnStreamData(fresh);
    if (closing_) return;
    if (used < fresh.size()) kept_.assign(reinterpret_cast<const char*>(fresh.data()) + used, fresh.size() - used);
    return;
  }
  kept_.append(reinterpret_cast<const char*>(fresh.data()), fresh.size());
  Replay();
}

void Stream::Replay() {
  if (kept_.empty() || closing_) return;
  // Move the bytes out first: the handler may call Replay() again through a peer.
  std::string data;
  data.swap(kept_);
  size_t used = handler_->OnStreamData(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
  if (closing_) return;
  if (used < data.size()) {
    data.erase(0, used);
    if (kept_.empty()) {
      kept_.swap(data);
    } else {
      kept_.insert(0, data);
    }
  }
  if (kept_.capacity() > 64 * 1024 && kept_.size() < 4096) kept_.shrink_to_fit();
}

void Stream::Write(std::span<const uint8_t> bytes) {
  if (closing_ || write_failed_ || bytes.empty()) return;
  if (tls_) {
    WriteTls(bytes);
  } else {
    WritePlain(bytes);
  }
}

void Stream::WritePlain(std::span<const uint8_t> bytes) {
  if (closing_ || write_failed_ || bytes.empty()) return;
  if (!wq_ || wq_->inflight.empty()) {
    uv_buf_t buf = uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(bytes.data())),
                               static_cast<unsigned>(bytes.size()));
    int n = uv_try_write(uv_stream(), &buf, 1);
    if (n == static_cast<int>(bytes.size())) return;
    if (n < 0 && n != UV_EAGAIN) {
      write_failed_ = true;  // the read side reports the end; nothing more to send
      return;
    }
    if (n > 0) bytes = bytes.subspan(n);
    if (!wq_) wq_ = std::make_unique<WriteQueue>();
    wq_->inflight.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    StartWrite();
    return;
  }
  wq_->pending.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void Stream::StartWrite() {
  wq_->req.data = this;
  uv_buf_t buf = uv_buf_init(wq_->inflight.data(), static_cast<unsigned>(wq_->inflight.size()));
  if (uv_write(&wq_->req, uv_stream(), &buf, 1, WriteCb) != 0) {
    write_failed_ = true;
    wq_->inflight.clear();
    wq_->pending.clear();
  }
}

void Stream::WriteCb(uv_write_t* req, int status) {
  auto* self = static_cast<Stream*>(req->data);
  bool was_high = self->over_high_water();
  WriteQueue& q = *self->wq_;
  q.inflight.clear();
  if (status < 0) {
    self->write_failed_ = true;
    q.pending.clear();
  } else if (!q.pending.empty() && !self->closing_) {
    q.inflight.swap(q.pending);
    self->StartWrite();
  }
  if (self->queued_bytes() == 0) {
    if (self->close_after_write_) {
      self->Close();
      return;
    }
    // The burst is over (a big result, a COPY): give the buffers back. Not while closing,
    // when the handle may still reference the request until its close callback.
    if (!self->closing_) self->wq_.reset();
  }
  if (self->closing_) return;
  if (was_high && !self->over_high_water()) self->handler_->OnStreamWritable();
}

void Stream::Close() {
  if (closing_) return;
  closing_ = true;
  reading_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), CloseCb);
}

void Stream::CloseAfterWrite() {
  StopReading();
  if (queued_bytes() == 0 || write_failed_) {
    Close();
  } else {
    close_after_write_ = true;
  }
}

void Stream::CloseCb(uv_handle_t* h) {
  auto* self = static_cast<Stream*>(h->data);
  // Pending write callbacks have run (with UV_ECANCELED) before the close callback.
  self->handler_->OnStreamClosed();
}

// ---------------------------------------------------------------- TLS

void Stream::StartTls(std::unique_ptr<TlsSession> tls) {
  tls_ = std::move(tls);
  if (!tls_->Handshake()) {
    FailTls();
    return;
  }
  FlushTls();  // the client role's hello
}

void Stream::OfferCiphertext(std::span<const uint8_t> ciphertext) {
  tls_->Feed(ciphertext);
  bool was_done = tls_->handshake_done();
  for (;;) {
    int n = tls_->Read(g_plain_scratch, sizeof g_plain_scratch);
    FlushTls();  // handshake messages, alerts, session tickets
    if (closing_) return;
    if (!was_done && tls_->handshake_done()) {
      was_done = true;
      if (!tls_->early_plaintext()->empty()) {
        std::string early;
        early.swap(*tls_->early_plaintext());
        WriteTls(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(early.data()), early.size()));
      }
    }
    if (n > 0) {
      // The handler may stop reading (back-pressure) while records are still buffered: what
      // it does not consume is kept, exactly as with a plain read.
      Offer(std::span<const uint8_t>(g_plain_scratch, static_cast<size_t>(n)));
      if (closing_) return;
      continue;
    }
    if (n == TlsSession::kWantMore) return;
    StopReading();
    if (n == TlsSession::kClosed) {
      handler_->OnStreamEnd(UV_EOF);
    } else {
      FailTls();
    }
    return;
  }
}

void Stream::FailTls() {
  StopReading();
  write_failed_ = true;
  handler_->OnStreamEnd(UV_EPROTO);
}

void Stream::WriteTls(std::span<const uint8_t> bytes) {
  if (!tls_->handshake_done()) {
    tls_->early_plaintext()->append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return;
  }
  // Encrypt in slices so the ciphertext buffer stays small on a large result.
  constexpr size_t kSlice = 64 * 1024;
  while (!bytes.empty() && !write_failed_ && !closing_) {
    std::span<const uint8_t> slice = bytes.first(std::min(bytes.size(), kSlice));
    if (!tls_->Write(slice)) {
      write_failed_ = true;  // the read side reports the end
      return;
    }
    FlushTls();
    bytes = bytes.subspan(slice.size());
  }
}

void Stream::FlushTls() {
  std::span<const uint8_t> out = tls_->PendingOutput();
  if (out.empty()) return;
  WritePlain(out);
  tls_->ConsumeOutput();
}

std::string Stream::PeerName() {
  sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "";
  char ip[INET6_ADDRSTRLEN] = "";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    port = ntohs(a->sin6_port);
  }
  return std::string(ip) + ":" + std::to_string(port);
}

}  // namespace pgtenant::proxy
