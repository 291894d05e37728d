"""Real SMTP clients that sealpost did not write submit to sealpostd, and
what lands in the spool is byte for byte what they sent, but for the
fields sealpost adds (Received, and Message-ID and Date when missing).

Clients: swaks (plain, STARTTLS, AUTH PLAIN and LOGIN, PIPELINING),
Python's smtplib (STARTTLS, AUTH), Postfix's smtp-source (20 sessions)
and nodemailer (npm).  Debian 12's swaks (20201014) predates BDAT, and no
client in Debian 12 sends it; BDAT is tested byte by byte in the unit
tests of the protocol engine and with raw sockets in test_smtp_server.py.
"""
import email.message
import os
import re
import smtplib
import ssl
import subprocess

import pytest

from conftest import node_clients
from smtpd import Sealpostd, strip_added


def message_bytes(subject, attachment=b""):
    """A realistic message, CRLF, with an attachment when given."""
    msg = email.message.EmailMessage()
    msg["From"] = "Billing <billing@example.com>"
    msg["To"] = "Customer <customer@example.org>"
    msg["Subject"] = subject
    msg["Date"] = "Thu, 03 Dec 2026 10:00:00 +0000"
    msg["Message-ID"] = "<statement-1@example.com>"
    msg.set_content("Dear customer,\n\n.leading dot line\nBalance: 10.00\n")
    if attachment:
        msg.add_attachment(attachment, maintype="application",
                           subtype="octet-stream", filename="data.bin")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


@pytest.fixture
def server(tmp_path):
    with Sealpostd(tmp_path) as daemon:
        yield daemon


def queued_id(output):
    found = re.findall(rb"queued as (\S+)", output)
    assert found, output
    return found[-1].decode()


def swaks(server, message, *extra):
    """Send message with swaks; its stdout.  swaks ends the data with its
    own CRLF before the dot, so the message goes without its last one."""
    assert message.endswith(b"\r\n")
    done = subprocess.run(
        ["swaks", "--server", server.address, "--from", "billing@example.com",
         "--to", "customer@example.org", "--data", "-", "--timeout", "20",
         *extra], input=message[:-2], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    return done.stdout


@pytest.mark.parametrize("extra", [
    (),
    ("--tls",),
    ("--pipeline",),
    ("--tls", "--pipeline"),
], ids=["plain", "starttls", "pipelining", "starttls-pipelining"])
def test_swaks_delivers_byte_identical(server, extra):
    message = message_bytes("swaks " + " ".join(extra), os.urandom(3000))
    queue_id = queued_id(swaks(server, message, *extra))
    assert strip_added(server.raw(queue_id), message) == message


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_swaks_authenticates_with_an_api_key(server, mechanism):
    key = server.apikey("billing-app", "example.com")
    message = message_bytes("auth " + mechanism)
    out = swaks(server, message, "--tls", "--auth", mechanism, "--auth-user",
                "billing-app", "--auth-password", key)
    queue_id = queued_id(out)
    (entry,) = [m for m in server.queue() if m["id"] == queue_id]
    assert entry["identity"] == "billing-app"
    raw = server.raw(queue_id)
    assert b"with ESMTPSA id " + queue_id.encode() in raw
    assert strip_added(raw, message) == message


def test_wrong_api_key_is_refused(server):
    server.apikey("billing-app")
    done = subprocess.run(
        ["swaks", "--server", server.address, "--to", "c@example.org",
         "--tls", "--auth", "PLAIN", "--auth-user", "x", "--auth-password",
         "sp_wrong", "--timeout", "20"], capture_output=True, timeout=60)
    assert done.returncode != 0
    assert b"535" in done.stdout


def test_key_limited_to_domains_cannot_send_from_others(server):
    key = server.apikey("limited", "example.net")
    done = subprocess.run(
        ["swaks", "--server", server.address, "--from", "a@example.com",
         "--to", "c@example.org", "--tls", "--auth", "PLAIN",
         "--auth-user", "limited", "--auth-password", key, "--timeout", "20"],
        capture_output=True, timeout=60)
    assert done.returncode != 0
    assert b"553 5.7.1" in done.stdout


def test_smtplib_starttls_and_login(server):
    key = server.apikey("python-app")
    message = message_bytes("smtplib", os.urandom(70000))
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as client:
        client.ehlo("client.example.com")
        assert client.has_extn("starttls") and client.has_extn("size")
        client.starttls(context=context)
        client.ehlo("client.example.com")
        client.login("python-app", key)
        refused = client.sendmail("billing@example.com",
                                  ["a@example.org", "b@example.org"], message)
        assert refused == {}
    (entry,) = server.queue()
    assert entry["recipients"] == ["a@example.org", "b@example.org"]
    assert strip_added(server.raw(entry["id"]), message) == message


def test_fields_added_when_missing(server):
    bare = (b"From: a@example.com\r\nTo: b@example.org\r\nSubject: bare\r\n"
            b"\r\nno date, no id\r\n")
    with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as client:
        client.sendmail("a@example.com", ["b@example.org"], bare)
    (entry,) = server.queue()
    raw = server.raw(entry["id"])
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert re.search(rb"\r\nMessage-ID: <[^>]+@[^>]+>\r\n", head)
    assert re.search(rb"\r\nDate: \w{3}, \d\d \w{3} \d{4} ", head)
    assert strip_added(raw, bare) == bare


def test_smtp_source_twenty_sessions(server):
    done = subprocess.run(
        ["smtp-source", "-s", "20", "-m", "400", "-l", "4096", "-f",
         "load@example.com", "-t", "sink@example.org", server.address],
        capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    entries = server.queue()
    assert len(entries) == 400
    assert {e["sender"] for e in entries} == {"load@example.com"}
    assert len({e["id"] for e in entries}) == 400


@pytest.fixture(scope="module")
def nodemailer():
    """nodemailer, installed from the lock file into the build tree."""
    return node_clients()


NODE_SCRIPT = r"""
const nodemailer = require('nodemailer');
const MailComposer = require('nodemailer/lib/mail-composer');
const fs = require('fs');
const [port, user, pass, out] = process.argv.slice(2);
const mail = new MailComposer({
  from: 'Billing <billing@example.com>', to: 'customer@example.org',
  subject: 'Statement from nodemailer', text: 'Dear customer,\n.dot\n',
  html: '<p>Dear customer</p>',
  attachments: [{filename: 'statement.pdf', content: Buffer.alloc(50000, 7)}],
});
mail.compile().build((err, raw) => {
  if (err) throw err;
  fs.writeFileSync(out, raw);
  const transport = nodemailer.createTransport({
    host: '127.0.0.1', port: Number(port), secure: false, requireTLS: true,
    auth: {user, pass}, tls: {rejectUnauthorized: false},
  });
  transport.sendMail({envelope: {from: 'billing@example.com',
                                 to: ['customer@example.org']}, raw},
    (error, info) => {
      if (error) { console.error(error); process.exit(1); }
      console.log(info.response);
    });
});
"""


def test_nodemailer_starttls_auth(server, nodemailer, tmp_path):
    key = server.apikey("node-app")
    script = tmp_path / "send.js"
    script.write_text(NODE_SCRIPT)
    sent = tmp_path / "sent.eml"
    env = dict(os.environ, NODE_PATH=os.path.join(nodemailer, "node_modules"))
    done = subprocess.run(["node", str(script), str(server.port), "node-app",
                           key, str(sent)], capture_output=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    queue_id = queued_id(done.stdout)
    # The composed text part keeps the bare LFs it was given; nodemailer
    # turns every line end into CRLF on the wire, as SMTP requires.
    message = re.sub(rb"(?<!\r)\n", b"\r\n", sent.read_bytes())
    assert strip_added(server.raw(queue_id), message) == message
