"""Delivery end to end through real peers: sealpostd takes mail over SMTP,
signs it, looks up each recipient domain's MX in a dnsmasq server, and
delivers to a private Postfix (tests/integration/postfix.py) that stores
it in Maildirs, and to aiosmtpd receivers (receiver.py) scripted to
refuse or fail.  All of them listen on loopback addresses, one port.

  one, two, three.example.net   MX 127.0.0.2, Postfix (STARTTLS offered);
                                one of its addresses is unknown (550 5.1.1
                                at RCPT)
  retry.example.org             MX 127.0.0.3, 451 to the first DATA of
                                each message, then 250
  reject.example.org            MX 127.0.0.4, 550 5.1.1 for one user
  drop.example.org              MX 127.0.0.5, drops the connection at the
                                first DATA of each message, then 250

Messages signed with an RSA-2048 and an Ed25519 key of example.com go to
them, one of them with an 8-bit UTF-8 body, one of about 1 MB.  Proved:

- every message for a known Postfix address is in its Maildir exactly
  once, with the envelope sender as Return-Path, and its bytes are the
  submitted ones once the fields sealpost and Postfix added are taken
  off; the receivers' messages likewise, once each;
- every DKIM signature of every delivered message passes dkimpy, and
  OpenDKIM's opendkim-testmsg passes each signature on its own, fetching
  the keys over real DNS; a changed body fails in OpenDKIM, under either key;
- each recipient's delivery lines in sealpostd's log say what became of
  it: delivered at the first attempt (over TLS, for Postfix), deferred
  once and then delivered for the 451 and the dropped connection, bounced
  with class=invalid_recipient and 5.1.1 for the unknown users;
- the sender gets one bounce message per message with a refused
  recipient, in its own Maildir at Postfix, naming each refused
  recipient with Action: failed and Status: 5.1.1;
- afterwards sealpost's spool is empty and Postfix's queue holds nothing.
"""
import collections
import email
import email.utils
import re
import smtplib
import time

import dkim

from dnsserver import Dnsmasq, free_port
from postfix import Postfix
from receiver import Receiver
from smtpd import Sealpostd, strip_added
from test_delivery import deliveries, wait_empty, wait_for
from test_interop import opendkim_verdicts, signature_tags, \
    without_signatures
from test_smtp_signing import dnsfunc, records

SENDER = "bank@example.com"
POSTFIX_DOMAINS = ["one.example.net", "two.example.net", "three.example.net"]
MAILBOXES = [f"{user}@{domain}" for domain in POSTFIX_DOMAINS
             for user in ("a", "b")]
UNKNOWN = "nobody@three.example.net"
RETRY, DROP = "r@retry.example.org", "d@drop.example.org"
REJECT_OK, REJECT_BAD = "ok@reject.example.org", "nobody@reject.example.org"

MX = [(domain, "mx.example.net", 10)
      for domain in POSTFIX_DOMAINS + ["example.com"]] + [
    ("retry.example.org", "mx-retry.example.org", 10),
    ("reject.example.org", "mx-reject.example.org", 10),
    ("drop.example.org", "mx-drop.example.org", 10),
]
HOSTS = [("mx.example.net", "127.0.0.2"),
         ("mx-retry.example.org", "127.0.0.3"),
         ("mx-reject.example.org", "127.0.0.4"),
         ("mx-drop.example.org", "127.0.0.5")]

PLAIN = (b"Your statement is ready.\r\n\r\n.A line that starts with a dot\r\n"
         b"Two spaces at the end  \r\n\tand a tab.\r\n")
UTF8 = ("Grüße aus Köln: 12,50 €\r\nЗдравствуйте, 你好\r\n").encode()
LARGE = b"".join(b"%07d " % n + b"0123456789abcdefghijklmnopqrstuvwxyz" * 2
                 + b"\r\n" for n in range(13000))


def message(n, rcpts, body=PLAIN, mime=b""):
    return (f"From: Bank <{SENDER}>\r\nTo: {', '.join(rcpts)}\r\n"
            f"Subject: delivery {n}\r\n"
            f"Date: {email.utils.formatdate()}\r\n"
            f"Message-ID: <d{n}.{time.time_ns()}@example.com>\r\n"
            ).encode() + mime + b"\r\n" + body


# (recipients, body, MIME fields, MAIL parameters) of each message.
SUBMISSIONS = [(rcpts, PLAIN, b"", []) for domain in POSTFIX_DOMAINS
               for rcpts in ([f"a@{domain}"], [f"b@{domain}"],
                             [f"a@{domain}", f"b@{domain}"])] + [
    (["a@one.example.net", "b@two.example.net", "a@three.example.net"],
     PLAIN, b"", []),
    (["b@one.example.net"], UTF8,
     b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
     b"Content-Transfer-Encoding: 8bit\r\n", ["BODY=8BITMIME"]),
    (["a@two.example.net"], LARGE, b"", []),
    (["a@three.example.net", UNKNOWN], PLAIN, b"", []),
    ([RETRY], PLAIN, b"", []),
    ([RETRY], PLAIN, b"", []),
    ([DROP], PLAIN, b"", []),
    ([DROP], PLAIN, b"", []),
    ([REJECT_OK, REJECT_BAD], PLAIN, b"", []),
    ([REJECT_BAD], PLAIN, b"", []),
]


def submit(server):
    """Every message of SUBMISSIONS over one session: [(queue id, rcpts,
    data)]."""
    sent = []
    with smtplib.SMTP("127.0.0.1", server.port, timeout=60) as smtp:
        smtp.ehlo()
        for n, (rcpts, body, mime, params) in enumerate(SUBMISSIONS):
            data = message(n, rcpts, body, mime)
            assert smtp.mail(SENDER, params)[0] == 250
            for rcpt in rcpts:
                assert smtp.rcpt(rcpt)[0] == 250
            code, reply = smtp.data(data)
            assert code == 250, reply
            queue_id = re.search(rb"queued as (\S+)", reply).group(1)
            sent.append((queue_id.decode(), rcpts, data))
    return sent


def expected_statuses(rcpt):
    """What the delivery lines of rcpt must say, attempt by attempt."""
    if rcpt in (RETRY, DROP):
        return ["deferred", "delivered"]
    if rcpt in (UNKNOWN, REJECT_BAD):
        return ["bounced"]
    return ["delivered"]


def fields(line):
    """The key=value pairs of a log line (quoted values unquoted)."""
    return {key: value[1:-1] if value.startswith('"') else value
            for key, value in re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)',
                                         line)}


def message_id(data):
    return re.search(rb"(?im)^Message-ID:\s*(\S+)", data).group(1)


def crlf(maildir_bytes):
    """A Maildir file (LF line endings) as it went over SMTP.  sealpost
    refuses bare CR and LF in a message, so every LF ended a CRLF line."""
    assert b"\r" not in maildir_bytes
    return maildir_bytes.replace(b"\n", b"\r\n")


POSTFIX_FIELDS = [b"Return-Path", b"X-Original-To", b"Delivered-To",
                  b"Received"]


def postfix_fields(raw):
    """({name: value} of the fields Postfix put on top, the rest)."""
    found = {}
    for name in POSTFIX_FIELDS:
        field = re.match(re.escape(name) + rb": (.*?)\r\n(?![ \t])", raw,
                         re.S)
        assert field, (name, raw[:500])
        found[name] = field.group(1)
        raw = raw[field.end():]
    return found, raw


def signing_server(tmp_path, config):
    """A sealpostd (not started yet) with an active RSA-2048 and Ed25519
    key for example.com."""
    server = Sealpostd(tmp_path, "dkim_domains = example.com\n" + config)
    for selector, kind in (("pr", ["--rsa", "2048"]),
                           ("pe", ["--ed25519"])):
        server.sealpost("dkim", "keygen", "example.com", "--selector",
                        selector, *kind)
        server.sealpost("dkim", "activate", "example.com", selector)
    return server


def test_delivery_to_postfix_and_scripted_receivers(tmp_path):
    port = free_port()
    reject = dict(rcpt=lambda address: "550 5.1.1 no such user here"
                  if address == REJECT_BAD else None)
    retry = dict(data=lambda envelope, seen:
                 "451 4.3.0 greylisted, try again later" if seen == 0
                 else None)
    drop = dict(data=lambda envelope, seen: "drop" if seen == 0 else None)
    with Dnsmasq({"ready.example.net": "ok"},
                 local_zones=["example.net", "example.org", "example.com"],
                 mx=MX, hosts=HOSTS) as dns, \
            Postfix("127.0.0.2", port, MAILBOXES + [SENDER]) as postfix, \
            Receiver("127.0.0.3", port, **retry) as retrying, \
            Receiver("127.0.0.4", port, **reject) as rejecting, \
            Receiver("127.0.0.5", port, **drop) as dropping:
        server = signing_server(tmp_path, f"resolver = {dns.server()}\n"
                                f"delivery_port = {port}\n"
                                "delivery_retry_schedule = 1s 2s\n"
                                "delivery_connect_timeout = 5s\n")
        with server:
            sent = submit(server)
            for_postfix = [(rcpt, data) for _, rcpts, data in sent
                           for rcpt in rcpts if rcpt in MAILBOXES]
            bounced = [queue_id for queue_id, rcpts, _ in sent
                       if UNKNOWN in rcpts or REJECT_BAD in rcpts]
            everything = len(for_postfix) + len(bounced)
            assert len(postfix.wait(everything)) == everything, \
                (server.log(), postfix.log())
            for receiver, count in ((retrying, 2), (dropping, 2),
                                    (rejecting, 1)):
                assert len(receiver.wait(count)) == count, server.log()
            assert wait_empty(server), server.log()
            # Every message Postfix took is delivered once its queue is
            # empty: what is in the Maildirs now is all there will be.
            assert wait_for(lambda: postfix.queued() == []), postfix.log()
            maildir = postfix.mail()
            log = server.log()
            published = records(server, "example.com")
        postfix_log = postfix.log()
    assert server.process.returncode == 0, log

    # Every message for Postfix in its Maildir once, bytes intact.
    want = {(rcpt, message_id(data)): data for rcpt, data in for_postfix}
    got = collections.Counter()
    delivered, bounces = [], []
    for mailbox, raw in maildir:
        added, rest = postfix_fields(crlf(raw))
        if mailbox == SENDER:
            assert added[b"Return-Path"] == b"<>"
            bounces.append(email.message_from_bytes(rest))
            continue
        assert added[b"Return-Path"] == f"<{SENDER}>".encode()
        assert added[b"Delivered-To"] == mailbox.encode()
        key = (mailbox, message_id(rest))
        assert key in want, (key, rest[:1000])
        assert strip_added(rest, want[key]) == want[key], rest[:3000]
        got[key] += 1
        delivered.append(crlf(raw))
    assert got == collections.Counter(want.keys()), postfix_log

    # One bounce to the sender per message with a refused recipient,
    # naming it with its status.
    assert len(bounces) == len(bounced), postfix_log
    failed = []
    for bounce in bounces:
        assert bounce.get_content_type() == "multipart/report"
        _, status, headers = bounce.get_payload()
        for recipient in status.get_payload()[1:]:
            assert recipient["Action"] == "failed"
            assert recipient["Status"] == "5.1.1"
            failed.append(recipient["Final-Recipient"])
        assert f"From: Bank <{SENDER}>" in headers.get_payload()
    assert sorted(failed) == sorted(
        f"rfc822; {rcpt}" for _, rcpts, _ in sent for rcpt in rcpts
        if rcpt in (UNKNOWN, REJECT_BAD))
    assert any(b"\xc3\xbc" in m for m in delivered)
    assert max(len(m) for m in delivered) > 1000000

    # The receivers' messages, once each, bytes intact.
    by_id = {message_id(data): (rcpts, data) for _, rcpts, data in sent}
    for receiver, rcpt, count in ((retrying, RETRY, 2), (dropping, DROP, 2),
                                  (rejecting, REJECT_OK, 1)):
        ids = [message_id(m["data"]) for m in receiver.messages]
        assert len(ids) == len(set(ids)) == count
        for arrived in receiver.messages:
            rcpts, data = by_id[message_id(arrived["data"])]
            assert arrived["sender"] == SENDER
            assert arrived["rcpts"] == [rcpt]
            assert strip_added(arrived["data"], data) == data
            delivered.append(arrived["data"])
    # The 451 and the drop each cost one more DATA per message.
    assert len(retrying.arrivals) == len(dropping.arrivals) == 4

    lookup = dnsfunc(published)
    # Each signature passes dkimpy: one RSA, one Ed25519 per message.
    for raw in delivered:
        algorithms = sorted(tags["a"] for tags in signature_tags(raw))
        assert algorithms == ["ed25519-sha256", "rsa-sha256"], raw[:2000]
        verifier = dkim.DKIM(raw)
        for index in range(2):
            assert verifier.verify(idx=index, dnsfunc=lookup), \
                (index, raw[:2000])

    # OpenDKIM judges each signature alone (every other one taken off).
    files = {}
    for number, raw in enumerate(delivered):
        for selector in ("pr", "pe"):
            files[f"{selector}-{number:02d}.eml"] = without_signatures(
                raw, keep=selector)
    for selector in ("pr", "pe"):
        files[f"changed-{selector}.eml"] = files[f"{selector}-00.eml"] + \
            b"One line more.\r\n"
    (tmp_path / "opendkim").mkdir()
    verdicts = opendkim_verdicts({"records": published}, files,
                                 tmp_path / "opendkim")
    for name, verdict in verdicts.items():
        if name.startswith("changed-"):
            assert verdict[0] != 0 and "Bad signature" in verdict[1], \
                verdict
        else:
            assert verdict == (0, ""), (name, verdict)

    # Each recipient's delivery lines, attempt by attempt.
    lines = collections.defaultdict(list)
    for line in deliveries(server):
        found = fields(line)
        if found["rcpt"] != f"<{SENDER}>":  # the bounces' own deliveries
            lines[(found["queue_id"], found["rcpt"][1:-1])].append(found)
    assert set(lines) == {(queue_id, rcpt) for queue_id, rcpts, _ in sent
                          for rcpt in rcpts}, log
    for (queue_id, rcpt), attempts in lines.items():
        assert [a["status"] for a in attempts] == expected_statuses(rcpt), \
            (rcpt, attempts)
        assert [int(a["attempt"]) for a in attempts] == \
            list(range(1, len(attempts) + 1)), attempts
        domain = rcpt.split("@")[1]
        if domain in POSTFIX_DOMAINS:
            assert all(a["relay"] == f"127.0.0.2:{port}" and
                       a["tls"] == "yes" for a in attempts), attempts
        if rcpt == RETRY:
            assert attempts[0]["code"] == "451", attempts
            assert "greylisted" in attempts[0]["reply"], attempts
        if rcpt in (UNKNOWN, REJECT_BAD):
            (bounce,) = attempts
            assert bounce["class"] == "invalid_recipient", bounce
            assert bounce["code"] == "550", bounce
            assert bounce["enhanced"] == "5.1.1", bounce
    unknown = [a for (_, rcpt), attempts in lines.items() if rcpt == UNKNOWN
               for a in attempts]
    assert "User unknown" in unknown[0]["reply"], unknown
