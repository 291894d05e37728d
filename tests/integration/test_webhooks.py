"""Webhooks: sealpostd POSTs the events to an endpoint registered with
"sealpost webhooks add", signed with its secret.

An HTTP receiver in the test checks each POST's X-Sealpost-Signature
(HMAC-SHA256 of the body with the secret printed at add).  It gets the
events of the types it asked for; stopped, and started again a while
later on the same port, it still gets every event, repeats only of ids
it had, while "webhooks status" shows the failure and the backlog, then
neither.  "webhooks list" and "remove" do what they say.
"""
import hashlib
import hmac
import http.server
import json
import threading

from dnsserver import free_port
from receiver import Receiver
from smtpd import Sealpostd
from test_delivery import submit, wait_empty, wait_for


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


def test_webhook_gets_every_event_across_an_outage(tmp_path):
    mail, hook_port = free_port(), free_port()
    with Receiver("127.0.0.1", mail) as receiver:
        server = Sealpostd(tmp_path, f"delivery_smarthost = 127.0.0.1:{mail}\n")
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
