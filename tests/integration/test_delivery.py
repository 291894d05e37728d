"""Delivery: sealpostd takes mail over SMTP and delivers it to the
recipients' servers, which here are aiosmtpd receivers scripted by the
tests (tests/integration/receiver.py) on loopback addresses.

- through a smart host, every message arrives once, signed: each DKIM
  signature passes dkimpy against the published records, the body is
  byte-identical, and the spool is empty afterwards;
- over IPv6 to [::1];
- by MX (a dnsmasq server owns example.org): the hosts are tried in order
  of preference, a dead first MX is passed over, a null MX and a domain
  that does not exist bounce at once, with the reason in the log;
- a 4xx is retried on the retry schedule and then delivered; a 5xx for
  one recipient bounces it with its class while the other is delivered;
  a connection dropped during DATA is retried;
- a bounced recipient's sender gets a bounce message (RFC 3464) with the
  status, the receiver's reply and the original header section; a
  message from the null sender bounces without one;
- a destination that cannot be reached keeps its recipients pending, with
  their attempts and the last reason shown by "sealpost queue list", until
  the lifetime counted from acceptance runs out, and then they expire;
- throttles hold: with connections=2 and 60 messages a minute, the
  receiver never has more connections at once, nor more messages in any
  minute by its own clock;
- connections are reused: messages to five domains go over no more
  connections than messages divided by the per-connection limit;
- killed with SIGKILL while delivering and restarted, nothing is lost and
  duplicates are at most the deliveries in flight at the kill.
"""
import email
import re
import signal
import smtplib
import time

import dkim
import pytest

from dnsserver import Dnsmasq, free_port
from receiver import Receiver
from smtpd import Sealpostd, strip_added
from test_smtp_signing import dnsfunc, records


def message(sender, rcpt, n, body=b"Statement body line.\r\n"):
    return (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: test {n}\r\n"
            f"Message-ID: <m{n}.{time.time_ns()}@example.com>\r\n\r\n"
            ).encode() + body


def submit(server, sender, rcpts, n, body=b"Statement body line.\r\n"):
    data = message(sender, rcpts[0], n, body)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as smtp:
        smtp.sendmail(sender, rcpts, data)
    return data


def submit_many(server, sender, rcpt_for, count):
    """count messages over one connection; rcpt_for(n) gives the list."""
    sent = []
    with smtplib.SMTP("127.0.0.1", server.port, timeout=60) as smtp:
        for n in range(count):
            data = message(sender, rcpt_for(n)[0], n)
            smtp.sendmail(sender, rcpt_for(n), data)
            sent.append(data)
    return sent


def wait_for(predicate, timeout=30, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def wait_empty(server, timeout=30):
    return wait_for(lambda: server.queue() == [], timeout)


def deliveries(server, status=None):
    lines = [line for line in server.log().splitlines()
             if "delivery queue_id=" in line]
    if status:
        lines = [line for line in lines if f"status={status} " in line]
    return lines


@pytest.fixture
def receiver():
    port = free_port()
    with Receiver("127.0.0.1", port) as rcv:
        yield rcv


def test_smart_host_delivers_signed_messages(tmp_path, receiver):
    server = Sealpostd(
        tmp_path, "dkim_domains = example.com\n"
        f"delivery_smarthost = 127.0.0.1:{receiver.port}\n")
    for selector, kind in (("d1r", ["--rsa", "2048"]), ("d1e", ["--ed25519"])):
        server.sealpost("dkim", "keygen", "example.com", "--selector",
                        selector, *kind)
        server.sealpost("dkim", "activate", "example.com", selector)
    with server:
        sent = [submit(server, "bank@example.com",
                       [f"c{n}@example.org"], n,
                       body=b"Line one.\r\n\r\n.leading dot\r\n" * (n + 1))
                for n in range(5)]
        got = receiver.wait(5)
        assert len(got) == 5, server.log()
        assert wait_empty(server), server.queue()
        lookup = dnsfunc(records(server, "example.com"))

    by_subject = {re.search(rb"Subject: (.*)\r\n", m["data"]).group(1): m
                  for m in got}
    for n, data in enumerate(sent):
        arrived = by_subject[f"test {n}".encode()]
        assert arrived["sender"] == "bank@example.com"
        assert arrived["rcpts"] == [f"c{n}@example.org"]
        raw = arrived["data"]
        assert strip_added(raw).endswith(data), raw[:3000]
        verifier = dkim.DKIM(raw)
        assert verifier.verify(idx=0, dnsfunc=lookup)
        assert verifier.verify(idx=1, dnsfunc=lookup)
    assert len(deliveries(server, "delivered")) == 5


MX = [
    ("two.example.org", "dead.example.org", 10),
    ("two.example.org", "live.example.org", 20),
    ("nomail.example.org", ".", 0),
]
HOSTS = [("dead.example.org", "127.0.0.2"), ("live.example.org", "127.0.0.3")]


def test_delivery_over_ipv6(tmp_path):
    port = free_port()
    with Receiver("::1", port) as rcv:
        server = Sealpostd(tmp_path, f"delivery_smarthost = [::1]:{port}\n")
        with server:
            submit(server, "a@example.com", ["six@example.org"], 1)
            assert len(rcv.wait(1)) == 1, server.log()
            assert wait_empty(server), server.log()
    assert rcv.messages[0]["peer"] == "::1"
    (line,) = deliveries(server, "delivered")
    assert re.search(r"relay=\[::1\]:\d+ ", line), line


def test_mx_by_preference_null_mx_and_missing_domain(tmp_path):
    port = free_port()
    with Dnsmasq({"ready.example.org": "ok"}, local_zones=["example.org"],
                 mx=MX, hosts=HOSTS) as dns, \
            Receiver("127.0.0.3", port) as live:
        server = Sealpostd(
            tmp_path, f"resolver = {dns.server()}\n"
            f"delivery_port = {port}\n"
            "delivery_connect_timeout = 5s\n"
            # the sender's domain has no server here to bounce to
            "delivery_bounce_messages = no\n")
        with server:
            submit(server, "a@example.com", ["x@two.example.org"], 1)
            # domains are case-blind: a null MX bounces whatever the case
            submit(server, "a@example.com", ["y@NoMail.Example.ORG"], 2)
            submit(server, "a@example.com", ["z@missing.example.org"], 3)
            assert len(live.wait(1)) == 1, server.log()
            assert wait_empty(server), server.log()
            log = server.log()

    assert live.messages[0]["rcpts"] == ["x@two.example.org"]
    assert re.search(r"connect dest=two.example.org relay=127.0.0.2:\d+ "
                     r"result=failed", log), log
    bounced = deliveries(server, "bounced")
    assert any("y@NoMail.Example.ORG" in line and "5.1.10" in line and
               "null MX" in line for line in bounced), log
    assert any("z@missing.example.org" in line and "5.1.2" in line and
               "does not exist" in line for line in bounced), log


def test_retry_bounce_and_dropped_connection(tmp_path):
    port = free_port()

    def rcpt(address):
        return "550 5.1.1 no such user here" if address.startswith(
            "bad@") else None

    def data(envelope, seen):
        subject = re.search(rb"Subject: (.*)\r\n",
                            envelope.original_content).group(1)
        if subject == b"test 1" and seen == 0:
            return "451 4.3.0 greylisted, come back later"
        if subject == b"test 2" and seen == 0:
            return "drop"
        return None

    with Receiver("127.0.0.1", port, rcpt=rcpt, data=data) as rcv:
        server = Sealpostd(
            tmp_path, f"delivery_smarthost = 127.0.0.1:{port}\n"
            "delivery_retry_schedule = 1s 2s\n")
        with server:
            submit(server, "a@example.com", ["one@example.org"], 1)
            submit(server, "a@example.com", ["two@example.org"], 2)
            submit(server, "a@example.com",
                   ["good@example.org", "bad@example.org"], 3)
            # three messages, and the bounce for bad@ to the sender
            assert len(rcv.wait(4, timeout=40)) == 4, server.log()
            assert wait_empty(server), server.log()
            log = server.log()

    subjects = sorted(re.search(rb"Subject: (.*)\r\n", m["data"]).group(1)
                      for m in rcv.messages if m["sender"] != "<>")
    assert subjects == [b"test 1", b"test 2", b"test 3"]
    third = next(m for m in rcv.messages if b"test 3" in m["data"])
    assert third["rcpts"] == ["good@example.org"]

    deferred = deliveries(server, "deferred")
    assert any("one@example.org" in l and "greylisted" in l
               for l in deferred), log
    assert any("two@example.org" in l for l in deferred), log
    (bounce,) = [l for l in deliveries(server, "bounced")]
    assert "bad@example.org" in bounce and "class=invalid_recipient" in bounce
    assert "code=550" in bounce and "enhanced=5.1.1" in bounce


def test_unreachable_destination_retries_then_expires(tmp_path):
    closed = free_port()  # nothing listens there
    server = Sealpostd(
        tmp_path, f"delivery_smarthost = 127.0.0.1:{closed}\n"
        "delivery_retry_schedule = 1s\n"
        "queue_max_lifetime = 6s\n"
        # the bounce would wait for the same dead server
        "delivery_bounce_messages = no\n")
    with server:
        accepted = time.monotonic()
        submit(server, "a@example.com", ["p@example.org", "q@example.net"], 1)

        def retried():
            queue = server.queue()
            return queue if queue and all(
                d["attempts"] >= 2 for d in queue[0]["deliveries"]) else None

        (entry,) = wait_for(retried, 20)
        for delivery in entry["deliveries"]:
            assert delivery["state"] == "pending"
            assert delivery["reply"].startswith("451 4.4.1"), delivery
            assert "refused" in delivery["reply"], delivery
            assert delivery["next_try"] > entry["created"]
        assert [d["address"] for d in entry["deliveries"]] == [
            "p@example.org", "q@example.net"]
        shown = server.sealpost("queue", "list").stdout.decode()
        assert "pending   <q@example.net> attempts" in shown, shown

        assert wait_empty(server, 20), server.log()
        gone = time.monotonic() - accepted
        log = server.log()
    expired = deliveries(server, "expired")
    assert len(expired) == 2, log
    assert all("code=451" in line for line in expired)
    # expired by the lifetime counted from acceptance, not from a retry
    assert 5 <= gone < 15, (gone, log)


def test_bounce_message_goes_back_to_the_sender(tmp_path):
    port = free_port()

    def rcpt(address):
        return "550 5.1.1 no such user here" if address.startswith(
            "bad") else None

    with Receiver("127.0.0.1", port, rcpt=rcpt) as rcv:
        server = Sealpostd(tmp_path,
                           f"delivery_smarthost = 127.0.0.1:{port}\n")
        with server:
            submit(server, "a@example.com",
                   ["good@example.org", "bad@example.org"], 7)
            # A bounce is never bounced: nothing goes back for <>.
            with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as smtp:
                smtp.sendmail("", ["bad2@example.org"],
                              message("a@example.com", "bad2@example.org", 8))
            assert len(rcv.wait(2, timeout=30)) == 2, server.log()
            assert wait_empty(server), server.log()
            time.sleep(0.5)  # a wrong second bounce would arrive by now
            log = server.log()

    (original,) = [m for m in rcv.messages if m["sender"] != "<>"]
    (bounce,) = [m for m in rcv.messages if m["sender"] == "<>"]
    assert original["rcpts"] == ["good@example.org"]
    assert bounce["rcpts"] == ["a@example.com"]
    assert len(re.findall(r"bounce queue_id=\S+ for=", log)) == 1, log

    report = email.message_from_bytes(bounce["data"])
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert report["Auto-Submitted"] == "auto-replied"
    text, status, headers = report.get_payload()
    assert "bad@example.org" in text.get_payload()
    assert status.get_content_type() == "message/delivery-status"
    per_message, per_recipient = status.get_payload()
    assert per_message["Reporting-MTA"].startswith("dns; ")
    assert per_recipient["Final-Recipient"] == "rfc822; bad@example.org"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert "550 5.1.1 no such user here" in per_recipient["Diagnostic-Code"]
    assert headers.get_content_type() == "text/rfc822-headers"
    assert "Subject: test 7" in headers.get_payload()


def test_throttle_holds_connections_and_rate(tmp_path):
    port = free_port()
    with Receiver("127.0.0.1", port) as rcv:
        server = Sealpostd(
            tmp_path, f"delivery_smarthost = 127.0.0.1:{port}\n"
            "delivery_rules = example.net connections=2 messages=20 "
            "rate=60/m\n")
        with server:
            start = time.monotonic()
            submit_many(server, "a@example.com",
                        lambda n: [f"r{n}@example.net"], 70)
            first = rcv.wait(70, timeout=15)
            assert len(first) == 60, server.log()
            assert len(rcv.wait(70, timeout=80)) == 70, server.log()
            assert wait_empty(server)

    # From the receiver's own clock: no 61 messages within a minute, and
    # never more than two connections at once.
    times = sorted(m["time"] for m in rcv.messages)
    for i in range(len(times) - 60):
        assert times[i + 60] - times[i] >= 59.0, times
    assert times[-1] - start >= 59.0
    assert rcv.most_at_once <= 2
    assert rcv.sessions >= 4  # twenty messages a connection


def test_connections_are_reused(tmp_path):
    ports = free_port()
    domains = [f"d{i}.example" for i in range(5)]
    addresses = [f"127.0.0.{i + 2}" for i in range(5)]
    receivers = [Receiver(a, ports) for a in addresses]
    routes = " ".join(f"{d}=[{a}]:{ports}" for d, a in zip(domains, addresses))
    for rcv in receivers:
        rcv.__enter__()
    try:
        server = Sealpostd(
            tmp_path, f"delivery_routes = {routes}\n"
            "delivery_messages_per_connection = 20\n")
        with server:
            submit_many(server, "a@example.com",
                        lambda n: [f"u{n}@{domains[n % 5]}"], 200)
            for rcv in receivers:
                assert len(rcv.wait(40, timeout=60)) == 40, server.log()
            assert wait_empty(server)
    finally:
        for rcv in receivers:
            rcv.__exit__()
    total = sum(rcv.sessions for rcv in receivers)
    assert total <= 200 // 20, [rcv.sessions for rcv in receivers]
    assert sum(rcv.opened for rcv in receivers) <= 200 // 20


def test_kill_while_delivering_loses_nothing(tmp_path):
    port = free_port()

    def slow(envelope, seen):
        time.sleep(0.05)
        return None

    with Receiver("127.0.0.1", port, data=slow) as rcv:
        server = Sealpostd(
            tmp_path, f"delivery_smarthost = 127.0.0.1:{port}\n"
            "delivery_connections_per_destination = 2\n"
            "delivery_messages_per_connection = 10\n")
        with server:
            sent = submit_many(server, "a@example.com",
                               lambda n: [f"k{n}@example.org"], 60)
            assert wait_for(lambda: len(rcv.messages) >= 15, 30)
            server.kill()
            at_kill = len(rcv.messages)
            assert at_kill < 60
            server.log_path.write_bytes(b"")
            server.start()
            ids = lambda: {re.search(rb"Message-ID: (\S+)", m["data"]).group(1)
                           for m in rcv.messages}
            assert wait_for(lambda: len(ids()) == 60, 60), server.log()
            assert wait_empty(server)

    assert ids() == {re.search(rb"Message-ID: (\S+)", d).group(1)
                     for d in sent}
    duplicates = len(rcv.messages) - 60
    assert 0 <= duplicates <= 2, duplicates  # two connections in flight
