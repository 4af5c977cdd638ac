// TLS for the libuv streams: OpenSSL driven through memory BIOs, so the socket stays under
// libuv and OpenSSL never blocks or touches a file descriptor.
//
// TlsContext is one SSL_CTX: the listener's (certificate and key, built again on every reload so a
// renewed certificate is picked up) or a pool's (what to verify of the backend). It is shared:
// each TlsSession keeps its context alive, so a reload never pulls one from under a handshake.
//
// TlsSession is one connection's TLS state. The Stream feeds it the ciphertext it read, takes
// plaintext out, hands it plaintext to send and writes out whatever ciphertext it produced.
// Loop-affine.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "conf/config.h"
#include "protocol/status.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace pgtenant::proxy {

class TlsContext {
 public:
  // The listener's context: TLS 1.2 or newer with the given certificate chain and key.
  // The error names the file at fault (unreadable, not PEM, key does not match).
  static Result<std::shared_ptr<TlsContext>> ForClients(const conf::ClientTls& tls);
  // A pool's context. `require` and `prefer` encrypt without checking the certificate (as
  // libpq's sslmode of the same names do without a root certificate); `verify-full` checks the
  // chain against ca_file and the host name (or IP address) against the certificate.
  static Result<std::shared_ptr<TlsContext>> ForBackend(const conf::Pool& pool);

  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  ~TlsContext();

  SSL_CTX* ctx() const { return ctx_; }
  bool verify_host() const { return verify_host_; }

 private:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
  bool verify_host_ = false;
};

class TlsSession {
 public:
  enum class Role { kServer, kClient };
  // Outcome of reading plaintext.
  enum ReadResult : int { kWantMore = 0, kClosed = -1, kFailed = -2 };

  // For the client role, `host` is the name (or IP address) the certificate must carry when
  // the context verifies hosts; it is also sent as SNI when it is a name.
  TlsSession(std::shared_ptr<TlsContext> context, Role role, const std::string& host = "");
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;
  ~TlsSession();

  // Takes ciphertext read from the socket.
  void Feed(std::span<const uint8_t> ciphertext);
  // Advances the handshake and decrypts into `out`: the number of plaintext bytes (> 0),
  // kWantMore, kClosed (the peer sent close_notify) or kFailed (see error()).
  int Read(uint8_t* out, size_t size);
  // Encrypts plaintext. REQUIRES: handshake_done(). False on failure (see error()).
  bool Write(std::span<const uint8_t> plaintext);
  // Starts the handshake (the client role sends its hello); false on failure.
  bool Handshake();
  bool handshake_done() const { return handshake_done_; }

  // Ciphertext waiting to be sent; the span stays valid until ConsumeOutput().
  std::span<const uint8_t> PendingOutput() const;
  void ConsumeOutput();

  // Plaintext the stream was asked to send before the handshake completed; sent after it.
  std::string* early_plaintext() { return &early_plaintext_; }

  // "TLSv1.3/TLS_AES_256_GCM_SHA384" once the handshake is done (SHOW CLIENTS / SERVERS).
  std::string Describe() const;
  const std::string& error() const { return error_; }

 private:
  // Maps an OpenSSL result; records the error text. Returns true when the call may be retried
  // with more input (WANT_READ / WANT_WRITE).
  bool Retryable(int rc);

  std::shared_ptr<TlsContext> context_;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;   // ciphertext from the peer, owned by ssl_
  BIO* out_ = nullptr;  // ciphertext for the peer, owned by ssl_
  bool handshake_done_ = false;
  std::string early_plaintext_;
  std::string error_;
};

// Every context a config needs, loaded from its files at start and again on each reload.
struct TlsContexts {
  std::shared_ptr<TlsContext> clients;                       // null: listen.tls.mode disable
  std::map<std::string, std::shared_ptr<TlsContext>> pools;  // pools whose tls is not disable
};
Result<TlsContexts> LoadTlsContexts(const conf::Config& config);

}  // namespace pgtenant::proxy
