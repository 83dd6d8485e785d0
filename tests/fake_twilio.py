"""A local Twilio REST API (the Messages resource) for tests, on 127.0.0.1.

It speaks the API as ``twilio.rest.Client`` uses it: form-encoded POSTs to
``/2010-04-01/Accounts/{AccountSid}/Messages.json``, HTTP basic auth with the account SID and
auth token, JSON replies shaped like Twilio's (RFC 2822 dates, ``SM…`` SIDs), the paging
envelope of list reads with the ``To`` and ``DateSent>``/``DateSent<`` filters, and error
bodies with ``code``/``message``/``more_info``/``status``. Failures are programmed with
``fail_next``; every accepted message is recorded so tests can count texts.

Like the real service, a message is ``queued`` with an empty ``date_sent`` until it has been
sent (``sent_lag`` seconds, 0 by default): reconciliation must find queued messages too.

Inbound texts (a person replying) are added with ``add_inbound``: listed like Twilio lists them
(``direction`` ``inbound``, status ``received``, ``date_sent`` set, filterable by ``To``,
``From`` and ``DateSent>``). An inbound opt-out keyword (STOP, …) makes every later text from
that Twilio number to the person fail with error 21610 until an opt-in keyword (START, …), as
Twilio's default opt-out handling does.
"""

from __future__ import annotations

import base64
import json
import random
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlencode, urlsplit

ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    21211: "The 'To' number is not a valid phone number.",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
    21604: "A 'To' phone number is required.",
    21602: "Message body is required.",
    21606: "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    20500: "An internal server error has occurred",
    20503: "Service Unavailable",
}


#: Twilio's default opt-out and opt-in keywords (the whole message, any case).
OPT_OUT_KEYWORDS = frozenset({"stop", "stopall", "stop all", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"})
OPT_IN_KEYWORDS = frozenset({"start", "yes", "unstop"})


@dataclass
class Failure:
    """One programmed failure: answer ``status``/``code`` (after recording the message when
    ``after_accepting``), or sleep ``delay`` seconds first (a read timeout for the client)."""

    status: int = 500
    code: int | None = None
    after_accepting: bool = False
    delay: float = 0.0
    method: str = "POST"
    #: With ``delay``, answer 201 after the sleep instead of the error (the client has gone).
    succeed_after_delay: bool = False


@dataclass
class Sms:
    sid: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    date_created: datetime
    sent_lag: float
    direction: str = "outbound-api"

    def date_sent(self, now: datetime) -> datetime | None:
        sent = self.date_created + timedelta(seconds=self.sent_lag)
        return sent if sent <= now else None

    def to_json(self, now: datetime, base: str, *, just_created: bool = False) -> dict:
        # Twilio answers a create with "queued" and no date_sent, whatever happens next.
        sent = None if just_created else self.date_sent(now)
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": self.body,
            "date_created": format_datetime(self.date_created),
            "date_sent": format_datetime(sent) if sent else None,
            "date_updated": format_datetime(sent or self.date_created),
            "direction": self.direction,
            "error_code": None,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": "received" if self.direction == "inbound" else ("sent" if sent else "queued"),
            "subresource_uris": {"media": f"{base}/Messages/{self.sid}/Media.json"},
            "to": self.to,
            "uri": f"{base}/Messages/{self.sid}.json",
        }


@dataclass
class FakeTwilio:
    """The server and its programmable state. Start with ``start()``; ``url`` is its base URL."""

    account_sid: str = field(default_factory=lambda: "AC" + secrets.token_hex(16))
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    #: Random extra latency per request, in seconds (min, max): widens the crash windows.
    latency: tuple[float, float] = (0.0, 0.0)
    sent_lag: float = 0.0
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))

    def __post_init__(self) -> None:
        self.messages: list[Sms] = []
        #: (Twilio number, person) pairs the person opted out of with STOP.
        self.opted_out: set[tuple[str, str]] = set()
        self.requests: list[tuple[str, str]] = []
        self._failures: deque[Failure] = deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # --- control ----------------------------------------------------------------------------

    def start(self) -> "FakeTwilio":
        server = self

        class Handler(_Handler):
            fake = server

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name="fake-twilio", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self.opted_out.clear()
            self.requests.clear()
            self._failures.clear()
        self.latency = (0.0, 0.0)
        self.sent_lag = 0.0
        self.clock = lambda: datetime.now(timezone.utc)

    def fail_next(self, status: int = 500, code: int | None = None, *, times: int = 1, after_accepting: bool = False,
                  delay: float = 0.0, method: str = "POST", succeed_after_delay: bool = False) -> None:
        """Make the next ``times`` requests of ``method`` fail this way (in order, after any queued)."""
        with self._lock:
            for _ in range(times):
                self._failures.append(Failure(status, code, after_accepting, delay, method.upper(), succeed_after_delay))

    def add_inbound(self, from_: str, to: str, body: str, *, date_sent: datetime | None = None,
                    sid: str | None = None) -> Sms:
        """A text ``from_`` a person ``to`` a Twilio number, received at ``date_sent`` (default now).

        Twilio's default keywords act as they do there: an opt-out word blocks texts back to
        ``from_`` (error 21610), an opt-in word lifts the block.
        """
        sms = Sms(
            sid=sid or "SM" + secrets.token_hex(16),
            account_sid=self.account_sid,
            to=to,
            from_=from_,
            messaging_service_sid=None,
            body=body,
            date_created=(date_sent or self.clock()).astimezone(timezone.utc).replace(microsecond=0),
            sent_lag=0.0,
            direction="inbound",
        )
        keyword = " ".join(body.split()).lower()
        with self._lock:
            self.messages.append(sms)
            if keyword in OPT_OUT_KEYWORDS:
                self.opted_out.add((to, from_))
            elif keyword in OPT_IN_KEYWORDS:
                self.opted_out.discard((to, from_))
        return sms

    # --- observation ------------------------------------------------------------------------

    def count(self, method: str = "POST", *, path_suffix: str = "/Messages.json") -> int:
        with self._lock:
            return sum(1 for m, p in self.requests if m == method and p.endswith(path_suffix))

    def sms_to(self, to: str) -> list[Sms]:
        """Texts sent to ``to`` through the API (inbound texts are not counted)."""
        with self._lock:
            return [m for m in self.messages if m.to == to and m.direction != "inbound"]

    def bodies(self) -> list[str]:
        """Bodies of the texts sent through the API (inbound texts are not counted)."""
        with self._lock:
            return [m.body for m in self.messages if m.direction != "inbound"]

    # --- request handling (called from handler threads) -------------------------------------

    def _take_failure(self, method: str) -> Failure | None:
        with self._lock:
            for i, failure in enumerate(self._failures):
                if failure.method == method:
                    del self._failures[i]
                    return failure
        return None

    def _accept(self, account_sid: str, form: dict[str, str]) -> Sms:
        sms = Sms(
            sid="SM" + secrets.token_hex(16),
            account_sid=account_sid,
            to=form["To"],
            from_=form.get("From"),
            messaging_service_sid=form.get("MessagingServiceSid"),
            body=form["Body"],
            date_created=self.clock().replace(microsecond=0),
            sent_lag=self.sent_lag,
        )
        with self._lock:
            self.messages.append(sms)
        return sms


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # Clients killed or timed out mid-request are the point of these tests, not errors.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _error_body(status: int, code: int | None, more: str | None = None) -> dict:
    code = code or status
    return {
        "code": code,
        "message": more or ERROR_MESSAGES.get(code, "Error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTwilio
    protocol_version = "HTTP/1.1"
    # One write per response and no Nagle: otherwise delayed ACKs add ~40 ms to every request.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet test output
        pass

    # -- plumbing

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Twilio-Request-Id", "RQ" + secrets.token_hex(16))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout or killed): what we did still happened

    def _authorized(self, account_sid: str) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except Exception:  # noqa: BLE001
            return False
        return user == self.fake.account_sid and password == self.fake.auth_token and account_sid == self.fake.account_sid

    def _route(self) -> tuple[str | None, str | None, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        segments = parts.path.strip("/").split("/")
        query = parse_qs(parts.query, keep_blank_values=True)
        # 2010-04-01 / Accounts / {sid} / Messages.json | Messages / {SM}.json
        if len(segments) >= 4 and segments[0] == "2010-04-01" and segments[1] == "Accounts":
            if segments[3:] == ["Messages.json"]:
                return segments[2], "list", query
            if len(segments) == 5 and segments[3] == "Messages" and segments[4].endswith(".json"):
                return segments[2], segments[4][:-5], query
        return None, None, query

    def _common(self, method: str):
        fake = self.fake
        with fake._lock:
            fake.requests.append((method, urlsplit(self.path).path))
        low, high = fake.latency
        if high > 0:
            time.sleep(random.uniform(low, high))
        account_sid, resource, query = self._route()
        if account_sid is None:
            self._reply(404, _error_body(404, 20404))
            return None
        if not self._authorized(account_sid):
            self._reply(401, _error_body(401, 20003))
            return None
        return account_sid, resource, query

    # -- verbs

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        routed = self._common("POST")
        if routed is None:
            return
        account_sid, resource, _ = routed
        if resource != "list":
            self._reply(405, _error_body(405, None, "Method not allowed"))
            return
        form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        fake = self.fake
        failure = fake._take_failure("POST")
        if failure is not None:
            sms = fake._accept(account_sid, form) if (failure.after_accepting or failure.succeed_after_delay) else None
            if failure.delay:
                time.sleep(failure.delay)
            if failure.succeed_after_delay and sms is not None:
                self._reply(201, sms.to_json(fake.clock(), f"/2010-04-01/Accounts/{account_sid}", just_created=True))
            else:
                self._reply(failure.status, _error_body(failure.status, failure.code))
            return
        if not form.get("To"):
            self._reply(400, _error_body(400, 21604))
            return
        if not form.get("Body"):
            self._reply(400, _error_body(400, 21602))
            return
        if not (form.get("From") or form.get("MessagingServiceSid")):
            self._reply(400, _error_body(400, 21606))
            return
        to = form["To"]
        if not to.startswith("+") or not to[1:].isdigit() or not 8 <= len(to) <= 16:
            self._reply(400, _error_body(400, 21211, f"The 'To' number {to} is not a valid phone number."))
            return
        if (form.get("From"), to) in fake.opted_out:
            self._reply(400, _error_body(400, 21610))
            return
        sms = fake._accept(account_sid, form)
        self._reply(201, sms.to_json(fake.clock(), f"/2010-04-01/Accounts/{account_sid}", just_created=True))

    def do_GET(self) -> None:  # noqa: N802
        routed = self._common("GET")
        if routed is None:
            return
        account_sid, resource, query = routed
        fake = self.fake
        failure = fake._take_failure("GET")
        if failure is not None:
            if failure.delay:
                time.sleep(failure.delay)
            self._reply(failure.status, _error_body(failure.status, failure.code))
            return
        base = f"/2010-04-01/Accounts/{account_sid}"
        now = fake.clock()
        with fake._lock:
            messages = list(fake.messages)
        if resource != "list":
            for sms in messages:
                if sms.sid == resource:
                    self._reply(200, sms.to_json(now, base))
                    return
            self._reply(404, _error_body(404, 20404))
            return
        selected = [m for m in messages if m.account_sid == account_sid]
        if "To" in query:
            selected = [m for m in selected if m.to == query["To"][-1]]
        if "From" in query:
            selected = [m for m in selected if m.from_ == query["From"][-1]]
        for key, keep in (("DateSent>", lambda d, t: d >= t), ("DateSent<", lambda d, t: d <= t)):
            if key in query:
                bound = _parse_filter_date(query[key][-1])
                selected = [m for m in selected if (d := m.date_sent(now)) is not None and keep(d, bound)]
        selected.sort(key=lambda m: (m.date_created, m.sid), reverse=True)  # newest first, as Twilio lists
        page_size = max(1, min(1000, int(query.get("PageSize", ["50"])[-1])))
        page = int(query.get("Page", ["0"])[-1])
        chunk = selected[page * page_size:(page + 1) * page_size]
        params = {k: v[-1] for k, v in query.items() if k not in ("Page", "PageToken")}

        def uri(n: int) -> str:
            return f"{base}/Messages.json?" + urlencode({**params, "Page": n, "PageSize": page_size})

        has_next = (page + 1) * page_size < len(selected)
        self._reply(200, {
            "messages": [m.to_json(now, base) for m in chunk],
            "end": page * page_size + max(len(chunk) - 1, 0),
            "first_page_uri": uri(0),
            "next_page_uri": uri(page + 1) if has_next else None,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": uri(page - 1) if page > 0 else None,
            "start": page * page_size,
            "uri": uri(page),
        })


def _parse_filter_date(value: str) -> datetime:
    """``DateSent>`` as the client sends it (``YYYY-MM-DDTHH:MM:SSZ``) or a bare date."""
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    raise ValueError(value)


def main() -> None:
    """Run standalone (``python -m tests.fake_twilio``) for manual poking; prints its settings."""
    server = FakeTwilio().start()
    print(json.dumps({"base_url": server.url, "account_sid": server.account_sid, "auth_token": server.auth_token}), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
