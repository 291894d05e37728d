"""Webhooks: sealpostd POSTs the events to an endpoint registered with
"sealpost webhooks add", signed with its secret.

An HTTP receiver in the test checks each POST's X-Sealpost-Signature
(HMAC-SHA256 of the body with the secret printed at add).  It gets the
events of the types it asked for; stopped, and started again a minute
later on the same port, it still gets every event, repeats only of ids
it had, while "webhooks status" shows the failure and the backlog, then
neither.  "webhooks list" and "remove" do what they say, and so does
/api/v1/webhooks over HTTP.
"""
import hashlib
import hmac
import http.server
import json
import socket
import threading
import time

from dnsserver import free_port
from receiver import Receiver
from smtpd import Sealpostd
from test_delivery import submit, wait_empty, wait_for
from test_events import api


class Endpoint:
    """An HTTP server on 127.0.0.1:port taking POSTed event arrays."""

    def __init__(self, port, secret, ids):
        self.port, self.secret = port, secret.encode()
        self.ids, self.bad_signatures, self.posts = ids, 0, 0
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                want = "sha256=" + hmac.new(endpoint.secret, body,
                                            hashlib.sha256).hexdigest()
                if self.headers.get("X-Sealpost-Signature") != want:
                    endpoint.bad_signatures += 1
                    self.send_response(401)
                else:
                    endpoint.posts += 1
                    endpoint.ids += [e["event_id"] for e in json.loads(body)]
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port),
                                                      Handler)
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def events(server, *args):
    out = server.sealpost("events", "--json", *args).stdout
    return [json.loads(line) for line in out.splitlines()]


def status(server):
    out = server.sealpost("webhooks", "status", "--json").stdout
    return [json.loads(line) for line in out.splitlines()]


OUTAGE_S = 60  # how long the endpoint stays away


def raw_post(port, key, head, body):
    """POST to /api/v1/webhooks over a plain socket: with a declared
    length, only the head (the server answers before reading a body it
    will refuse); chunked, the whole body.  The answer's bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: " + key.encode() + b"\r\n" + head +
                     b"\r\n")
        if b"chunked" in head:
            sock.sendall(b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        return answer


def test_webhook_gets_every_event_across_an_outage(tmp_path):
    mail, hook_port = free_port(), free_port()
    with Receiver("127.0.0.1", mail) as receiver:
        # Pauses between tries grow to 5 s, not an hour: the endpoint's
        # return is noticed within seconds.
        server = Sealpostd(tmp_path, f"delivery_smarthost = 127.0.0.1:{mail}\n"
                           "webhook_retry_max = 5s\n")
        with server:
            secret = server.sealpost(
                "webhooks", "add", "--name", "crm", "--url",
                f"http://127.0.0.1:{hook_port}/events", "--events",
                "injection,delivery").stdout.decode().strip()
            assert secret.startswith("whsec_")
            ids = []  # every event id received, by either endpoint
            endpoint = Endpoint(hook_port, secret, ids)
            try:
                for n in range(3):
                    submit(server, "a@example.com", [f"w{n}@example.org"], n)
                assert wait_for(lambda: len(set(ids)) >= 6, 20), server.log()
            finally:
                endpoint.stop()
            gone_at = time.monotonic()
            first_bad = endpoint.bad_signatures

            # The endpoint is gone: events wait, the failure is shown.
            for n in range(3, 6):
                submit(server, "a@example.com", [f"w{n}@example.org"], n)
            assert len(receiver.wait(6)) == 6, server.log()
            failing = wait_for(lambda: [s for s in status(server)
                                        if s["failing_since"] and
                                        s["backlog"] >= 6], 20)
            assert failing, (status(server), server.log())
            assert failing[0]["last_error"]
            time.sleep(max(0, OUTAGE_S - (time.monotonic() - gone_at)))

            # Back: everything arrives, repeats only of the same events.
            endpoint = Endpoint(hook_port, secret, ids)
            try:
                wanted = {e["event_id"] for e in events(server)
                          if e["type"] in ("injection", "delivery")}
                assert len(wanted) == 12
                assert wait_for(lambda: set(ids) >= wanted, 40), \
                    (status(server), server.log())
            finally:
                endpoint.stop()
            assert set(ids) == wanted  # repeats, if any, of the same ids
            assert first_bad == endpoint.bad_signatures == 0
            (after,) = status(server)
            assert after["failing_since"] == 0 and after["backlog"] == 0
            assert after["last_error"] == ""

            listed = server.sealpost("webhooks", "list").stdout.decode()
            assert "crm" in listed and "injection,delivery" in listed
            server.sealpost("webhooks", "remove", "crm")
            assert status(server) == []
            gone = server.sealpost("webhooks", "remove", "crm", check=False)
            assert gone.returncode == 1

    assert "webhook name=crm result=failed" in server.log()


def test_webhooks_managed_over_the_http_api(tmp_path):
    """POST /api/v1/webhooks registers an endpoint that then gets the
    events, signed with the secret the POST answered; GET lists and shows,
    DELETE removes; a key needs the webhooks scope, and a bad body is a
    400 that stores nothing."""
    mail, hook_port = free_port(), free_port()
    with Receiver("127.0.0.1", mail) as receiver:
        server = Sealpostd(tmp_path, f"delivery_smarthost = 127.0.0.1:{mail}\n")
        with server:
            admin = server.sealpost("apikey", "create", "--name", "admin",
                                    "--scope", "webhooks").stdout.decode()
            admin = admin.strip()
            reader = server.sealpost("apikey", "create", "--name", "reader",
                                     "--scope", "read").stdout.decode()
            reader = reader.strip()
            url = f"http://127.0.0.1:{hook_port}/in"

            code, body = api(server, "/api/v1/webhooks", admin, "POST",
                               {"name": "api-crm", "target": url,
                                "events": ["delivery"]})
            assert code == 200, body
            created = body["results"]
            assert created["name"] == "api-crm"
            assert created["secret"].startswith("whsec_")

            ids = []
            endpoint = Endpoint(hook_port, created["secret"], ids)
            try:
                submit(server, "a@example.com", ["h1@example.org"], 1)
                assert len(receiver.wait(1)) == 1, server.log()
                assert wait_for(lambda: len(ids) >= 1, 20), server.log()
            finally:
                endpoint.stop()
            assert endpoint.bad_signatures == 0
            (delivery,) = [e for e in events(server)
                           if e["type"] == "delivery"]
            assert set(ids) == {delivery["event_id"]}

            code, body = api(server, "/api/v1/webhooks", admin)
            assert code == 200
            (listed,) = body["results"]
            assert listed["id"] == created["id"]
            assert listed["target"] == url and listed["events"] == \
                ["delivery"]
            assert "secret" not in listed and "sealed" not in listed
            code, body = api(server, f"/api/v1/webhooks/{created['id']}",
                               admin)
            assert code == 200 and body["results"] == listed
            cli = [json.loads(line) for line in server.sealpost(
                "webhooks", "list", "--json").stdout.splitlines()]
            assert [h["name"] for h in cli] == ["api-crm"]

            # Refusals: each a JSON error, and nothing stored by them.
            for key, method, payload, want, words in (
                    (None, "GET", None, 401, "API key"),
                    (reader, "GET", None, 403, "webhooks scope"),
                    (reader, "POST", {"name": "x", "target": url}, 403,
                     "webhooks scope"),
                    (admin, "POST", b"{not json", 400, "JSON object"),
                    (admin, "POST", {"target": url}, 400, "name"),
                    (admin, "POST", {"name": "x"}, 400, "target"),
                    (admin, "POST", {"name": "x", "target": "ftp://h/"},
                     400, "url"),
                    (admin, "POST", {"name": "x", "target": url,
                                     "events": ["opened"]}, 400, "events"),
                    (admin, "POST", {"name": "x", "target": url,
                                     "events": "delivery"}, 400, "events"),
                    (admin, "POST", {"name": "api-crm", "target": url},
                     400, "api-crm"),
                    (admin, "PUT", {"name": "x"}, 405, "GET or POST")):
                code, body = api(server, "/api/v1/webhooks", key, method,
                                   payload)
                assert code == want, (method, payload, body)
                assert words in body["errors"][0]["message"], body
            code, body = api(server, "/api/v1/webhooks", admin)
            assert len(body["results"]) == 1

            # A body over 1 MiB: refused once its length is known, before
            # it is read when the request declares it.
            for head in (b"Content-Length: 1048586\r\n",
                         b"Transfer-Encoding: chunked\r\n"):
                answer = raw_post(server.http_port, admin, head,
                                  b"[" * (1024 * 1024 + 10))
                assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
                assert b"1 MiB" in answer

            code, body = api(server, "/api/v1/webhooks/999", admin)
            assert code == 404
            code, body = api(server, f"/api/v1/webhooks/{created['id']}",
                               admin, "DELETE")
            assert code == 204 and body is None
            code, body = api(server, f"/api/v1/webhooks/{created['id']}",
                               admin, "DELETE")
            assert code == 404
            assert status(server) == []
