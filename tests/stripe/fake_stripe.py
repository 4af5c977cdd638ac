#!/usr/bin/env python3
"""A local Stripe-compatible server for the billing tests (issue 17, acceptance 1).

It serves POST /v1/billing/meter_events and enforces what Stripe documents for it, so that
billing/stripe_client.cc and billing/sender.cc are tested against the rules and not against
our own reading of them. Sources (checked when this was written):

- docs.stripe.com/api/billing/meter-event/create (also in the generated SDK types, e.g.
  stripe-node types/Billing/MeterEventsResource.d.ts): event_name (required, max length 100),
  payload[stripe_customer_id] and payload[value] (required), identifier (optional, max length
  100, "uniqueness within a rolling period of at least 24 hours"), timestamp (optional, Unix
  seconds, "within the past 35 calendar days or up to 5 minutes in the future").
- docs.stripe.com/billing/subscriptions/usage-based/recording-usage-api: "The numerical usage
  value in the payload only accepts whole number values"; "The meter event endpoint allows 1000
  calls per second in live mode, and one concurrent call per customer per meter"; "Monitor for
  429 status codes and implement a retry mechanism with an exponential back-off".
- docs.stripe.com/api/errors: errors are {"error": {"type", "code", "message", "param", ...}};
  401 = no valid API key, 429 = too many requests, 5xx = Stripe's side.
- The already-used identifier answer, as observed in production and quoted in
  langfuse/langfuse pull request 16292: HTTP 400, type invalid_request_error, message
  "An event already exists with identifier <identifier>.", header Stripe-Should-Retry: false.
  Stripe documents no dedicated error code for it, so this fake sends none either: a client must
  recognise the message.
- stripe-node (src/Error.ts, generateV1Error) treats both 429 and 400 with code "rate_limit" as
  a rate-limit error; the concurrency refusal here is a 429 with code "rate_limit".

What real Stripe does asynchronously (an unknown event_name, an unknown customer) is not
checked unless a test asks for it: POST /_control/customers makes unknown customers a
synchronous 400 resource_missing, which is how the tests get a permanent error.

Control API (no authentication, never subject to injected failures except "refuse"):
  POST /_control/fail       {"mode": "refuse"|"500"|"429"|"400"|"none",
                             "seconds": S | "count": N | "probability": P}
      "refuse" really refuses: the listening socket is closed for S seconds (connect() gets
      ECONNREFUSED) and kept-alive connections are dropped at their next request; the same port
      is bound again afterwards. The control API is unreachable for that period too.
      "500" / "429" / "400" answer meter events with that status (Stripe-shaped body) for S
      seconds, for the next N requests, or with probability P; "400" is a permanent error.
  POST /_control/delay      {"ms": M}   hold every meter event M ms while it is "in flight"
                                        (to make two requests overlap in a test)
  POST /_control/customers  {"customers": ["cus_a", ...]} or {"customers": null}
  GET  /_control/events     every accepted event, in order, as JSON
  GET  /_control/stats      request counts by status and by refusal reason
  POST /_control/reset      forget events, identifiers, failures, delay, customers, stats

Usage: fake_stripe.py [--host 127.0.0.1] [--port 0] [--api-key KEY] [--rate-limit 1000]
                      [--max-seconds 600]
With --port 0 the chosen port is printed alone on the first line of stdout. The server is
bounded: request bodies up to 64 KiB, 64 concurrent connections, 1,000,000 stored events, and it
exits by itself after --max-seconds (a test that dies cannot leave it running). SIGTERM and
SIGINT stop it at once with exit status 0.
"""

import argparse
import collections
import json
import random
import re
import selectors
import signal
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 * 1024
MAX_CONNECTIONS = 64
MAX_EVENTS = 1_000_000
MAX_IDENTIFIER = 100     # "identifier ... Max length: 100"
MAX_EVENT_NAME = 100     # "event_name ... Max length: 100"
MAX_AGE = 35 * 86400     # "within the past 35 calendar days"
MAX_AHEAD = 5 * 60       # "or up to 5 minutes in the future"
INTEGER = re.compile(r"^-?[0-9]+$")
PATH = "/v1/billing/meter_events"


class State:
    """Everything the fake remembers; one lock guards all of it."""

    def __init__(self, rate_limit):
        self.lock = threading.Lock()
        self.rate_limit = rate_limit
        self.reset()

    def reset(self):
        self.events = []
        self.identifiers = set()
        self.in_flight = set()        # (customer, event_name) pairs being served now
        self.recent = collections.deque()  # monotonic times of the last second's requests
        self.fail_mode = None
        self.fail_until = 0.0
        self.fail_count = 0
        self.fail_probability = 0.0
        self.refuse_until = 0.0
        self.delay = 0.0
        self.customers = None
        self.stats = collections.Counter()

    def injected_failure(self):
        """The status to answer with because of /_control/fail, or None. Holds the lock."""
        mode = self.fail_mode
        if mode is None or mode == "refuse":
            return None
        if self.fail_count > 0:
            self.fail_count -= 1
            if self.fail_count == 0:
                self.fail_mode = None
            return mode
        if self.fail_probability > 0:
            return mode if random.random() < self.fail_probability else None
        if time.monotonic() < self.fail_until:
            return mode
        self.fail_mode = None
        return None

    def over_rate(self):
        """True when this request is beyond --rate-limit in the last second. Holds the lock."""
        now = time.monotonic()
        while self.recent and self.recent[0] <= now - 1.0:
            self.recent.popleft()
        if len(self.recent) >= self.rate_limit:
            return True
        self.recent.append(now)
        return False


def stripe_error(status, type_, message, code=None, param=None):
    err = {"type": type_, "message": message}
    if code:
        err["code"] = code
    if param:
        err["param"] = param
    return status, {"error": err}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, as libcurl reuses connections
    timeout = 30                    # an idle kept-alive connection frees its thread
    server_version = "fake-stripe"

    def log_message(self, fmt, *args):  # quiet: the tests read stdout for the port only
        pass

    # -- plumbing -------------------------------------------------------------------------
    def send_json(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", "req_fake_%d" % random.getrandbits(48))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            return None
        n = int(length)
        if n > MAX_BODY:
            return None
        return self.rfile.read(n)

    def refusing(self):
        st = self.server.state
        with st.lock:
            return time.monotonic() < st.refuse_until

    def do_GET(self):
        if self.refusing():
            self.close_connection = True
            return
        st = self.server.state
        if self.path == "/_control/events":
            with st.lock:
                body = list(st.events)
            return self.send_json(200, body)
        if self.path == "/_control/stats":
            with st.lock:
                body = dict(st.stats)
            return self.send_json(200, body)
        self.send_json(*stripe_error(404, "invalid_request_error",
                                     "Unrecognized request URL (GET: %s)." % self.path))

    def do_POST(self):
        if self.refusing():
            # A kept-alive connection made before the refusal: drop it without an answer, as
            # a restarting server would; the client reconnects and is refused.
            self.close_connection = True
            return
        body = self.read_body()
        if body is None:
            self.close_connection = True
            return self.send_json(*stripe_error(413, "invalid_request_error",
                                                "Request body missing or larger than %d bytes." % MAX_BODY))
        if self.path.startswith("/_control/"):
            return self.control(body)
        if self.path != PATH:
            return self.send_json(*stripe_error(404, "invalid_request_error",
                                                "Unrecognized request URL (POST: %s)." % self.path))
        status, answer, headers = self.meter_event(body)
        with self.server.state.lock:
            self.server.state.stats[str(status)] += 1
        self.send_json(status, answer, headers)

    # -- the control API ------------------------------------------------------------------
    def control(self, body):
        st = self.server.state
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            return self.send_json(400, {"error": "control body must be JSON"})
        what = self.path[len("/_control/"):]
        with st.lock:
            if what == "reset":
                st.reset()
            elif what == "delay":
                st.delay = float(req.get("ms", 0)) / 1000.0
            elif what == "customers":
                c = req.get("customers")
                st.customers = None if c is None else set(c)
            elif what == "fail":
                mode = req.get("mode")
                if mode not in ("refuse", "500", "429", "400", "none"):
                    return self.send_json(400, {"error": "mode must be refuse, 500, 429, 400 or none"})
                if mode == "refuse" and req.get("seconds") is None:
                    return self.send_json(400, {"error": "refuse needs seconds"})
                st.fail_mode = None if mode == "none" else mode
                st.fail_count = int(req.get("count", 0))
                st.fail_probability = float(req.get("probability", 0.0))
                st.fail_until = time.monotonic() + float(req.get("seconds", 0.0))
                st.refuse_until = st.fail_until if mode == "refuse" else 0.0
            else:
                return self.send_json(404, {"error": "unknown control " + what})
        self.send_json(200, {"ok": True})

    # -- POST /v1/billing/meter_events --------------------------------------------------------
    def meter_event(self, body):
        st = self.server.state
        with st.lock:
            injected = st.injected_failure()
        if injected == "500":
            return stripe_error(500, "api_error", "An unknown error occurred (injected).") + ({},)
        if injected == "429":
            return stripe_error(429, "invalid_request_error", "Request rate limit exceeded (injected).",
                                code="rate_limit") + ({},)
        if injected == "400":
            return stripe_error(400, "invalid_request_error", "Injected permanent error.") + (
                {"Stripe-Should-Retry": "false"},)

        auth = self.headers.get("Authorization", "")
        if not auth:
            return stripe_error(401, "invalid_request_error",
                                "You did not provide an API key. You need to provide your API key in "
                                "the Authorization header, using Bearer auth.") + ({},)
        if auth != "Bearer " + self.server.api_key:
            shown = auth[-4:] if len(auth) >= 4 else ""
            return stripe_error(401, "invalid_request_error",
                                "Invalid API Key provided: ****" + shown) + ({},)
        with st.lock:
            if st.over_rate():
                st.stats["rate_limited"] += 1
                return stripe_error(429, "invalid_request_error", "Request rate limit exceeded.",
                                    code="rate_limit") + ({},)

        ctype = self.headers.get("Content-Type", "").split(";")[0].strip()
        if ctype != "application/x-www-form-urlencoded":
            return stripe_error(400, "invalid_request_error",
                                "Invalid request: the body must be application/x-www-form-urlencoded.") + ({},)
        problem, fields = validate(body)
        if problem:
            return problem + ({"Stripe-Should-Retry": "false"},)

        key = (fields["payload[stripe_customer_id]"], fields["event_name"])
        with st.lock:
            if st.customers is not None and key[0] not in st.customers:
                return stripe_error(400, "invalid_request_error", "No such customer: '%s'" % key[0],
                                    code="resource_missing", param="payload[stripe_customer_id]") + (
                    {"Stripe-Should-Retry": "false"},)
            if key in st.in_flight:
                st.stats["concurrent"] += 1
                return stripe_error(429, "invalid_request_error",
                                    "Too many concurrent requests for customer %s and meter %s; only one "
                                    "concurrent call per customer per meter is allowed." % key,
                                    code="rate_limit") + ({},)
            st.in_flight.add(key)
            delay = st.delay
        try:
            if delay:
                time.sleep(delay)
            return self.accept(fields, key)
        finally:
            with st.lock:
                st.in_flight.discard(key)

    def accept(self, fields, key):
        st = self.server.state
        now = int(time.time())
        identifier = fields.get("identifier") or "fake_%x" % random.getrandbits(64)
        event = {
            "object": "billing.meter_event",
            "created": now,
            "event_name": key[1],
            "identifier": identifier,
            "livemode": False,
            "payload": {"stripe_customer_id": key[0], "value": fields["payload[value]"]},
            "timestamp": int(fields.get("timestamp") or now),
        }
        with st.lock:
            if identifier in st.identifiers:
                st.stats["duplicate"] += 1
                return stripe_error(400, "invalid_request_error",
                                    "An event already exists with identifier %s." % identifier) + (
                    {"Stripe-Should-Retry": "false"},)
            if len(st.events) >= MAX_EVENTS:
                return stripe_error(500, "api_error", "fake_stripe: event store full") + ({},)
            st.identifiers.add(identifier)
            st.events.append(event)
        return 200, event, {}


def validate(body):
    """Checks the form against the documented parameters. Returns (error or None, fields)."""
    try:
        pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                                       strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        return stripe_error(400, "invalid_request_error", "Invalid form encoding."), {}
    fields = {}
    for k, v in pairs:
        if k in fields:
            return stripe_error(400, "invalid_request_error", "Duplicate parameter: %s" % k, param=k), {}
        fields[k] = v
    for k in fields:
        if k not in ("event_name", "identifier", "timestamp") and not k.startswith("payload["):
            return stripe_error(400, "invalid_request_error", "Received unknown parameter: %s" % k,
                                param=k), {}
    for k in ("event_name", "payload[stripe_customer_id]", "payload[value]"):
        if not fields.get(k):
            return stripe_error(400, "invalid_request_error", "Missing required param: %s." % k,
                                code="parameter_missing", param=k), {}
    if len(fields["event_name"]) > MAX_EVENT_NAME:
        return stripe_error(400, "invalid_request_error", "event_name is too long (max %d)." % MAX_EVENT_NAME,
                            code="parameter_invalid_string_too_long", param="event_name"), {}
    if "identifier" in fields and not 0 < len(fields["identifier"]) <= MAX_IDENTIFIER:
        return stripe_error(400, "invalid_request_error", "identifier must be 1 to %d characters." % MAX_IDENTIFIER,
                            code="parameter_invalid_string_too_long", param="identifier"), {}
    if not INTEGER.match(fields["payload[value]"]):
        return stripe_error(400, "invalid_request_error",
                            "payload[value] must be a whole number, got '%s'." % fields["payload[value]"],
                            code="parameter_invalid_integer", param="payload[value]"), {}
    if "timestamp" in fields:
        ts = fields["timestamp"]
        if not INTEGER.match(ts):
            return stripe_error(400, "invalid_request_error", "Invalid integer: %s" % ts,
                                code="parameter_invalid_integer", param="timestamp"), {}
        now = time.time()
        if int(ts) < now - MAX_AGE or int(ts) > now + MAX_AHEAD:
            return stripe_error(400, "invalid_request_error",
                                "Timestamp must be within the past 35 calendar days and no more than "
                                "5 minutes in the future.", param="timestamp"), {}
    return None, fields


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, api_key, rate_limit):
        super().__init__(addr, Handler)
        self.api_key = api_key
        self.state = State(rate_limit)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address):
        # Bounded: past MAX_CONNECTIONS a new connection is closed at once instead of getting a
        # thread of its own.
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def rebind(self):
        self.socket = socket.socket(self.address_family, self.socket_type)
        self.server_bind()
        self.server_activate()


def serve(server, deadline, stop):
    """The accept loop. Not serve_forever(): refusing means closing the listening socket, and
    serve_forever's selector would keep the closed one."""
    listening = True
    while not stop.is_set():
        if time.monotonic() > deadline:
            print("fake_stripe: --max-seconds reached, exiting", file=sys.stderr)
            return 3
        with server.state.lock:
            refuse = time.monotonic() < server.state.refuse_until
        if refuse and listening:
            server.socket.close()
            listening = False
        elif not refuse and not listening:
            server.rebind()
            listening = True
        if not listening:
            stop.wait(0.02)
            continue
        with selectors.DefaultSelector() as sel:
            sel.register(server.socket, selectors.EVENT_READ)
            if sel.select(0.02):
                server._handle_request_noblock()
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--api-key", default="sk_test_fake")
    ap.add_argument("--rate-limit", type=int, default=1000, help="requests per second (Stripe: 1000 in live mode)")
    ap.add_argument("--max-seconds", type=float, default=600.0)
    args = ap.parse_args()

    server = Server((args.host, args.port), args.api_key, args.rate_limit)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(server.server_address[1], flush=True)
    rc = serve(server, time.monotonic() + args.max_seconds, stop)
    try:
        server.socket.close()
    except OSError:
        pass
    sys.exit(rc)


if __name__ == "__main__":
    main()
