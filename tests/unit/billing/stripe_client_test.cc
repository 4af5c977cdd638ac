// StripeClient (billing/stripe_client.h): the form it sends, how it reads Stripe's answers, and
// real requests to tests/stripe/fake_stripe.py.
#include "billing/stripe_client.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "fake_stripe_process.h"

namespace pgtenant::billing {
namespace {

TEST(StripeClientTest, PercentEncoding) {
  EXPECT_EQ(PercentEncode("abc-XYZ_0.9~"), "abc-XYZ_0.9~");
  EXPECT_EQ(PercentEncode("payload[value]"), "payload%5Bvalue%5D");
  EXPECT_EQ(PercentEncode("a b&c=d/+\xc3\xa9"), "a%20b%26c%3Dd%2F%2B%C3%A9");
  EXPECT_EQ(PercentEncode(std::string_view("\0", 1)), "%00");
}

TEST(StripeClientTest, FormBodyHasEveryDocumentedField) {
  MeterEventRequest e{"pgtenant queries", "cus_123", "eu1-q-acme-60", 18446744073709551615ull, 60};
  EXPECT_EQ(FormBody(e),
            "event_name=pgtenant%20queries&payload%5Bstripe_customer_id%5D=cus_123"
            "&payload%5Bvalue%5D=18446744073709551615&identifier=eu1-q-acme-60&timestamp=60");
}

TEST(StripeClientTest, ClassifiesStripesAnswers) {
  struct Case {
    long status;
    const char* body;
    const char* should_retry;
    SendOutcome want;
  };
  const Case cases[] = {
      {200, R"({"object": "billing.meter_event"})", "", SendOutcome::kDelivered},
      {400, R"({"error": {"type": "invalid_request_error", "message": "An event already exists with identifier x-1."}})",
       "false", SendOutcome::kDuplicate},
      {400, R"({"error": {"type": "invalid_request_error", "message": "Missing required param: event_name."}})",
       "false", SendOutcome::kPermanent},
      {404, R"({"error": {"type": "invalid_request_error", "message": "No such customer: 'cus_x'"}})", "",
       SendOutcome::kPermanent},
      {400, R"({"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "slow down"}})", "",
       SendOutcome::kRetry},
      {400, R"({"error": {"type": "invalid_request_error", "message": "odd"}})", "true", SendOutcome::kRetry},
      {429, R"({"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "x"}})", "",
       SendOutcome::kRetry},
      {409, R"({"error": {"type": "idempotency_error", "message": "x"}})", "", SendOutcome::kRetry},
      {500, R"({"error": {"type": "api_error", "message": "x"}})", "false", SendOutcome::kRetry},
      {502, "<html>Bad gateway</html>", "", SendOutcome::kRetry},
      {401, R"({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: ****abcd"}})", "",
       SendOutcome::kRetry},
  };
  for (const Case& c : cases) {
    SendResult r = ClassifyResponse(c.status, c.body, c.should_retry);
    EXPECT_EQ(r.outcome, c.want) << c.status << " " << c.body;
    EXPECT_EQ(r.http_status, c.status);
  }
  SendResult r = ClassifyResponse(400, R"({"error": {"type": "invalid_request_error", "code": "parameter_missing", "message": "Missing"}})", "");
  EXPECT_EQ(r.error_type, "invalid_request_error");
  EXPECT_EQ(r.error_code, "parameter_missing");
  EXPECT_EQ(r.message, "Missing");
  EXPECT_EQ(ClassifyResponse(502, "<html>", "").message, "HTTP 502 without a Stripe error body");
}

TEST(StripeClientTest, BaseUrlRules) {
  EXPECT_TRUE(ValidateBaseUrl("https://api.stripe.com").ok());
  EXPECT_TRUE(ValidateBaseUrl("https://stripe-proxy.internal:8443").ok());
  EXPECT_TRUE(ValidateBaseUrl("http://127.0.0.1:12345").ok());
  EXPECT_TRUE(ValidateBaseUrl("http://localhost:1").ok());
  EXPECT_TRUE(ValidateBaseUrl("http://[::1]:1").ok());
  EXPECT_FALSE(ValidateBaseUrl("http://api.stripe.com").ok()) << "the key would travel in clear";
  EXPECT_FALSE(ValidateBaseUrl("ftp://x").ok());
  EXPECT_FALSE(ValidateBaseUrl("https://api.stripe.com/v1").ok());
  EXPECT_FALSE(ValidateBaseUrl("https://user@api.stripe.com").ok());
  EXPECT_FALSE(ValidateBaseUrl("https://").ok());
}

TEST(StripeClientTest, KeyComesFromTheEnvironment) {
  unsetenv("PGTENANT_TEST_STRIPE_KEY");
  EXPECT_FALSE(ApiKeyFromEnvironment("PGTENANT_TEST_STRIPE_KEY"));
  setenv("PGTENANT_TEST_STRIPE_KEY", "", 1);
  EXPECT_FALSE(ApiKeyFromEnvironment("PGTENANT_TEST_STRIPE_KEY"));
  setenv("PGTENANT_TEST_STRIPE_KEY", "sk_live_x", 1);
  EXPECT_EQ(ApiKeyFromEnvironment("PGTENANT_TEST_STRIPE_KEY"), "sk_live_x");
  unsetenv("PGTENANT_TEST_STRIPE_KEY");
}

class StripeClientFakeTest : public ::testing::Test {
 protected:
  StripeClientOptions Options(std::string key = kFakeKey) {
    StripeClientOptions o;
    o.base_url = fake_.url();
    o.api_key = std::move(key);
    o.connect_timeout = std::chrono::milliseconds(2000);
    o.request_timeout = std::chrono::milliseconds(5000);
    return o;
  }
  MeterEventRequest Event(std::string id) {
    return {"queries", "cus_a", std::move(id), 42, UnixNow() - 120};
  }
  FakeStripe fake_;
};

TEST_F(StripeClientFakeTest, DeliversThenRecognisesTheDuplicate) {
  StripeClient client(Options());
  SendResult r = client.Send(Event("pgt-q-acme-1"));
  EXPECT_EQ(r.outcome, SendOutcome::kDelivered) << r.message;
  EXPECT_EQ(r.http_status, 200);
  r = client.Send(Event("pgt-q-acme-1"));
  EXPECT_EQ(r.outcome, SendOutcome::kDuplicate) << r.message;
  auto events = fake_.Events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].value, 42u);
  EXPECT_EQ(events[0].customer, "cus_a");
}

TEST_F(StripeClientFakeTest, AWrongKeyIsRetriedAndNeverEchoed) {
  StripeClient client(Options("sk_test_wrong_secret_value"));
  SendResult r = client.Send(Event("k-1"));
  EXPECT_EQ(r.outcome, SendOutcome::kRetry);
  EXPECT_EQ(r.http_status, 401);
  EXPECT_EQ(r.message.find("sk_test_wrong_secret_value"), std::string::npos) << r.message;
}

TEST_F(StripeClientFakeTest, FailuresAreClassified) {
  StripeClient client(Options());
  fake_.Control("fail", R"({"mode": "500", "count": 1})");
  EXPECT_EQ(client.Send(Event("f-1")).outcome, SendOutcome::kRetry);
  fake_.Control("fail", R"({"mode": "429", "count": 1})");
  SendResult r = client.Send(Event("f-1"));
  EXPECT_EQ(r.outcome, SendOutcome::kRetry);
  EXPECT_EQ(r.error_code, "rate_limit");
  fake_.Control("customers", R"({"customers": ["cus_b"]})");
  r = client.Send(Event("f-1"));
  EXPECT_EQ(r.outcome, SendOutcome::kPermanent);
  EXPECT_NE(r.message.find("No such customer"), std::string::npos) << r.message;
  MeterEventRequest old = Event("f-2");
  old.customer_id = "cus_b";
  old.timestamp = UnixNow() - kStripeMaxEventAgeSeconds - 60;
  EXPECT_EQ(client.Send(old).outcome, SendOutcome::kPermanent);
  EXPECT_TRUE(fake_.Events().empty());
}

TEST_F(StripeClientFakeTest, ARefusedConnectionIsRetried) {
  StripeClient client(Options());
  ASSERT_EQ(client.Send(Event("r-1")).outcome, SendOutcome::kDelivered);  // a kept-alive connection
  fake_.Control("fail", R"({"mode": "refuse", "seconds": 1.0})");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  SendResult r = client.Send(Event("r-2"));
  EXPECT_EQ(r.outcome, SendOutcome::kRetry);
  EXPECT_EQ(r.http_status, 0);
  EXPECT_FALSE(r.message.empty());
  EXPECT_TRUE(WaitFor([&] { return client.Send(Event("r-2")).outcome == SendOutcome::kDelivered; }, 5));
}

TEST_F(StripeClientFakeTest, AbortEndsARequestInFlightQuickly) {
  std::atomic<bool> abort{false};
  StripeClientOptions o = Options();
  o.abort = &abort;
  StripeClient client(o);
  fake_.Control("delay", R"({"ms": 5000})");
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    abort.store(true);
  });
  auto started = std::chrono::steady_clock::now();
  SendResult r = client.Send(Event("a-1"));
  stopper.join();
  EXPECT_EQ(r.outcome, SendOutcome::kRetry);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(1500));
}

}  // namespace
}  // namespace pgtenant::billing
