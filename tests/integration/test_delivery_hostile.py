"""Delivery to hostile or broken receiving servers.

sealpostd delivers through a smart host that is a scripted raw-socket
server in this file: it answers SMTP by hand, so it can misbehave in ways
no real server library allows.  Whatever the server does, sealpostd runs
under AddressSanitizer and UBSan, and every test checks at the end that
it stopped by itself on SIGTERM, logged "stopped" and no sanitizer report
(a memory error or a leak at exit aborts it).  On top of that each test
asserts what the input deserves:

- a reply line of 1 MiB without CRLF, an endless multiline reply and
  10,000 EHLO extension lines end the connection within seconds (reply lines
  are capped at 4 KiB and replies at 8 KiB), with the reason in the log
  and in "sealpost queue list --json", and the recipient stays pending;
- a server dripping one octet a second is waited for, and when it then
  closes in the middle of a reply line the recipient is deferred; one
  that drips for longer than the whole reply may take (the
  delivery_reply_timeout, RFC 5321 4.5.3.2's times by default) is cut
  then, however often an octet comes;
- NUL, 8-bit octets and control characters in a reply: the client keeps
  printable ASCII only (each other octet becomes '?'), so the log, the
  spool's "queue list --json" (which lists the pending recipient) and
  "queue list" never carry them to the operator's terminal;
- reply codes that SMTP does not have: "2", "25x" and "250ok" are
  malformed and defer; "999", "600" and "199" are not replies SMTP knows
  and defer too (only 5yz bounces); "000" to MAIL neither delivers nor
  bounces, and "000" as the greeting is one failed attempt, not a burst of
  connections;
- a connection closed inside a multiline reply defers;
- replies that come before their command (an extra line behind the
  greeting) or a 250 to DATA where 354 belongs never count as delivered
  while the server has not received the message;
- STARTTLS offered and answered with garbage instead of a handshake: the
  TLS failure is logged and the message goes in plaintext on a new
  connection;
- "SIZE 1" refuses the message locally (552 5.3.4, no MAIL sent); SIZE
  with junk or an overflowing number is no limit;
- the final dot answered with nothing and the connection closed defers
  the recipient, with the whole message kept; a 250 to the final dot and
  then a dropped connection counts as delivered, once.

The settings are short where sealpostd allows it (delivery_retry_schedule
= 1s, delivery_connect_timeout = 2s, delivery_idle_time = 1s); bounce
messages are off so that only the message under test goes to the server.

Tests whose names say "never", "defers" and the like state what sealpostd
must do.
"""
import re
import socket
import threading
import time

import pytest

from dnsserver import free_port
from smtpd import Sealpostd
from test_delivery import deliveries, submit, wait_for

SANITIZER_WORDS = ("AddressSanitizer", "LeakSanitizer", "runtime error",
                   "Sanitizer")
CONFIG = ("delivery_retry_schedule = 1s\n"
          "delivery_connect_timeout = 2s\n"
          "delivery_idle_time = 1s\n"
          "delivery_bounce_messages = no\n")


class Peer:
    """One connection from sealpostd, seen from the server's side."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.received = b""
        self.opened = time.monotonic()
        self.closed_at = None  # when sealpostd closed its side

    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _fill(self, timeout):
        self.sock.settimeout(max(timeout, 0.001))
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return None
        except OSError:
            chunk = b""
        if not chunk and self.closed_at is None:
            self.closed_at = time.monotonic()
        self.received += chunk
        self.buf += chunk
        return chunk

    def line(self, timeout=15):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            if not self._fill(deadline - time.monotonic()):
                return None
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def data(self, timeout=15):
        """The data section up to and with its final dot."""
        deadline = time.monotonic() + timeout
        while b"\r\n.\r\n" not in b"\r\n" + self.buf:
            if not self._fill(deadline - time.monotonic()):
                return None
        data, self.buf = (b"\r\n" + self.buf).split(b"\r\n.\r\n", 1)
        return data[2:] + b"\r\n.\r\n"

    def wait_close(self, timeout=15):
        deadline = time.monotonic() + timeout
        while self.closed_at is None and time.monotonic() < deadline:
            self._fill(deadline - time.monotonic())
        return self.closed_at

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Server:
    """A raw-socket server on 127.0.0.1 running script(peer, n) for the
    n-th connection (from 0) in a thread of its own."""

    def __init__(self, script):
        self.script = script
        self.port = free_port()
        self.peers = []
        self.errors = []
        self.listener = socket.create_server(("127.0.0.1", self.port))

    def _accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            peer = Peer(sock)
            self.peers.append(peer)
            threading.Thread(target=self._run,
                             args=(peer, len(self.peers) - 1),
                             daemon=True).start()

    def _run(self, peer, n):
        try:
            self.script(peer, n)
        except Exception as error:  # the test reports it
            self.errors.append(repr(error))
        finally:
            peer.close()

    def __enter__(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.listener.close()


def greet(peer, ext=(b"PIPELINING",), banner=b"220 hostile ESMTP\r\n"):
    """The greeting, then EHLO answered with the extensions ext."""
    peer.send(banner)
    if peer.line() is None:
        return False
    lines = [b"hostile"] + list(ext)
    peer.send(b"".join(b"250-" + x + b"\r\n" for x in lines[:-1]) +
              b"250 " + lines[-1] + b"\r\n")
    return True


def transaction(peer, rcpt=lambda line: b"250 2.1.5 ok\r\n",
                dot=b"250 2.0.0 ok\r\n", mail=b"250 2.1.0 ok\r\n"):
    """Answer commands one by one up to the final dot (answered with dot,
    or not at all when dot is None); the data section, or None."""
    while True:
        line = peer.line()
        if line is None:
            return None
        verb = line[:4].upper()
        if verb == b"MAIL":
            peer.send(mail)
        elif verb == b"RCPT":
            peer.send(rcpt(line))
        elif verb == b"DATA":
            peer.send(b"354 go ahead\r\n")
            data = peer.data()
            if data is not None and dot is not None:
                peer.send(dot)
            return data
        elif verb == b"QUIT":
            peer.send(b"221 bye\r\n")
            return None
        else:
            peer.send(b"250 ok\r\n")


def normal(peer, n):
    """A well-behaved server."""
    if greet(peer):
        while transaction(peer) is not None:
            pass


class Run:
    """sealpostd with the server as its smart host, one message submitted
    for recipients; the log, queue and server are kept for the checks."""

    def __init__(self, tmp_path, script, rcpts=("r@example.org",),
                 config=""):
        self.server = Server(script)
        self.sealpostd = Sealpostd(
            tmp_path, f"delivery_smarthost = 127.0.0.1:{self.server.port}\n" +
            CONFIG + config)
        self.rcpts = list(rcpts)

    def __enter__(self):
        self.server.__enter__()
        self.sealpostd.start()
        self.submitted = time.monotonic()
        self.sent = submit(self.sealpostd, "a@example.com", self.rcpts, 1)
        return self

    def __exit__(self, *exc):
        returncode = self.sealpostd.stop()
        self.server.__exit__()
        if exc[0] is None:
            log = self.sealpostd.log()
            assert returncode == 0, log[-3000:]
            assert not any(word in log for word in SANITIZER_WORDS), \
                log[-3000:]
            assert "sealpostd: stopped" in log, log[-3000:]

    def log(self):
        return self.sealpostd.log()

    def lines(self, status):
        return deliveries(self.sealpostd, status)

    def wait_status(self, status, count=1, timeout=10):
        return wait_for(lambda: len(self.lines(status)) >= count, timeout)

    def pending(self):
        """{recipient: delivery} of the message still in the spool."""
        queue = self.sealpostd.queue()
        assert len(queue) == 1, queue
        return {d["address"]: d for d in queue[0]["deliveries"]
                if d["state"] == "pending"}


def assert_pending(run, reason):
    """The message is in the spool, every recipient pending after at least
    one attempt, with reason in its last reply."""
    pending = run.pending()
    assert sorted(pending) == sorted(run.rcpts), pending
    for delivery in pending.values():
        assert delivery["attempts"] >= 1, delivery
        assert reason in delivery["reply"], delivery


# ----------------------------------------------------------------------
# Too much: long lines, endless replies


def test_reply_line_of_a_megabyte_ends_the_connection(tmp_path):
    def script(peer, n):
        peer.send(b"220 " + b"x" * (1 << 20))
        peer.wait_close(10)

    with Run(tmp_path, script) as run:
        assert run.wait_status("deferred"), run.log()
        first = run.server.peers[0]
        assert wait_for(lambda: first.closed_at is not None, 5)
        assert first.closed_at - first.opened < 5
        assert "reply line that is too long" in run.lines("deferred")[0]
        assert_pending(run, "reply line that is too long")


def test_endless_multiline_reply_ends_the_connection(tmp_path):
    def script(peer, n):
        peer.send(b"220 hostile\r\n")
        peer.line()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and peer.send(b"250-x\r\n" * 200):
            pass
        peer.wait_close(2)

    with Run(tmp_path, script) as run:
        assert run.wait_status("deferred"), run.log()
        first = run.server.peers[0]
        assert wait_for(lambda: first.closed_at is not None, 5)
        assert first.closed_at - first.opened < 5
        assert_pending(run, "reply is too long")


def test_ten_thousand_extension_lines_end_the_connection(tmp_path):
    def script(peer, n):
        peer.send(b"220 hostile\r\n")
        peer.line()
        peer.send(b"".join(b"250-EXT%d\r\n" % i for i in range(10000)) +
                  b"250 END\r\n")
        peer.wait_close(5)

    with Run(tmp_path, script) as run:
        assert run.wait_status("deferred"), run.log()
        assert b"MAIL" not in run.server.peers[0].received
        assert_pending(run, "reply is too long")


def test_dripping_server_is_waited_for_then_deferred(tmp_path):
    drip = b"220 slow"

    def script(peer, n):
        if n == 0:
            for octet in drip:
                if not peer.send(bytes([octet])):
                    return
                time.sleep(1)
            # closed in the middle of the greeting's line
        else:
            peer.wait_close(5)

    with Run(tmp_path, script) as run:
        assert run.wait_status("deferred", timeout=len(drip) + 10), run.log()
        first = run.server.peers[0]
        # sealpostd listened to the end, and gave up only when it closed
        assert first.received == b""
        assert time.monotonic() - first.opened >= len(drip) - 1
        assert "connection closed by the server" in \
            run.lines("deferred")[0], run.log()
        assert_pending(run, "connection closed by the server")


def test_dripping_server_is_cut_at_the_reply_deadline(tmp_path):
    """Every octet restarts the read timeout, not the deadline of the
    whole reply (delivery_reply_timeout here, RFC 5321's by default)."""
    def script(peer, n):
        if n == 0:
            for _ in range(30):
                if not peer.send(b"2"):
                    return
                time.sleep(0.5)
        else:
            peer.wait_close(5)

    with Run(tmp_path, script, config="delivery_reply_timeout = 3s\n") as run:
        assert run.wait_status("deferred", timeout=12), run.log()
        # cut after about 3 s, while the server meant to drip for 15
        taken = time.monotonic() - run.server.peers[0].opened
        assert 2.5 <= taken < 8, taken
        assert_pending(run, "no whole reply in time")


# ----------------------------------------------------------------------
# Garbage in replies


def eight_bit_script(peer, n):
    def rcpt(line):
        if b"<soft@" in line:
            return b"451 4.3.0 try \xff\xfe\x1b[31mlater\x07 \xc3\xa9\r\n"
        return b"550 5.1.1 no\x00 such \x1b]0;owned\x07user\r\n"

    if greet(peer):
        transaction(peer, rcpt=rcpt)
        peer.wait_close(5)


def test_nul_and_eight_bit_replies_are_logged_escaped(tmp_path):
    with Run(tmp_path, eight_bit_script,
             rcpts=("soft@example.org", "hard@example.org")) as run:
        assert run.wait_status("deferred"), run.log()
        assert run.wait_status("bounced"), run.log()
        log = run.log()
        (bounced,) = run.lines("bounced")
        # every octet outside printable ASCII, NUL included, is a '?'
        assert "hard@example.org" in bounced and \
            'reply="no? such ?]0;owned?user"' in bounced
        assert "\x1b" not in log and "\x07" not in log and "\x00" not in log
        assert 'reply="try ???[31mlater? ??"' in run.lines("deferred")[0]


def test_eight_bit_reply_never_hides_the_recipient_from_json(tmp_path):
    with Run(tmp_path, eight_bit_script,
             rcpts=("soft@example.org", "hard@example.org")) as run:
        assert run.wait_status("deferred"), run.log()
        queue = run.sealpostd.queue()
        assert len(queue) == 1, queue
        listed = [d["address"] for d in queue[0]["deliveries"]]
        assert "soft@example.org" in listed, queue


def test_reply_never_writes_control_characters_to_the_terminal(tmp_path):
    with Run(tmp_path, eight_bit_script,
             rcpts=("soft@example.org", "hard@example.org")) as run:
        assert run.wait_status("deferred"), run.log()
        shown = run.sealpostd.sealpost("queue", "list").stdout
        assert b"soft@example.org" in shown, shown
        assert b"\x1b" not in shown and b"\x07" not in shown, shown


# ----------------------------------------------------------------------
# Reply codes SMTP does not have


def rcpt_code(code):
    def script(peer, n):
        if greet(peer):
            transaction(peer, rcpt=lambda line: code + b"\r\n")
            peer.wait_close(3)
    return script


@pytest.mark.parametrize("code", [b"2", b"25x ok", b"250ok"])
def test_malformed_reply_code_defers(tmp_path, code):
    with Run(tmp_path, rcpt_code(code)) as run:
        assert run.wait_status("deferred"), run.log()
        assert "malformed reply" in run.lines("deferred")[0]
        assert not run.lines("delivered") and not run.lines("bounced")
        assert_pending(run, "malformed reply")


@pytest.mark.parametrize("code", [b"999 what", b"600 what", b"199 what"])
def test_reply_code_outside_smtp_defers_never_bounces(tmp_path, code):
    with Run(tmp_path, rcpt_code(code)) as run:
        assert wait_for(lambda: run.lines("deferred") or run.lines("bounced")
                        or run.lines("delivered"), 10), run.log()
        assert not run.lines("bounced"), run.log()
        assert not run.lines("delivered"), run.log()
        assert run.pending(), run.log()


def test_mail_answered_000_is_never_delivered(tmp_path):
    def script(peer, n):
        if greet(peer):  # with PIPELINING
            data = transaction(peer, mail=b"000 what\r\n")
            peer.got = data
            peer.wait_close(3)

    with Run(tmp_path, script) as run:
        assert wait_for(lambda: run.lines("deferred") or run.lines("bounced")
                        or run.lines("delivered"), 10), run.log()
        # what the server answered to the final dot was for an empty data
        # section: the message itself never went out
        assert not run.lines("delivered"), run.log()
        assert run.pending(), run.log()


def test_greeting_000_is_one_attempt_not_a_burst(tmp_path):
    def script(peer, n):
        peer.send(b"000 what\r\n")
        peer.wait_close(2)

    with Run(tmp_path, script) as run:
        time.sleep(3)
        opened = len(run.server.peers)
        # one connection a try, a try a second at most
        assert opened <= 6, f"{opened} connections in 3 s"
        assert_pending(run, "reply code outside SMTP")


# ----------------------------------------------------------------------
# Connections closed or replies out of turn


def test_close_inside_a_multiline_reply_defers(tmp_path):
    def script(peer, n):
        peer.send(b"220 hostile\r\n")
        peer.line()
        peer.send(b"250-hostile\r\n250-PIPELINING\r\n")
        time.sleep(0.2)

    with Run(tmp_path, script) as run:
        assert run.wait_status("deferred"), run.log()
        assert not run.lines("delivered")
        assert_pending(run, "connection closed by the server")


def test_reply_before_the_command_never_counts_as_delivered(tmp_path):
    def script(peer, n):
        # a second reply behind the greeting, before EHLO was said
        peer.send(b"220 hostile\r\n250 early\r\n")
        peer.line()
        peer.send(b"250-hostile\r\n250 8BITMIME\r\n")
        peer.got = transaction(peer)
        peer.wait_close(5)

    with Run(tmp_path, script) as run:
        assert wait_for(lambda: run.lines("deferred") or run.lines("bounced")
                        or run.lines("delivered"), 10), run.log()
        got = getattr(run.server.peers[0], "got", None)
        if run.lines("delivered"):
            assert got is not None and b"Subject: test 1" in got, \
                (run.log(), run.server.peers[0].received)
        else:
            assert run.pending(), run.log()


def test_data_answered_250_never_counts_as_delivered(tmp_path):
    def script(peer, n):
        greet(peer, ext=(b"8BITMIME",))
        while True:
            line = peer.line()
            if line is None:
                return
            if line[:4].upper() == b"DATA":
                peer.send(b"250 2.0.0 sure\r\n")
            elif line[:4].upper() == b"QUIT":
                peer.send(b"221 bye\r\n")
                return
            else:
                peer.send(b"250 ok\r\n")

    with Run(tmp_path, script) as run:
        assert wait_for(lambda: run.lines("deferred") or run.lines("bounced")
                        or run.lines("delivered"), 10), run.log()
        assert b"Subject: test 1" not in run.server.peers[0].received
        assert not run.lines("delivered"), run.log()
        assert run.pending(), run.log()


# ----------------------------------------------------------------------
# STARTTLS and SIZE


def test_starttls_answered_with_garbage_goes_on_in_plaintext(tmp_path):
    def script(peer, n):
        if not greet(peer, ext=(b"STARTTLS", b"PIPELINING")):
            return
        if n == 0:
            line = peer.line()
            assert line == b"STARTTLS\r\n", line
            peer.send(b"220 go ahead\r\n" + b"this is not TLS at all\r\n" * 8)
            peer.wait_close(5)
        else:
            peer.got = transaction(peer)
            peer.wait_close(3)

    with Run(tmp_path, script) as run:
        assert run.wait_status("delivered"), run.log()
        log = run.log()
        assert re.search(r"result=tls_failed error=\"[^\"]*TLS[^\"]*\" "
                         r"next=plaintext", log), log
        second = run.server.peers[1]
        assert b"STARTTLS" not in second.received
        assert b"Subject: test 1" in second.got
        assert wait_for(lambda: run.sealpostd.queue() == [], 5)


def test_size_one_refuses_the_message_without_sending_it(tmp_path):
    def script(peer, n):
        if greet(peer, ext=(b"SIZE 1", b"PIPELINING")):
            transaction(peer)
            peer.wait_close(3)

    with Run(tmp_path, script) as run:
        assert run.wait_status("bounced"), run.log()
        (bounced,) = run.lines("bounced")
        assert "code=552" in bounced and "enhanced=5.3.4" in bounced
        assert "class=too_large" in bounced
        assert b"MAIL" not in run.server.peers[0].received
        assert wait_for(lambda: run.sealpostd.queue() == [], 5)


@pytest.mark.parametrize("size", [b"SIZE abc", b"SIZE -5",
                                  b"SIZE 99999999999999999999999999"])
def test_size_with_junk_is_no_limit(tmp_path, size):
    def script(peer, n):
        if greet(peer, ext=(size, b"PIPELINING")):
            peer.got = transaction(peer)
            peer.wait_close(3)

    with Run(tmp_path, script) as run:
        assert run.wait_status("delivered"), run.log()
        assert b"Subject: test 1" in run.server.peers[0].got


# ----------------------------------------------------------------------
# The end of the data


def test_final_dot_unanswered_then_closed_defers(tmp_path):
    def script(peer, n):
        if greet(peer):
            peer.got = transaction(peer, dot=None)

    with Run(tmp_path, script) as run:
        assert run.wait_status("deferred"), run.log()
        assert b"Subject: test 1" in run.server.peers[0].got
        assert not run.lines("delivered")
        assert_pending(run, "connection closed by the server")
        stored = run.sealpostd.raw(run.sealpostd.queue()[0]["id"])
        assert stored.endswith(run.sent), stored[-300:]


def test_dropped_after_the_final_250_counts_as_delivered(tmp_path):
    def script(peer, n):
        if greet(peer):
            peer.got = transaction(peer)  # then closes at once

    with Run(tmp_path, script) as run:
        assert run.wait_status("delivered"), run.log()
        assert wait_for(lambda: run.sealpostd.queue() == [], 5)
        time.sleep(1.5)  # a wrong retry would come by now
        assert len(run.server.peers) == 1
        assert len(run.lines("delivered")) == 1
        assert not run.lines("deferred")
