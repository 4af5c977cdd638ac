// tests/stripe/fake_stripe.py as a child process on 127.0.0.1 with a port of its own choosing,
// and its control API. The child is ended (SIGTERM, then SIGKILL) when the object goes; the
// fake also exits by itself after --max-seconds, so a crashed test cannot leave it behind.
#pragma once

#include <curl/curl.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace pgtenant::billing {

inline constexpr char kFakeKey[] = "sk_test_billing_unit";

class FakeStripe {
 public:
  explicit FakeStripe(std::vector<std::string> extra = {}) {
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return;
    std::vector<std::string> args = {"python3", PGTENANT_FAKE_STRIPE, "--port", "0", "--api-key",
                                     kFakeKey, "--max-seconds", "120"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execvp("python3", argv.data());
      _exit(127);
    }
    close(out[1]);
    std::string line;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{out[0], POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[64];
      ssize_t n = read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<size_t>(n));
    }
    close(out[0]);
    port_ = std::atoi(line.c_str());
    EXPECT_GT(port_, 0) << "fake_stripe.py did not print its port";
  }

  ~FakeStripe() { Stop(); }

  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {  // up to 5 s
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  int port() const { return port_; }
  std::string url() const {
    std::string u = "http://127.0.0.1:";
    return u.append(std::to_string(port_));
  }

  // One plain request; returns (status, body); status 0 when there was no answer.
  std::pair<long, std::string> Request(const std::string& path, const std::string* post_json) const {
    CURL* c = curl_easy_init();
    std::string body, full = url() + path;
    curl_easy_setopt(c, CURLOPT_URL, full.c_str());
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    if (post_json != nullptr) {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, post_json->c_str());
      curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, +[](char* d, size_t s, size_t n, void* u) {
      static_cast<std::string*>(u)->append(d, s * n);
      return s * n;
    });
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    return {status, body};
  }

  void Control(const std::string& what, const std::string& json) const {
    auto [status, body] = Request("/_control/" + what, &json);
    EXPECT_EQ(status, 200) << what << " " << json << ": " << body;
  }

  struct Event {
    std::string event_name, identifier, customer;
    uint64_t value;
    int64_t timestamp;
  };
  // Every event the fake accepted. Its JSON comes from json.dumps with fixed key order
  // (fake_stripe.py, accept()), which this reads.
  std::vector<Event> Events() const {
    std::string text = Request("/_control/events", nullptr).second;
    static const std::regex kEvent(
        R"re("event_name": "([^"]*)", "identifier": "([^"]*)", "livemode": false, )re"
        R"re("payload": \{"stripe_customer_id": "([^"]*)", "value": "([0-9]+)"\}, "timestamp": ([0-9]+))re");
    std::vector<Event> out;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), kEvent); it != std::sregex_iterator(); ++it) {
      out.push_back({(*it)[1], (*it)[2], (*it)[3], std::stoull((*it)[4]), std::stoll((*it)[5])});
    }
    return out;
  }

  std::string Stats() const { return Request("/_control/stats", nullptr).second; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

// Polls `done` every 20 ms for at most `seconds`.
template <typename F>
bool WaitFor(F done, double seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

inline int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace pgtenant::billing
