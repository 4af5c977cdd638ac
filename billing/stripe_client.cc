#include "billing/stripe_client.h"

#include <curl/curl.h>

#include <cstdlib>
#include <mutex>

#include "billing/json.h"

namespace pgtenant::billing {
namespace {

// Stripe's answer to an identifier it already holds, as observed (quoted in langfuse/langfuse
// pull request 16292 and served by tests/stripe/fake_stripe.py): 400 invalid_request_error
// "An event already exists with identifier <id>." Stripe documents no error code for it.
constexpr std::string_view kDuplicatePrefix = "An event already exists with identifier";
constexpr size_t kMaxResponseBytes = 1 << 20;

struct Response {
  std::string body;
  std::string should_retry;
  std::optional<std::chrono::seconds> retry_after;
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Response*>(user);
  if (r->body.size() + size * n > kMaxResponseBytes) return 0;  // aborts: no sane answer is 1 MiB
  r->body.append(data, size * n);
  return size * n;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

bool HeaderIs(std::string_view line, std::string_view name, std::string_view* value) {
  if (line.size() <= name.size() || line[name.size()] != ':') return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char a = line[i], b = name[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
    if (a != b) return false;
  }
  *value = Trim(line.substr(name.size() + 1));
  return true;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Response*>(user);
  std::string_view line(data, size * n), value;
  if (HeaderIs(line, "stripe-should-retry", &value)) {
    r->should_retry = std::string(value);
  } else if (HeaderIs(line, "retry-after", &value)) {
    char* end = nullptr;
    std::string v(value);
    long seconds = std::strtol(v.c_str(), &end, 10);
    if (end != v.c_str() && *end == '\0' && seconds >= 0) r->retry_after = std::chrono::seconds(seconds);
  }
  return size * n;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* abort = static_cast<const std::atomic<bool>*>(user);
  return abort != nullptr && abort->load(std::memory_order_relaxed) ? 1 : 0;
}

std::once_flag curl_init_once;

}  // namespace

std::optional<std::string> ApiKeyFromEnvironment(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

Status ValidateBaseUrl(std::string_view url) {
  std::string_view rest;
  bool https = url.starts_with("https://");
  if (https) {
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else {
    return Status::InvalidParameter("billing base URL must start with https://");
  }
  if (rest.empty() || rest.find_first_of("/?#@") != std::string_view::npos) {
    return Status::InvalidParameter("billing base URL must be scheme://host[:port], with no path");
  }
  if (!https) {
    // The API key travels in a header: never in clear text beyond this machine.
    std::string_view host = rest.starts_with("[") ? rest.substr(0, rest.find(']') + 1)
                                                  : rest.substr(0, rest.find(':'));
    if (host != "127.0.0.1" && host != "localhost" && host != "[::1]") {
      return Status::InvalidParameter("billing base URL: plain http only to a loopback address");
    }
  }
  return Status::Ok();
}

std::string_view SendOutcomeName(SendOutcome o) {
  switch (o) {
    case SendOutcome::kDelivered: return "delivered";
    case SendOutcome::kDuplicate: return "duplicate";
    case SendOutcome::kRetry: return "retry";
    case SendOutcome::kPermanent: return "permanent";
  }
  return "unknown";
}

std::string PercentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string FormBody(const MeterEventRequest& e) {
  std::string body;
  auto field = [&body](std::string_view name, std::string_view value) {
    if (!body.empty()) body.push_back('&');
    body.append(PercentEncode(name)).append("=").append(PercentEncode(value));
  };
  field("event_name", e.event_name);
  field("payload[stripe_customer_id]", e.customer_id);
  field("payload[value]", std::to_string(e.value));
  field("identifier", e.identifier);
  field("timestamp", std::to_string(e.timestamp));
  return body;
}

SendResult ClassifyResponse(long status, std::string_view body, std::string_view should_retry) {
  SendResult r;
  r.http_status = status;
  if (status >= 200 && status < 300) {
    r.outcome = SendOutcome::kDelivered;
    return r;
  }
  if (auto error = StringMembersOf(body, "error")) {
    r.error_type = (*error)["type"];
    r.error_code = (*error)["code"];
    r.message = (*error)["message"];
  } else {
    r.message = "HTTP ";
    r.message.append(std::to_string(status)).append(" without a Stripe error body");
  }
  if (status == 400 && std::string_view(r.message).starts_with(kDuplicatePrefix)) {
    r.outcome = SendOutcome::kDuplicate;
    return r;
  }
  // Retried: Stripe's own limits (429; stripe-node also reads 400 with code rate_limit so),
  // conflicts with a concurrent request (409), Stripe's side (5xx), and 401/403: a wrong or
  // revoked key is the account's problem, not this event's, so events wait for a fixed key
  // instead of all going to the dead-letter file.
  bool retry = status == 429 || status == 409 || status == 401 || status == 403 || status >= 500 ||
               status < 400 || r.error_code == "rate_limit" || r.error_code == "lock_timeout";
  // Stripe-Should-Retry: true is Stripe's own advice and wins; "false" is not trusted to turn a
  // 5xx or 429 into a loss.
  if (should_retry == "true") retry = true;
  r.outcome = retry ? SendOutcome::kRetry : SendOutcome::kPermanent;
  return r;
}

StripeClient::StripeClient(StripeClientOptions options) : options_(std::move(options)) {
  std::call_once(curl_init_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  curl_ = curl_easy_init();
}

StripeClient::~StripeClient() {
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

SendResult StripeClient::Send(const MeterEventRequest& event) {
  SendResult failed;
  CURL* c = static_cast<CURL*>(curl_);
  if (c == nullptr) {
    failed.message = "libcurl could not be initialised";
    return failed;
  }
  curl_easy_reset(c);  // keeps the connection cache, drops the previous request's options
  std::string url = options_.base_url;
  url.append("/v1/billing/meter_events");
  std::string body = FormBody(event);
  std::string auth = "Authorization: Bearer ";
  auth.append(options_.api_key);
  curl_slist* headers = curl_slist_append(nullptr, auth.c_str());
  headers = curl_slist_append(headers, "Content-Type: application/x-www-form-urlencoded");
  headers = curl_slist_append(headers, "User-Agent: pgtenant-billing");
  Response response;
  char errbuf[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM-based timeouts on a thread
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                   static_cast<long>((options_.connect_timeout + options_.request_timeout).count()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &response);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, options_.abort);
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    // No answer (refused, reset, timeout, TLS failure): whether Stripe took the event is
    // unknown, and the identifier makes a resend safe either way.
    failed.outcome = SendOutcome::kRetry;
    failed.message = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
    return failed;
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  SendResult r = ClassifyResponse(status, response.body, response.should_retry);
  r.retry_after = response.retry_after;
  return r;
}

}  // namespace pgtenant::billing
