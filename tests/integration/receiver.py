"""A scripted SMTP receiver (aiosmtpd) that sealpost delivers to in tests.

  Receiver(address, port, rcpt=None, data=None, tls=None)
      A context manager: aiosmtpd listening on address:port in a thread of
      the test process.  Without a script it accepts everything.  tls, an
      ssl.SSLContext, makes it offer STARTTLS with that context.
        rcpt(address) -> None to accept, or a reply such as
                         "550 5.1.1 no such user"
        data(envelope, seen) -> None to accept, a reply such as
                         "451 4.3.0 try later", or "drop" to close the
                         connection without answering the final dot;
                         seen counts the earlier arrivals of the same
                         message (by its Message-ID), so "refuse the first
                         time" is `lambda env, seen: "451 ..." if seen == 0
                         else None`.

  Attributes, safe to read while it runs:
      messages     [dict(time, session, sender, rcpts, data, tls, peer)]
                   accepted; sender "<>" for the null reverse-path; tls:
                   the session ran over TLS; peer: the client's address
      arrivals     every DATA seen, accepted or not: [dict(time, ...)]
      opened       connections opened so far
      sessions     distinct connections that carried a MAIL command
      most_at_once the most connections open at the same time
      wait(count, timeout) waits until count messages were accepted
"""
import re
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


class _CountingSMTP(SMTP):
    """aiosmtpd's server, telling the receiver of opens and closes."""

    def __init__(self, receiver, *args, **kwargs):
        self._receiver = receiver
        super().__init__(*args, **kwargs)

    def connection_made(self, transport):
        self.serial = self._receiver._opened()
        super().connection_made(transport)

    def connection_lost(self, exc):
        self._receiver._closed(self.serial)
        super().connection_lost(exc)


class _Controller(Controller):
    def __init__(self, receiver, *args, **kwargs):
        self._receiver = receiver
        super().__init__(*args, **kwargs)

    def factory(self):
        return _CountingSMTP(self._receiver, self.handler,
                             **self.SMTP_kwargs)


def message_id(data):
    found = re.search(rb"^Message-ID:\s*(\S+)", data, re.M | re.I)
    return found.group(1) if found else data[-200:]


class Receiver:
    def __init__(self, address, port, rcpt=None, data=None, tls=None):
        self.address, self.port = address, port
        self.rcpt_script, self.data_script = rcpt, data
        self.messages, self.arrivals = [], []
        self.opened, self.open_now, self.most_at_once = 0, 0, 0
        self._sessions, self._seen = set(), {}
        self._counting = False  # not the controller's own test connection
        self._lock = threading.Lock()
        self._controller = _Controller(
            self, self, hostname=address, port=port,
            data_size_limit=0, tls_context=tls,
            ready_timeout=10)

    # Connection accounting, from the server's loop thread.  A connection
    # gets a serial number (None for the one aiosmtpd's controller opens
    # to see that the server runs, which is not counted).
    def _opened(self):
        with self._lock:
            if not self._counting:
                return None
            self.opened += 1
            self.open_now += 1
            self.most_at_once = max(self.most_at_once, self.open_now)
            return self.opened

    def _closed(self, serial):
        with self._lock:
            if serial is not None:
                self.open_now -= 1

    @property
    def sessions(self):
        with self._lock:
            return len(self._sessions)

    # aiosmtpd's handler hooks.
    async def handle_MAIL(self, server, session, envelope, address, options):
        with self._lock:
            self._sessions.add(server.serial)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        reply = self.rcpt_script(address) if self.rcpt_script else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content
        key = message_id(data)
        with self._lock:
            seen = self._seen.get(key, 0)
            self._seen[key] = seen + 1
            record = dict(time=time.monotonic(), session=server.serial,
                          sender=envelope.mail_from,
                          rcpts=list(envelope.rcpt_tos), data=data,
                          tls=session.ssl is not None, peer=session.peer[0])
            self.arrivals.append(record)
        reply = self.data_script(envelope, seen) if self.data_script else None
        if reply == "drop":
            server.transport.abort()
            return "451 4.3.0 dropped"
        if reply:
            return reply
        with self._lock:
            self.messages.append(record)
        return "250 2.0.0 OK delivered"

    def wait(self, count, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return self.messages
            time.sleep(0.05)
        return self.messages

    def __enter__(self):
        self._controller.start()
        with self._lock:
            self._counting = True
        return self

    def __exit__(self, *exc):
        self._controller.stop()
