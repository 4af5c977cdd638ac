#!/usr/bin/env python3
"""Tests of tests/stripe/fake_stripe.py: every rule it enforces and every failure it can inject,
so that the C++ billing tests (tests/unit/billing) can trust what it says. Runs the fake as a
subprocess on 127.0.0.1 with --port 0, as those tests do. Registered in CTest as fake_stripe."""

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_stripe.py")
KEY = "sk_test_unit"


class Fake:
    def __init__(self, *extra):
        self.proc = subprocess.Popen([sys.executable, FAKE, "--port", "0", "--api-key", KEY,
                                      "--max-seconds", "120", *extra],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        self.port = int(line)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stdout.close()

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, json.loads(data) if data else None, dict(resp.getheaders())
        finally:
            conn.close()

    def control(self, what, body=None):
        status, answer, _ = self.request("POST", "/_control/" + what, json.dumps(body or {}))
        assert status == 200, answer
        return answer

    def events(self):
        return self.request("GET", "/_control/events")[1]

    def stats(self):
        return self.request("GET", "/_control/stats")[1]

    def send(self, fields=None, key=KEY, content_type="application/x-www-form-urlencoded", raw=None):
        form = {"event_name": "queries", "payload[stripe_customer_id]": "cus_a",
                "payload[value]": "5", "identifier": "id-%f" % time.time(),
                "timestamp": str(int(time.time()) - 60)}
        form.update(fields or {})
        form = {k: v for k, v in form.items() if v is not None}
        headers = {"Content-Type": content_type}
        if key is not None:
            headers["Authorization"] = "Bearer " + key
        body = raw if raw is not None else urllib.parse.urlencode(form)
        return self.request("POST", "/v1/billing/meter_events", body, headers)


class FakeStripeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = Fake()

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def setUp(self):
        self.fake.control("reset")

    def assertStripeError(self, answer, status, want_status, type_="invalid_request_error"):
        self.assertEqual(status, want_status, answer)
        self.assertIn("error", answer)
        self.assertEqual(answer["error"]["type"], type_)
        self.assertTrue(answer["error"]["message"])

    def test_accepts_a_valid_event_and_lists_it(self):
        status, answer, _ = self.fake.send({"identifier": "pgt-a-1", "payload[value]": "42"})
        self.assertEqual(status, 200, answer)
        self.assertEqual(answer["object"], "billing.meter_event")
        self.assertEqual(answer["identifier"], "pgt-a-1")
        events = self.fake.events()
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["payload"], {"stripe_customer_id": "cus_a", "value": "42"})
        self.assertEqual(events[0]["event_name"], "queries")

    def test_bearer_auth(self):
        status, answer, _ = self.fake.send(key=None)
        self.assertStripeError(answer, status, 401)
        status, answer, _ = self.fake.send(key="sk_test_wrong")
        self.assertStripeError(answer, status, 401)
        self.assertNotIn("sk_test_wrong", answer["error"]["message"], "a key is never echoed whole")
        self.assertEqual(self.fake.events(), [])

    def test_form_encoding_is_required(self):
        status, answer, _ = self.fake.send(content_type="application/json", raw='{"event_name":"x"}')
        self.assertStripeError(answer, status, 400)

    def test_required_fields(self):
        for field in ("event_name", "payload[stripe_customer_id]", "payload[value]"):
            status, answer, _ = self.fake.send({field: None})
            self.assertStripeError(answer, status, 400)
            self.assertEqual(answer["error"]["param"], field)
            self.assertEqual(answer["error"]["code"], "parameter_missing")

    def test_unknown_and_duplicate_parameters(self):
        status, answer, _ = self.fake.send({"valeu": "1"})
        self.assertStripeError(answer, status, 400)
        self.assertEqual(answer["error"]["param"], "valeu")
        raw = "event_name=q&event_name=r&payload[stripe_customer_id]=c&payload[value]=1"
        status, answer, _ = self.fake.send(raw=raw)
        self.assertStripeError(answer, status, 400)

    def test_value_must_be_a_whole_number(self):
        for bad in ("1.5", "abc", "1e3", " 7"):
            status, answer, _ = self.fake.send({"payload[value]": bad})
            self.assertStripeError(answer, status, 400)
            self.assertEqual(answer["error"]["param"], "payload[value]")
        self.assertEqual(self.fake.send({"payload[value]": "0"})[0], 200)
        self.assertEqual(self.fake.send({"payload[value]": "18446744073709551615"})[0], 200)

    def test_timestamp_window(self):
        now = int(time.time())
        for ts in (now - 35 * 86400 - 60, now + 6 * 60, "yesterday"):
            status, answer, _ = self.fake.send({"timestamp": str(ts)})
            self.assertStripeError(answer, status, 400)
            self.assertEqual(answer["error"]["param"], "timestamp")
        for ts in (now - 35 * 86400 + 60, now + 4 * 60):
            self.assertEqual(self.fake.send({"timestamp": str(ts)})[0], 200)

    def test_lengths(self):
        status, answer, _ = self.fake.send({"identifier": "x" * 101})
        self.assertStripeError(answer, status, 400)
        self.assertEqual(self.fake.send({"identifier": "x" * 100})[0], 200)
        status, answer, _ = self.fake.send({"event_name": "e" * 101})
        self.assertStripeError(answer, status, 400)

    def test_an_identifier_is_accepted_once(self):
        self.assertEqual(self.fake.send({"identifier": "dup-1"})[0], 200)
        status, answer, headers = self.fake.send({"identifier": "dup-1", "payload[value]": "9"})
        self.assertStripeError(answer, status, 400)
        self.assertEqual(answer["error"]["message"], "An event already exists with identifier dup-1.")
        self.assertEqual(headers.get("Stripe-Should-Retry"), "false")
        events = self.fake.events()
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["payload"]["value"], "5", "the first value stands")

    def test_one_concurrent_request_per_customer_and_meter(self):
        self.fake.control("delay", {"ms": 600})
        results = {}

        def send(name, fields):
            results[name] = self.fake.send(fields)[0]

        threads = [threading.Thread(target=send, args=("first", {"identifier": "c1"}))]
        threads[0].start()
        time.sleep(0.2)  # the first is held in flight for 600 ms
        for name, fields in (("same", {"identifier": "c2"}),
                             ("other_customer", {"identifier": "c3", "payload[stripe_customer_id]": "cus_b"}),
                             ("other_meter", {"identifier": "c4", "event_name": "bytes_in"})):
            t = threading.Thread(target=send, args=(name, fields))
            t.start()
            threads.append(t)
        for t in threads:
            t.join(10)
        self.assertEqual(results, {"first": 200, "same": 429, "other_customer": 200, "other_meter": 200})
        self.assertEqual(self.fake.stats().get("concurrent"), 1)
        self.fake.control("delay", {"ms": 0})
        self.assertEqual(self.fake.send({"identifier": "c2"})[0], 200, "free again once the first ended")

    def test_injected_500_and_429_by_count(self):
        self.fake.control("fail", {"mode": "500", "count": 2})
        status, answer, _ = self.fake.send()
        self.assertStripeError(answer, status, 500, "api_error")
        self.assertEqual(self.fake.send()[0], 500)
        self.assertEqual(self.fake.send()[0], 200)
        self.fake.control("fail", {"mode": "429", "count": 1})
        status, answer, _ = self.fake.send()
        self.assertStripeError(answer, status, 429)
        self.assertEqual(answer["error"]["code"], "rate_limit")
        self.assertEqual(self.fake.send()[0], 200)
        self.assertEqual(len(self.fake.events()), 2)

    def test_injected_failure_for_a_duration_and_by_probability(self):
        self.fake.control("fail", {"mode": "500", "seconds": 0.5})
        self.assertEqual(self.fake.send()[0], 500)
        time.sleep(0.6)
        self.assertEqual(self.fake.send()[0], 200)
        self.fake.control("fail", {"mode": "429", "probability": 1.0})
        self.assertEqual(self.fake.send()[0], 429)
        self.fake.control("fail", {"mode": "none"})
        self.assertEqual(self.fake.send()[0], 200)

    def test_injected_permanent_error(self):
        self.fake.control("fail", {"mode": "400", "count": 1})
        status, answer, headers = self.fake.send()
        self.assertStripeError(answer, status, 400)
        self.assertEqual(headers.get("Stripe-Should-Retry"), "false")

    def test_unknown_customer_when_customers_are_declared(self):
        self.fake.control("customers", {"customers": ["cus_a"]})
        self.assertEqual(self.fake.send()[0], 200)
        status, answer, _ = self.fake.send({"payload[stripe_customer_id]": "cus_zzz"})
        self.assertStripeError(answer, status, 400)
        self.assertEqual(answer["error"]["code"], "resource_missing")
        self.assertIn("cus_zzz", answer["error"]["message"])

    def test_refuse_really_refuses_connections(self):
        self.fake.control("fail", {"mode": "refuse", "seconds": 1.0})
        time.sleep(0.2)
        with self.assertRaises(ConnectionRefusedError):
            self.fake.send()
        deadline = time.monotonic() + 5
        while True:  # bounded: the period is 1 s
            try:
                status = self.fake.send()[0]
                break
            except ConnectionRefusedError:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.1)
        self.assertEqual(status, 200, "the same port serves again after the period")

    def test_reset_forgets_identifiers(self):
        self.assertEqual(self.fake.send({"identifier": "r1"})[0], 200)
        self.fake.control("reset")
        self.assertEqual(self.fake.events(), [])
        self.assertEqual(self.fake.send({"identifier": "r1"})[0], 200)

    def test_unknown_path_and_oversized_body(self):
        status, answer, _ = self.fake.request("POST", "/v1/customers", "a=b",
                                              {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertStripeError(answer, status, 404)
        status, answer, _ = self.fake.request("POST", "/v1/billing/meter_events", "a" * (65 * 1024),
                                              {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 413)


class RateLimitTest(unittest.TestCase):
    def test_requests_per_second(self):
        fake = Fake("--rate-limit", "5")
        try:
            statuses = [fake.send({"identifier": "rl%d" % i})[0] for i in range(7)]
            self.assertEqual(statuses[:5], [200] * 5)
            self.assertIn(429, statuses[5:])
            time.sleep(1.1)
            self.assertEqual(fake.send({"identifier": "rl-late"})[0], 200)
        finally:
            fake.stop()


class LifecycleTest(unittest.TestCase):
    def test_sigterm_stops_it_at_once(self):
        fake = Fake()
        started = time.monotonic()
        fake.proc.send_signal(signal.SIGTERM)
        self.assertEqual(fake.proc.wait(5), 0)
        self.assertLess(time.monotonic() - started, 2)
        fake.stop()

    def test_max_seconds_bounds_its_life(self):
        proc = subprocess.Popen([sys.executable, FAKE, "--port", "0", "--max-seconds", "0.5"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        int(proc.stdout.readline())
        self.assertEqual(proc.wait(5), 3)
        proc.stdout.close()


if __name__ == "__main__":
    unittest.main()
