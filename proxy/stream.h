// Stream: one TCP connection on the loop. It owns the uv_tcp_t, the bytes received but not yet
// consumed, and the write queue, and reports to exactly one StreamHandler.
//
// Buffers (docs/development.md, *Buffers*): reads land in one loop-wide scratch buffer, so an idle
// connection holds no read buffer at all. The handler consumes what it can straight from there;
// only the unconsumed tail (a partial message, or data held back while a client waits for a server)
// is copied into the stream's own buffer. Writes try uv_try_write() first and copy only what the
// kernel did not take, so forwarding a batch of messages usually costs no copy and one syscall.
//
// Lifetime (docs/development.md, *libuv lifetimes*): the owner embeds the Stream; Close() starts
// uv_close and the owner may free itself only in OnStreamClosed(). After any call into the handler,
// check closing(). Loop-affine: everything runs on the event-loop thread.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "proxy/tls.h"

namespace pgtenant::proxy {

class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  // Offers received bytes; returns how many were consumed. The rest is kept and offered again,
  // prefixed to the next read or on Replay().
  virtual size_t OnStreamData(std::span<const uint8_t> data) = 0;
  // The peer closed (status UV_EOF) or the socket failed. The handler must Close() the stream.
  virtual void OnStreamEnd(int status) = 0;
  // The write queue drained below the low-water mark (used to resume a throttled peer).
  virtual void OnStreamWritable() {}
  // The handle is closed; the owner may now free the memory that embeds the stream.
  virtual void OnStreamClosed() = 0;
};

class Stream {
 public:
  // Past this many queued bytes the writer's source should stop reading (back-pressure).
  static constexpr size_t kHighWater = 1 << 20;

  Stream(uv_loop_t* loop, StreamHandler* handler);
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  uv_tcp_t* tcp() { return &tcp_; }
  uv_stream_t* uv_stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }

  // REQUIRES: the handle is connected or accepted.
  void StartReading();
  void StopReading();
  bool reading() const { return reading_; }

  // Queues bytes for the peer. Never blocks; copies only what the kernel did not take at once.
  void Write(std::span<const uint8_t> bytes);
  void Write(const std::string& bytes) {
    Write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  }
  size_t queued_bytes() const { return wq_ ? wq_->inflight.size() + wq_->pending.size() : 0; }
  bool over_high_water() const { return queued_bytes() > kHighWater; }

  // Offers the kept bytes to the handler again (after it became able to consume them).
  void Replay();
  size_t kept_bytes() const { return kept_.size(); }
  void DropKept() { kept_.clear(); kept_.shrink_to_fit(); }

  // Closes the handle (idempotent). OnStreamClosed() follows from the loop.
  void Close();
  // Sends what is queued, then closes.
  void CloseAfterWrite();
  bool closing() const { return closing_; }

  // Peer address as "ip:port" (for logs); empty if unknown.
  std::string PeerName();

  // From now on the bytes on the wire are TLS records: reads are decrypted before the handler
  // sees them and writes are encrypted. Writes made before the handshake completes wait for it.
  // A failed handshake or a broken record ends the stream with UV_EPROTO (tls()->error() says
  // why). REQUIRES: nothing received is still unconsumed (bytes sent ahead of the handshake
  // would otherwise pass as if they had been encrypted).
  void StartTls(std::unique_ptr<TlsSession> tls);
  const TlsSession* tls() const { return tls_.get(); }

 private:
  static void AllocCb(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void ReadCb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void WriteCb(uv_write_t* req, int status);
  static void CloseCb(uv_handle_t* h);
  void Offer(std::span<const uint8_t> fresh);
  void OfferCiphertext(std::span<const uint8_t> ciphertext);
  void FailTls();
  void WritePlain(std::span<const uint8_t> bytes);
  void WriteTls(std::span<const uint8_t> bytes);
  void FlushTls();
  void StartWrite();

  uv_tcp_t tcp_;
  StreamHandler* handler_;
  std::string kept_;  // received, not yet consumed
  // Bytes the kernel did not take at once. Allocated on first need and freed when drained,
  // so the many idle connections carry no write buffers.
  struct WriteQueue {
    std::string inflight;  // handed to uv_write, not yet completed
    std::string pending;   // queued behind inflight
    uv_write_t req;
  };
  std::unique_ptr<WriteQueue> wq_;
  std::unique_ptr<TlsSession> tls_;  // null for plain TCP: a plain connection pays one pointer
  bool reading_ = false;
  bool closing_ = false;
  bool close_after_write_ = false;
  bool write_failed_ = false;
};

}  // namespace pgtenant::proxy
