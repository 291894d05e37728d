"""DKIM signing at acceptance: what sealpostd queues is signed, and the
signatures pass dkimpy.

The keys are made and activated with the command line before sealpostd
starts (RSA-2048 and Ed25519 for example.com); their records come from
"sealpost dkim dns".  Then, over SMTP:

- a message from example.com is queued with two signatures, one per key,
  each passing dkimpy, with x= set and the body bytes untouched;
- a message from a domain without keys is queued unsigned;
- a message without From, or with two, is refused with 550 and nothing
  is queued;
- a key that queued messages carry cannot retire: "dkim status" says so
  until the message leaves the spool;
- the key store counts the signatures made and their latest x=.
"""
import json
import re
import smtplib
import time

import dkim
import pytest

from smtpd import Sealpostd, strip_added

BODY = (b"Dear customer,\r\n\r\nYour statement is attached.  Two spaces.\r\n"
        b"\tIndented line \r\n\r\n")


def records(server, domain):
    """The TXT records "dkim dns" prints (zone-file syntax, values split
    into quoted strings over several lines), as {name: value}."""
    text = server.sealpost("dkim", "dns", domain).stdout.decode()
    text = "\n".join(line for line in text.splitlines()
                     if not line.lstrip().startswith(";"))
    found = {}
    for name, strings in re.findall(
            r'(\S+)\s+\d+\s+IN\s+TXT\s+\(?((?:\s*"[^"]*")+)', text):
        found[name.rstrip(".").lower()] = "".join(
            re.findall(r'"([^"]*)"', strings))
    assert found, text
    return found


def dnsfunc(table):
    def lookup(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        value = table.get(name.lower().rstrip("."))
        return value.encode() if value is not None else None
    return lookup


def send(server, sender, header):
    message = header + b"\r\n" + BODY
    try:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as smtp:
            smtp.sendmail(sender, ["customer@example.org"], message)
        return 250, message
    except smtplib.SMTPDataError as refusal:
        return refusal.smtp_code, refusal.smtp_error


@pytest.fixture
def server(tmp_path):
    server = Sealpostd(tmp_path, "dkim_domains = example.com\n")
    for selector, kind in (("t1r", ["--rsa", "2048"]),
                           ("t1e", ["--ed25519"])):
        server.sealpost("dkim", "keygen", "example.com", "--selector",
                        selector, *kind)
        server.sealpost("dkim", "activate", "example.com", selector)
    with server:
        yield server


def signatures(raw):
    """The DKIM-Signature fields at the top of raw, unfolded."""
    return [re.sub(rb"\r\n[ \t]+", b" ", field) for field in
            re.findall(rb"^DKIM-Signature:.*?\r\n(?![ \t])", raw,
                       re.M | re.S)]


def test_message_is_signed_with_every_active_key(server):
    assert "dkim_signing domain=example.com keys=2" in server.log()
    header = (b"From: Bank <Statements@Example.COM>\r\n"
              b"To: customer@example.org\r\nSubject: Statement\r\n")
    code, sent = send(server, "statements@example.com", header)
    assert code == 250
    (entry,) = server.queue()
    raw = server.raw(entry["id"])

    fields = signatures(raw)
    assert len(fields) == 2, raw[:2000]
    algorithms = sorted(re.search(rb"a=([\w-]+)", f).group(1) for f in fields)
    assert algorithms == [b"ed25519-sha256", b"rsa-sha256"]
    for field in fields:
        assert b"d=example.com" in field
        assert re.search(rb"x=\d+", field), field
    lookup = dnsfunc(records(server, "example.com"))
    verifier = dkim.DKIM(raw)
    for index in range(2):
        assert verifier.verify(idx=index, dnsfunc=lookup), index

    # Signatures and the trace field are added; the client's bytes are not
    # touched.
    assert raw.endswith(sent)
    assert strip_added(raw).endswith(sent)


def test_other_domains_go_unsigned_and_broken_ones_are_refused(server):
    code, sent = send(server, "news@other.example",
                      b"From: news@other.example\r\nSubject: hi\r\n")
    assert code == 250
    (entry,) = server.queue()
    raw = server.raw(entry["id"])
    assert signatures(raw) == [] and raw.endswith(sent)

    code, reply = send(server, "a@example.com", b"Subject: no author\r\n")
    assert code == 550 and b"From" in reply, reply
    code, reply = send(server, "a@example.com",
                       b"From: a@example.com\r\nFrom: b@example.com\r\n")
    assert code == 550 and b"From" in reply, reply
    assert len(server.queue()) == 1


def test_key_in_a_queued_signature_does_not_retire(server):
    code, _ = send(server, "a@example.com", b"From: a@example.com\r\n")
    assert code == 250
    (entry,) = server.queue()

    # A new Ed25519 key takes over: the old one retires, but waits for the
    # message that carries its signature.
    server.sealpost("dkim", "keygen", "example.com", "--selector", "t2e",
                    "--ed25519")
    server.sealpost("dkim", "activate", "example.com", "t2e")
    server.sealpost("dkim", "rotate", "example.com")
    status = server.sealpost("dkim", "status", "example.com").stdout.decode()
    line = next(l for l in status.splitlines() if "t1e" in l)
    assert "retiring" in line and "1 queued message" in line, status

    server.sealpost("queue", "delete", entry["id"])
    status = server.sealpost("dkim", "status", "example.com").stdout.decode()
    line = next(l for l in status.splitlines() if "t1e" in l)
    assert "queued message" not in line, status


def test_store_counts_signatures_and_their_latest_expiry(server):
    for n in range(3):
        code, _ = send(server, "a@example.com", b"From: a@example.com\r\n")
        assert code == 250
    signed_by = time.time()
    server.stop()  # the tally is written at the latest on the way out

    out = server.sealpost("dkim", "status", "example.com", "--json").stdout
    keys = [json.loads(line) for line in out.decode().splitlines()]
    assert sorted(k["selector"] for k in keys) == ["t1e", "t1r"]
    expiry = 100 * 86400  # dkim_signature_expiry's default
    for key in keys:
        assert key["signatures"] == 3, key
        assert signed_by - 60 + expiry <= key["last_expiry"] \
            <= signed_by + expiry + 1, key


def test_key_limited_to_a_domain_cannot_author_for_another(server):
    """The domain a key is limited to binds the From field too: that is
    the domain the message is signed for."""
    key = server.apikey("tenant-a", "example.com")
    headers = {
        b"From: CEO <ceo@other.example>\r\n": 553,
        b"From: ceo@OTHER.EXAMPLE\r\n": 553,
        b"From: \"app@example.com\" <ceo@other.example>\r\n": 553,
        b"From: app@example.com, ceo@other.example\r\n": 550,
        b"From: Billing <app@Example.COM>\r\n": 250,
    }
    for header, expected in headers.items():
        with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as smtp:
            smtp.login("tenant-a", key)
            try:
                smtp.sendmail("app@example.com", ["customer@example.org"],
                              header + b"\r\n" + BODY)
                code = 250
            except smtplib.SMTPDataError as refusal:
                code = refusal.smtp_code
        assert code == expected, header
    (entry,) = server.queue()
    assert b"d=example.com" in server.raw(entry["id"])
