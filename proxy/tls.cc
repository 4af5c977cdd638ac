#include "proxy/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace pgtenant::proxy {
namespace {

// The oldest error on this thread's OpenSSL queue, as text; clears the queue.
std::string TakeOpenSslError() {
  unsigned long code = ERR_get_error();
  std::string text;
  if (code != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    text = buf;
  }
  ERR_clear_error();
  return text;
}

bool IsIpAddress(const std::string& host) {
  in6_addr a6;
  in_addr a4;
  return inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

SSL_CTX* NewContext(const SSL_METHOD* method) {
  SSL_CTX* ctx = SSL_CTX_new(method);
  if (ctx == nullptr) return nullptr;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Record buffers are freed while a connection is quiet: thousands of idle TLS clients then
  // hold only their session state.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // Postgres has no use for renegotiation, and a client driving it is a cheap CPU attack.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  return ctx;
}

}  // namespace

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

Result<std::shared_ptr<TlsContext>> TlsContext::ForClients(const conf::ClientTls& tls) {
  ERR_clear_error();
  SSL_CTX* ctx = NewContext(TLS_server_method());
  if (ctx == nullptr) return Status::Error("F0000", "cannot create a TLS context: " + TakeOpenSslError());
  std::shared_ptr<TlsContext> result(new TlsContext(ctx));
  if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert_file.c_str()) != 1) {
    return Status::Error("F0000", "listen.tls.cert_file \"" + tls.cert_file +
                                      "\": cannot load the certificate: " + TakeOpenSslError());
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    if (ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH) {
      ERR_clear_error();
      return Status::Error("F0000", "listen.tls.key_file \"" + tls.key_file +
                                        "\" does not match listen.tls.cert_file \"" + tls.cert_file + "\"");
    }
    return Status::Error("F0000", "listen.tls.key_file \"" + tls.key_file +
                                      "\": cannot load the private key: " + TakeOpenSslError());
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return Status::Error("F0000", "listen.tls.key_file \"" + tls.key_file +
                                      "\" does not match listen.tls.cert_file \"" + tls.cert_file + "\"");
  }
  return result;
}

Result<std::shared_ptr<TlsContext>> TlsContext::ForBackend(const conf::Pool& pool) {
  ERR_clear_error();
  SSL_CTX* ctx = NewContext(TLS_client_method());
  if (ctx == nullptr) return Status::Error("F0000", "cannot create a TLS context: " + TakeOpenSslError());
  std::shared_ptr<TlsContext> result(new TlsContext(ctx));
  if (pool.tls == conf::ServerTlsMode::kVerifyFull) {
    if (SSL_CTX_load_verify_locations(ctx, pool.ca_file.c_str(), nullptr) != 1) {
      return Status::Error("F0000", "pools." + pool.name + ".ca_file \"" + pool.ca_file +
                                        "\": cannot load the CA certificates: " + TakeOpenSslError());
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    result->verify_host_ = true;
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  return result;
}

Result<TlsContexts> LoadTlsContexts(const conf::Config& config) {
  TlsContexts out;
  if (config.listen.tls.mode != conf::ClientTlsMode::kDisable) {
    auto ctx = TlsContext::ForClients(config.listen.tls);
    if (!ctx.ok()) return ctx.status();
    out.clients = std::move(*ctx);
  }
  for (const auto* pools : {&config.pools, &config.pool_templates}) {
    for (const auto& [name, pool] : *pools) {
      if (pool.tls == conf::ServerTlsMode::kDisable) continue;
      auto ctx = TlsContext::ForBackend(pool);
      if (!ctx.ok()) return ctx.status();
      out.pools.emplace(name, std::move(*ctx));
    }
  }
  return out;
}

TlsSession::TlsSession(std::shared_ptr<TlsContext> context, Role role, const std::string& host)
    : context_(std::move(context)) {
  ssl_ = SSL_new(context_->ctx());
  if (ssl_ == nullptr) {
    error_ = "cannot create a TLS session: " + TakeOpenSslError();
    return;
  }
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  if (in_ == nullptr || out_ == nullptr) {
    BIO_free(in_);
    BIO_free(out_);
    in_ = out_ = nullptr;
    error_ = "out of memory for TLS buffers";
    return;
  }
  // An empty memory BIO means "no data yet", not end of file.
  BIO_set_mem_eof_return(in_, -1);
  SSL_set_bio(ssl_, in_, out_);
  if (role == Role::kServer) {
    SSL_set_accept_state(ssl_);
    return;
  }
  SSL_set_connect_state(ssl_);
  bool ip = IsIpAddress(host);
  if (!host.empty() && !ip) SSL_set_tlsext_host_name(ssl_, host.c_str());
  if (context_->verify_host() && !host.empty()) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
    if (ip) {
      X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
    } else {
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      SSL_set1_host(ssl_, host.c_str());
    }
  }
}

TlsSession::~TlsSession() { SSL_free(ssl_); }  // frees both BIOs

void TlsSession::Feed(std::span<const uint8_t> ciphertext) {
  if (in_ == nullptr || ciphertext.empty()) return;
  BIO_write(in_, ciphertext.data(), static_cast<int>(ciphertext.size()));
}

bool TlsSession::Retryable(int rc) {
  int e = SSL_get_error(ssl_, rc);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return true;
  if (error_.empty()) {
    if (e == SSL_ERROR_ZERO_RETURN) {
      error_ = "the peer closed the TLS session";
    } else {
      long verify = SSL_get_verify_result(ssl_);
      std::string text = TakeOpenSslError();
      if (verify != X509_V_OK) {
        error_ = std::string("certificate verification failed: ") + X509_verify_cert_error_string(verify);
      } else {
        error_ = text.empty() ? "TLS error " + std::to_string(e) : text;
      }
    }
  }
  ERR_clear_error();
  return false;
}

bool TlsSession::Handshake() {
  if (ssl_ == nullptr || in_ == nullptr) return false;
  if (handshake_done_) return true;
  int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    handshake_done_ = true;
    return true;
  }
  return Retryable(rc);
}

int TlsSession::Read(uint8_t* out, size_t size) {
  if (ssl_ == nullptr || in_ == nullptr) return kFailed;
  if (!handshake_done_) {
    if (!Handshake()) return kFailed;
    if (!handshake_done_) return kWantMore;
  }
  size_t got = 0;
  int rc = SSL_read_ex(ssl_, out, size, &got);
  if (rc == 1) return static_cast<int>(got);
  if (Retryable(rc)) return kWantMore;
  return SSL_get_error(ssl_, rc) == SSL_ERROR_ZERO_RETURN ? kClosed : kFailed;
}

bool TlsSession::Write(std::span<const uint8_t> plaintext) {
  if (ssl_ == nullptr || !handshake_done_) return false;
  while (!plaintext.empty()) {
    size_t written = 0;
    int rc = SSL_write_ex(ssl_, plaintext.data(), plaintext.size(), &written);
    if (rc != 1) {
      Retryable(rc);
      return false;  // a memory BIO never pushes back: anything else is fatal
    }
    plaintext = plaintext.subspan(written);
  }
  return true;
}

std::span<const uint8_t> TlsSession::PendingOutput() const {
  if (out_ == nullptr) return {};
  char* data = nullptr;
  long n = BIO_get_mem_data(out_, &data);
  if (n <= 0) return {};
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(n));
}

void TlsSession::ConsumeOutput() {
  if (out_ != nullptr) (void)BIO_reset(out_);
}

std::string TlsSession::Describe() const {
  if (ssl_ == nullptr || !handshake_done_) return "";
  return std::string(SSL_get_version(ssl_)) + "/" + SSL_get_cipher_name(ssl_);
}

}  // namespace pgtenant::proxy
