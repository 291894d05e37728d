"""sealpostd's SMTP server on the wire: the smuggling probes of BR-013,
STARTTLS injection (BR-014), BDAT, the limits and their replies, and
hostile clients, while a well-behaved client keeps being served.
"""
import os
import pathlib
import random
import re
import resource
import socket
import ssl
import time

import pytest

from conftest import CASES
from smtpd import Sealpostd

PROBES = sorted(p.name[:-len(".commands")]
                for p in (CASES / "BR-013").glob("client-*.commands"))


class Client:
    """A raw SMTP client: lines out, replies in, nothing interpreted."""

    def __init__(self, port, source="127.0.0.1"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20,
                                             source_address=(source, 0))
        self.buffer = b""

    def reply(self):
        """One whole reply (all its lines)."""
        lines = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(b"".join(lines) + self.buffer)
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                return b"\r\n".join(lines)

    def send(self, data):
        self.sock.sendall(data)

    def command(self, line):
        self.send(line + b"\r\n")
        return self.reply()

    def no_more(self, wait=0.5):
        """Nothing further arrives (or the server closed)."""
        self.sock.settimeout(wait)
        try:
            more = self.sock.recv(65536)
        except socket.timeout:
            more = b""
        self.sock.settimeout(20)
        return self.buffer + more == b""

    def close(self):
        self.sock.close()


@pytest.fixture
def server(tmp_path):
    with Sealpostd(tmp_path) as daemon:
        yield daemon


def start(server, source="127.0.0.1"):
    client = Client(server.port, source)
    assert client.reply().startswith(b"220 ")
    assert client.command(b"EHLO client.example.com").startswith(b"250")
    return client


def transaction(client,
                body=b"From: a@example.com\r\nSubject: t\r\n\r\nhello\r\n"):
    assert client.command(b"MAIL FROM:<a@example.com>").startswith(b"250")
    assert client.command(b"RCPT TO:<b@example.org>").startswith(b"250")
    assert client.command(b"DATA").startswith(b"354")
    client.send(body + b".\r\n")
    return client.reply()


def run_probe(server, name):
    """Run one BR-013 probe as its harness says; the reply after data."""
    folder = CASES / "BR-013"
    client = Client(server.port)
    assert client.reply().startswith(b"220")
    for line in (folder / f"{name}.commands").read_bytes().splitlines():
        reply = client.command(line.rstrip(b"\r"))
        if line.startswith(b"DATA"):
            assert reply.startswith(b"354")
    client.send((folder / f"{name}.data").read_bytes())
    answer = client.reply()
    assert client.no_more(), "a second reply came for smuggled commands"
    client.send((folder / f"{name}.after").read_bytes())
    client.close()
    return answer


@pytest.mark.parametrize("name", PROBES)
def test_smuggling_probe_refused_by_default(server, name):
    answer = run_probe(server, name)
    assert answer.startswith(b"5"), answer
    assert server.queue() == []


@pytest.mark.parametrize("name", PROBES)
def test_smuggling_probe_normalized_makes_one_message(tmp_path, name):
    with Sealpostd(tmp_path, "smtp_bare_eol = normalize\n") as server:
        answer = run_probe(server, name)
        entries = server.queue()
        if answer.startswith(b"250"):
            (entry,) = entries
            assert entry["sender"] == "alice@example.com"
            raw = server.raw(entry["id"])
            # The smuggled commands stay content of the one message.
            assert b"MAIL FROM:<ceo@example.com>" in raw
            assert not re.search(rb"(?<!\r)\n|\r(?!\n)", raw)
        else:
            # A NUL, say, may still be refused; then nothing is stored.
            assert answer.startswith(b"5") and entries == []
        assert all(e["sender"] != "ceo@example.com" for e in entries)


def test_starttls_discards_pipelined_plaintext(server):
    client = start(server)
    client.send(b"STARTTLS\r\nMAIL FROM:<injected@example.net>\r\n")
    assert client.reply().startswith(b"220")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    tls = context.wrap_socket(client.sock)
    client.sock, client.buffer = tls, b""
    noop = client.command(b"NOOP")
    assert noop.startswith(b"250"), noop
    assert b"injected" not in noop
    # The session starts over: MAIL before a new EHLO is out of sequence.
    assert client.command(b"MAIL FROM:<a@example.com>").startswith(b"503")
    assert client.command(b"EHLO again.example.com").startswith(b"250")
    assert b"STARTTLS" not in client.command(b"EHLO again.example.com")
    assert transaction(client).startswith(b"250")
    client.close()
    assert all("injected" not in e["sender"] for e in server.queue())


def test_bdat_chunks(server):
    client = start(server)
    body = (b"From: a@example.com\r\nSubject: chunks\r\n\r\n"
            + (b"x" * 70 + b"\r\n") * 40 + b".not stuffed\r\n")
    assert client.command(b"MAIL FROM:<a@example.com>").startswith(b"250")
    assert client.command(b"RCPT TO:<b@example.org>").startswith(b"250")
    client.send(b"BDAT 1000\r\n" + body[:1000])
    assert client.reply().startswith(b"250")
    rest = body[1000:]
    client.send(b"BDAT %d LAST\r\n" % len(rest) + rest)
    reply = client.reply()
    assert reply.startswith(b"250 2.0.0"), reply
    queue_id = re.search(rb"queued as (\S+)", reply).group(1).decode()
    raw = server.raw(queue_id)
    assert raw.endswith(body)
    client.close()


def test_limits_answer_clearly(tmp_path):
    config = ("smtp_max_message = 64K\nsmtp_max_recipients = 3\n"
              "smtp_max_errors = 5\n")
    with Sealpostd(tmp_path, config) as server:
        client = start(server)
        assert client.command(b"MAIL FROM:<a@example.com> SIZE=999999") \
            .startswith(b"552")
        assert client.command(b"MAIL FROM:<a@example.com>").startswith(b"250")
        for n in range(3):
            assert client.command(b"RCPT TO:<r%d@example.org>" % n) \
                .startswith(b"250")
        assert client.command(b"RCPT TO:<r4@example.org>").startswith(b"452")
        assert client.command(b"DATA").startswith(b"354")
        client.send(b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 100
                    + b".\r\n")
        assert client.reply().startswith(b"552")
        assert client.command(b"X" * 2000).startswith(b"500")
        client.close()

        # The error that reaches the limit is answered, then a 421
        # follows unasked and the session closes.
        client = start(server)
        for _ in range(5):
            assert client.command(b"BOGUS").startswith(b"500")
        assert client.reply().startswith(b"421 4.7.0")
        assert client.no_more()
        client.close()
        assert server.queue() == []


def test_hostile_clients_do_not_stop_a_good_one(tmp_path):
    config = "smtp_max_per_client = 50\nsmtp_max_recipients = 100\n"
    with Sealpostd(tmp_path, config) as server:
        # Random bytes.
        noise = Client(server.port, "127.0.0.2")
        noise.reply()
        noise.send(os.urandom(200000))

        # 10,000 recipients in one pipelined write: 100 accepted, the rest
        # refused one by one, or the session dropped once errors pile up.
        many = start(server, "127.0.0.3")
        many.send(b"MAIL FROM:<a@example.com>\r\n" + b"".join(
            b"RCPT TO:<r%d@example.org>\r\n" % n for n in range(10000)))
        replies = []
        try:
            while len(replies) < 10001:
                replies.append(many.reply())
        except ConnectionError:
            pass
        assert sum(r.startswith(b"250") for r in replies) == 101
        assert all(r[:3] in (b"452", b"421") for r in replies[101:])

        # A broken TLS handshake.
        broken = start(server, "127.0.0.4")
        assert broken.command(b"STARTTLS").startswith(b"220")
        broken.send(os.urandom(5000))

        # A thousand idle connections, fifty from each of twenty
        # addresses (the per-client limit), then more from one of them:
        # those are refused at once with 421, and the server still serves.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), hard))
        idle = []
        for host in range(1, 21):
            for _ in range(50):
                conn = Client(server.port, f"127.0.1.{host}")
                assert conn.reply().startswith(b"220")
                idle.append(conn)
        refused = 0
        for _ in range(20):
            conn = Client(server.port, "127.0.1.7")
            refused += conn.reply().startswith(b"421")
            conn.close()
        assert refused == 20

        # A good client on its own address is served all along.
        good = start(server, "127.0.0.6")
        assert transaction(good).startswith(b"250 2.0.0")
        good.command(b"QUIT")
        for conn in idle + [noise, many, broken]:
            conn.close()
    assert "accepted" in server.log()


def test_out_of_descriptors_pauses_and_recovers(tmp_path):
    """At the open-file limit, accepting pauses, and resumes once
    descriptors are free: no spinning, no crash, nobody turned away."""
    with Sealpostd(tmp_path, open_files=96) as server:
        assert "open-file limit is below the connection limit" in server.log()
        held = []
        for _ in range(120):
            held.append(socket.create_connection(("127.0.0.1", server.port),
                                                 timeout=20))
        deadline = time.monotonic() + 10
        while "not accepting" not in server.log():
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
        for sock in held:
            sock.close()

        # The clients that waited in the backlog are gone; a new one is
        # served once the pause is over.
        good = start(server)
        assert transaction(good).startswith(b"250 2.0.0")
        good.command(b"QUIT")
        good.close()
        assert server.process.poll() is None


def test_configured_command_timeout_closes_idle_session(tmp_path):
    with Sealpostd(tmp_path, "smtp_command_timeout = 1s\n") as server:
        client = start(server)
        began = time.monotonic()
        assert client.reply().startswith(b"421 4.4.2")
        assert client.no_more()
        assert time.monotonic() - began < 10
        client.close()
        assert "timeout client=127.0.0.1" in server.log()


def test_queue_commands_show_envelope_first_and_help(server):
    client = start(server)
    assert transaction(client).startswith(b"250 2.0.0")
    client.close()
    (entry,) = server.queue()

    # Piped, the envelope still comes before the bytes.
    shown = server.sealpost("queue", "show", entry["id"]).stdout
    head, _, body = shown.partition(b"\n\n")
    assert entry["id"].encode() in head and body.startswith(b"Received: ")

    for command in ("list", "show", "delete"):
        done = server.sealpost("queue", command, "--help")
        assert done.stdout.startswith(b"usage: sealpost queue " +
                                      command.encode())
    assert server.sealpost("queue", "show", "not-an-id",
                           check=False).returncode == 2
    assert server.sealpost("queue", "delete", "1M8YAAAAAAAAA",
                           check=False).returncode == 1
    assert len(server.queue()) == 1
