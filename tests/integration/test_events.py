"""The event stream of delivery: sealpostd commits each message's events
with the submission or outcome they describe, moves them to the event
store, and "sealpost events" reads them.

- one injection and one terminal event (delivery, bounce) per recipient,
  plus a delay for each 4xx; the bounce with its class and the reply;
  every event_id unique;
- the command's filters (type, recipient, queue id, since, limit) and its
  table; --follow prints events as they come;
- killed with SIGKILL just after delivering and started again, every event
  is in the store exactly once; events older than events_retention go;
- the HTTP API's GET /api/v1/events/message gives the same events to a
  valid API key, with its filters and cursor pages, and
  /api/v1/metrics/deliverability their counts by type, day and domain;
  JSON errors:
  401 without a key or with a revoked one, 403 for a key that may only
  send (which SMTP AUTH takes, and a read-only key it refuses), 400 naming
  a bad parameter, 404 and 405.
"""
import json
import smtplib
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import SEALPOST
from dnsserver import free_port
from receiver import Receiver
from smtpd import Sealpostd
from test_delivery import submit, wait_empty, wait_for

BAD, RETRY = "bad@example.org", "later@example.org"


def events(server, *args):
    out = server.sealpost("events", "--json", *args).stdout
    return [json.loads(line) for line in out.splitlines()]


def scripted(port):
    def rcpt(address):
        return "550 5.1.1 no such user here" if address == BAD else None

    def data(envelope, seen):
        if envelope.rcpt_tos == [RETRY] and seen == 0:
            return "451 4.3.0 try again in a moment"
        return None

    return Receiver("127.0.0.1", port, rcpt=rcpt, data=data)


def start(tmp_path, port):
    return Sealpostd(tmp_path, f"delivery_smarthost = 127.0.0.1:{port}\n"
                     "delivery_retry_schedule = 1s\n"
                     "delivery_bounce_messages = no\n")


def test_events_of_delivery_and_the_command(tmp_path):
    port = free_port()
    with scripted(port) as receiver:
        server = start(tmp_path, port)
        with server:
            submit(server, "a@example.com", ["good@example.org", BAD], 1)
            submit(server, "a@example.com", [RETRY], 2)
            assert len(receiver.wait(2, timeout=30)) == 2, server.log()
            assert wait_empty(server), server.log()
            listed = server.sealpost("queue", "list")
            assert listed.stdout == b"" and b"empty" in listed.stderr
            found = wait_for(lambda: (lambda e: e if len(e) >= 7 else None)(
                events(server)), 10)
            assert found, (events(server), server.log())

            by_rcpt = {}
            for event in found:
                by_rcpt.setdefault(event["rcpt_to"], []).append(event)
            assert [e["type"] for e in by_rcpt["good@example.org"]] == [
                "injection", "delivery"]
            assert [e["type"] for e in by_rcpt[BAD]] == ["injection",
                                                         "bounce"]
            assert [e["type"] for e in by_rcpt[RETRY]] == [
                "injection", "delay", "delivery"]
            assert len({e["event_id"] for e in found}) == len(found) == 7

            bounce = by_rcpt[BAD][1]
            assert bounce["bounce_class"] == "invalid_recipient"
            assert bounce["error_code"] == 550
            assert bounce["enhanced_code"] == "5.1.1"
            assert "no such user" in bounce["raw_reason"]
            delivery = by_rcpt["good@example.org"][1]
            assert delivery["mx_ip"] == f"127.0.0.1:{port}"
            assert delivery["tls"] == "no"
            assert delivery["msg_from"] == "a@example.com"
            assert delivery["queue_id"] == bounce["queue_id"]
            assert by_rcpt[RETRY][2]["num_retries"] == 1
            injection = by_rcpt[RETRY][0]
            assert injection["msg_size"] > 0
            assert injection["ip_address"] == "127.0.0.1"

            # Filters.
            assert [e["type"] for e in events(server, "--recipient", BAD)] \
                == ["injection", "bounce"]
            assert [e["rcpt_to"] for e in events(server, "--type",
                                                 "delay")] == [RETRY]
            assert len(events(server, "--queue-id",
                              bounce["queue_id"])) == 4
            assert len(events(server, "--since", "1h")) == 7
            assert events(server, "--since", "2099-01-01T00:00:00.000Z") \
                == []
            assert len(events(server, "--limit", "3")) == 3
            table = server.sealpost("events", "--type", "bounce").stdout
            assert b"bounce" in table and b"550 5.1.1" in table
            bad = server.sealpost("events", "--since", "yesterday",
                                  check=False)
            assert bad.returncode == 2 and b"--since" in bad.stderr

            # --follow prints what arrives.
            follow = subprocess.Popen(
                [SEALPOST, "--config", str(server.config_path), "events",
                 "--follow", "--json", "--type", "delivery", "--recipient",
                 "new@example.org"], stdout=subprocess.PIPE)
            try:
                time.sleep(0.5)
                submit(server, "a@example.com", ["new@example.org"], 3)
                line = follow.stdout.readline()
            finally:
                follow.terminate()
                follow.wait(10)
            assert json.loads(line)["rcpt_to"] == "new@example.org"


def test_events_older_than_the_retention_go(tmp_path):
    port = free_port()
    with scripted(port) as receiver:
        server = Sealpostd(tmp_path,
                           f"delivery_smarthost = 127.0.0.1:{port}\n"
                           "events_retention = 2s\n")
        with server:
            submit(server, "a@example.com", ["brief@example.org"], 1)
            assert len(receiver.wait(1)) == 1, server.log()
            assert wait_for(lambda: len(events(server)) == 2, 10)
            assert wait_for(lambda: events(server) == [], 10), server.log()
            assert "events pruned=" in server.log()


def test_events_survive_a_kill(tmp_path):
    port = free_port()
    with scripted(port) as receiver:
        server = start(tmp_path, port)
        with server:
            for n in range(20):
                submit(server, "a@example.com", [f"k{n}@example.org"], n)
            assert len(receiver.wait(20, timeout=30)) == 20, server.log()
            server.kill()  # events may still wait in the spool
            server.start()
            assert wait_empty(server), server.log()
            found = wait_for(lambda: (lambda e: e if len(e) >= 40 else None)(
                events(server)), 10)
            assert found, server.log()

    assert len(found) == 40
    assert len({e["event_id"] for e in found}) == 40
    for n in range(20):
        assert sorted(e["type"] for e in found
                      if e["rcpt_to"] == f"k{n}@example.org") == [
            "delivery", "injection"]


def api(server, path, key=None, method="GET", body=None):
    """(status, JSON body or None) of a request to the daemon's HTTP API;
    body, when given, goes as it is (bytes) or as JSON."""
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.http_port}{path}", method=method,
        data=body, headers={"Authorization": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_events_over_the_http_api(tmp_path):
    port = free_port()
    with scripted(port) as receiver:
        server = start(tmp_path, port)
        with server:
            key = server.apikey("reader")
            submit(server, "a@example.com", ["good@example.org", BAD], 1)
            for n in range(3):
                submit(server, "a@example.com", [f"p{n}@example.org"], 10 + n)
            assert len(receiver.wait(4, timeout=30)) == 4, server.log()
            assert wait_for(lambda: len(events(server)) >= 10, 10)

            status, body = api(server, "/api/v1/events/message", key)
            assert status == 200, body
            assert [e["event_id"] for e in body["results"]] == \
                [e["event_id"] for e in events(server)]
            assert body["links"] == {}

            status, body = api(server, "/api/v1/events/message?events="
                               f"bounce,delivery&recipients={BAD}", key)
            assert status == 200
            assert [(e["type"], e["rcpt_to"]) for e in body["results"]] == \
                [("bounce", BAD)]

            # Pages of three, following links.next to the end.
            seen, path = [], "/api/v1/events/message?per_page=3&events=" \
                "injection"
            while path:
                status, body = api(server, path, key)
                assert status == 200, body
                seen += [e["rcpt_to"] for e in body["results"]]
                path = body["links"].get("next")
            assert sorted(seen) == sorted(
                ["good@example.org", BAD] +
                [f"p{n}@example.org" for n in range(3)])

            # Counts by type, over time and by recipient domain.
            status, body = api(server, "/api/v1/metrics/deliverability?"
                               "from=2000-01-01T00:00&precision=day", key)
            assert status == 200, body
            totals = body["results"]["totals"]
            assert totals == {"count_injected": 5, "count_delivered": 4,
                              "count_bounce": 1}, totals
            days = body["results"]["time_series"]  # two if past midnight
            assert 1 <= len(days) <= 2
            assert all(day["ts"].endswith("T00:00:00Z") for day in days)
            assert {name: sum(day.get(name, 0) for day in days)
                    for name in totals} == totals
            assert body["results"]["domains"] == [
                dict(domain="example.org", **totals)]
            status, body = api(server, "/api/v1/metrics/deliverability?"
                               "from=2099-01-01T00:00", key)
            assert body["results"]["totals"] == {}
            status, body = api(server, "/api/v1/metrics/deliverability", key)
            assert status == 400 and "from" in body["errors"][0]["message"]
            status, body = api(server, "/api/v1/metrics/deliverability?"
                               "from=2000-01-01T00:00&precision=week", key)
            assert status == 400 and "precision" in \
                body["errors"][0]["message"]

            # Errors, as JSON with a message.
            for path, want, words in (
                    ("/api/v1/events/message?events=opened", 400, "events"),
                    ("/api/v1/events/message?per_page=0", 400, "per_page"),
                    ("/api/v1/events/message?from=yesterday", 400, "from"),
                    ("/api/v1/events/message?cursor=x", 400, "cursor"),
                    ("/api/v1/nothing", 404, "no such")):
                status, body = api(server, path, key)
                assert status == want, (path, body)
                assert words in body["errors"][0]["message"], body
            status, body = api(server, "/api/v1/events/message", key, "POST")
            assert status == 405
            status, body = api(server, "/api/v1/events/message")
            assert status == 401 and "API key" in body["errors"][0]["message"]
            status, body = api(server, "/api/v1/events/message", "sp_wrong")
            assert status == 401

            # Scopes: a key that may only send cannot read, and one that
            # may only read cannot send.
            sender = server.sealpost("apikey", "create", "--name", "sender",
                                     "--scope", "send").stdout.decode()
            reader = server.sealpost("apikey", "create", "--name",
                                     "only-reader", "--scope",
                                     "read").stdout.decode()
            status, body = api(server, "/api/v1/events/message",
                               sender.strip())
            assert status == 403 and "lacks the read scope" in \
                body["errors"][0]["message"]
            assert api(server, "/api/v1/events/message",
                       reader.strip())[0] == 200
            with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
                smtp.ehlo()
                with pytest.raises(smtplib.SMTPAuthenticationError):
                    smtp.login("only-reader", reader.strip())
            with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
                smtp.ehlo()
                assert smtp.login("sender", sender.strip())[0] == 235
            listed = server.sealpost("apikey", "list", "--json").stdout
            scopes = {json.loads(line)["name"]: json.loads(line)["scopes"]
                      for line in listed.splitlines()}
            assert scopes == {"reader": "send,read", "sender": "send",
                              "only-reader": "read"}

            server.sealpost("apikey", "revoke", "reader")
            status, body = api(server, "/api/v1/events/message", key)
            assert status == 401 and "revoked" in body["errors"][0]["message"]


def test_refusals_are_policy_rejection_events(tmp_path):
    """sealpost's own permanent refusals are events: a sender domain the
    API key may not use (at MAIL, before any recipient), and a message
    that cannot be signed (one event per recipient); nothing is queued
    and no injection is recorded."""
    server = Sealpostd(tmp_path)
    with server:
        key = server.apikey("tenant-a", "example.com")
        with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as smtp:
            smtp.login("tenant-a", key)
            code, _ = smtp.mail("app@other.example")
            assert code == 553
            smtp.rset()
            with pytest.raises(smtplib.SMTPDataError) as refusal:
                smtp.sendmail("app@example.com",
                              ["r1@example.org", "r2@example.org"],
                              b"Subject: no author\r\n\r\nHello\r\n")
            assert refusal.value.smtp_code == 550

        found = wait_for(lambda: (lambda got: got if len(got) >= 3 else None)(
            events(server, "--type", "policy_rejection")), 10)
        assert found, server.log()
        at_mail = [e for e in found if "rcpt_to" not in e]
        at_data = sorted((e for e in found if "rcpt_to" in e),
                         key=lambda e: e["rcpt_to"])
        assert len(at_mail) == 1 and len(at_data) == 2, found
        assert at_mail[0]["msg_from"] == "app@other.example"
        assert at_mail[0]["error_code"] == 553
        assert at_mail[0]["enhanced_code"] == "5.7.1"
        assert at_mail[0]["ip_address"] == "127.0.0.1"
        assert at_mail[0]["identity"]
        assert [e["rcpt_to"] for e in at_data] == ["r1@example.org",
                                                   "r2@example.org"]
        for event in at_data:
            assert event["error_code"] == 550
            assert "From" in event["raw_reason"], event
            assert event["msg_from"] == "app@example.com"
        assert server.queue() == []
        assert events(server, "--type", "injection") == []


def test_events_carry_subject_campaign_metadata_and_signatures(tmp_path):
    """Every event of a message carries its subject, its transmission
    and the campaign and metadata given in X-MSYS-API, which leaves the
    message at intake; injection names each DKIM signature, delivery the
    address it was sent from.  A malformed X-MSYS-API is refused, and
    events_subject = no keeps subjects out."""
    port = free_port()
    with Receiver("127.0.0.1", port) as receiver:
        server = Sealpostd(tmp_path, f"delivery_smarthost = 127.0.0.1:{port}\n"
                           "dkim_domains = example.com\n")
        for selector, kind in (("f1r", ["--rsa", "2048"]),
                               ("f1e", ["--ed25519"])):
            server.sealpost("dkim", "keygen", "example.com", "--selector",
                            selector, *kind)
            server.sealpost("dkim", "activate", "example.com", selector)
        api_field = (b'X-MSYS-API: {"campaign_id": "spring-sale",\r\n'
                     b' "metadata": {"customer": "42", "tier": ["gold"]},'
                     b' "options": {"open_tracking": false}}\r\n')
        message = (b"From: shop@example.com\r\nTo: c1@example.org\r\n"
                   b"Subject: Your =?utf-8?q?r=C3=A9sum=C3=A9?= is ready\r\n"
                   + api_field + b"\r\nHello.\r\n")
        with server:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as smtp:
                smtp.sendmail("shop@example.com", ["c1@example.org"],
                              message)
                with pytest.raises(smtplib.SMTPDataError) as refusal:
                    smtp.sendmail("shop@example.com", ["c2@example.org"],
                                  message.replace(b'"spring-sale"', b"7"))
                assert refusal.value.smtp_code == 550
                assert b"campaign_id" in refusal.value.smtp_error
            (got,) = receiver.wait(1)
            assert b"X-MSYS-API" not in got["data"]
            assert b"Subject: Your" in got["data"]

            found = wait_for(lambda: (lambda e: e if len(e) >= 2 else None)(
                events(server, "--recipient", "c1@example.org")), 20)
            assert found, server.log()
            by_type = {e["type"]: e for e in found}
            for event in by_type.values():
                assert event["subject"] == \
                    "Your =?utf-8?q?r=C3=A9sum=C3=A9?= is ready"
                assert event["campaign_id"] == "spring-sale"
                assert event["metadata"] == {"customer": "42",
                                             "tier": ["gold"]}
                assert event["transmission_id"] == event["queue_id"]
                assert "options" not in event
            assert sorted(s["selector"] for s in
                          by_type["injection"]["dkim_signatures"]) == \
                ["f1e", "f1r"]
            assert all(s["domain"] == "example.com" for s in
                       by_type["injection"]["dkim_signatures"])
            assert by_type["delivery"]["sending_ip"] == "127.0.0.1"

            # The campaign is a filter of the command and of the API.
            assert {e["event_id"] for e in events(
                server, "--campaign", "spring-sale")} == \
                {e["event_id"] for e in found}
            key = server.apikey("reader")
            code, body = api(server, "/api/v1/events/message?campaign_ids="
                             "spring-sale&events=delivery", key)
            assert code == 200
            assert [e["rcpt_to"] for e in body["results"]] == \
                ["c1@example.org"]
            rejected = wait_for(lambda: events(server, "--type",
                                               "policy_rejection"), 10)
            assert [e["rcpt_to"] for e in rejected] == ["c2@example.org"]

        # Without subjects: the rest as before.
        with open(server.config_path, "a") as config:
            config.write("events_subject = no\n")
        server.restart()
        try:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as smtp:
                smtp.sendmail("shop@example.com", ["c3@example.org"],
                              message)
            found = wait_for(lambda: events(server, "--recipient",
                                            "c3@example.org"), 20)
            assert found and all("subject" not in e for e in found), found
            assert all(e["campaign_id"] == "spring-sale" for e in found)
        finally:
            server.stop()
