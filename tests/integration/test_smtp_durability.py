"""Nothing sealpostd acknowledged is ever lost.

Crash test: under load (smtp-source in the background, and clients that
record every 250 they are given), sealpostd is killed with SIGKILL at
random moments, 100 times, and restarted; afterwards every acknowledged
message is in the spool, intact.  Full disk: on a small filesystem, the
spool stops taking messages (452 at MAIL) before the filesystem is full,
deleting messages makes room again, and when something else fills the
filesystem, deleting messages still works (the spool's reserve) and the
server refuses until space returns.
"""
import hashlib
import os
import random
import re
import smtplib
import sqlite3
import subprocess
import threading
import time

import pytest

from smtpd import Sealpostd, strip_added

KILLS = int(os.environ.get("SEALPOST_CRASH_KILLS", "100"))


class Sender(threading.Thread):
    """Sends numbered messages until stopped; remembers each one acked."""

    def __init__(self, port, name, acked, lock):
        super().__init__(daemon=True)
        self.port, self.name, self.acked, self.lock = port, name, acked, lock
        self.stopping = False
        self.number = 0

    def message(self):
        self.number += 1
        token = f"{self.name}-{self.number}"
        body = (f"From: load@example.com\r\nTo: sink@example.org\r\n"
                f"Subject: {token}\r\nMessage-ID: <{token}@example.com>\r\n"
                f"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n\r\n").encode()
        body += os.urandom(random.randint(100, 6000)).hex().encode() + b"\r\n"
        return token, body

    def run(self):
        while not self.stopping:
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=5) as smtp:
                    while not self.stopping:
                        token, body = self.message()
                        smtp.sendmail("load@example.com", ["sink@example.org"],
                                      body)
                        # Only a 250 counts: sendmail raises otherwise.
                        with self.lock:
                            self.acked[token] = hashlib.sha256(body).digest()
            except (OSError, smtplib.SMTPException):
                time.sleep(0.02)


def spool_contents(server):
    """{token: sha256 of the message as sent} for every queued message."""
    found = {}
    for entry in server.queue():
        raw = server.raw(entry["id"])
        token = re.search(rb"Subject: (\S+)", raw)
        if token is None:
            continue  # an smtp-source message
        found[token.group(1).decode()] = hashlib.sha256(
            strip_added(raw, raw.split(b"\r\n", 1)[1])).digest()
    return found


def test_sigkill_loses_nothing_acknowledged(tmp_path):
    acked, lock = {}, threading.Lock()
    server = Sealpostd(tmp_path).start()
    senders = [Sender(server.port, f"s{i}", acked, lock) for i in range(4)]
    for sender in senders:
        sender.start()
    load = subprocess.Popen(
        ["smtp-source", "-s", "10", "-m", "1000000", "-l", "4096", "-f",
         "bulk@example.com", "-t", "sink@example.org", server.address],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(KILLS):
            time.sleep(random.uniform(0.05, 0.4))
            server.kill()
            server.restart()
    finally:
        for sender in senders:
            sender.stopping = True
        load.kill()
        load.wait()
        for sender in senders:
            sender.join(timeout=10)
        server.stop()

    stored = spool_contents(server)
    with lock:
        lost = [t for t in acked if t not in stored]
        damaged = [t for t in acked if t in stored and stored[t] != acked[t]]
    print(f"kills={KILLS} acknowledged={len(acked)} "
          f"queued={len(server.queue())} lost={len(lost)} "
          f"damaged={len(damaged)}")
    assert len(acked) > KILLS, "too little load to mean anything"
    assert lost == [] and damaged == []


def send_one(port, size):
    body = (b"From: a@example.com\r\nSubject: fill\r\n\r\n"
            + (b"z" * 998 + b"\r\n") * (size // 1000))
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
            smtp.sendmail("a@example.com", ["b@example.org"], body)
        return 250
    except smtplib.SMTPResponseException as refusal:
        return refusal.smtp_code
    except smtplib.SMTPRecipientsRefused as refusal:
        return list(refusal.recipients.values())[0][0]
    except smtplib.SMTPSenderRefused as refusal:
        return refusal.smtp_code


def fill(path):
    """Write path until its filesystem is full.  Unbuffered, so that
    closing the file has nothing left to write and cannot fail."""
    with open(path, "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
        except OSError:
            pass


def test_full_disk_answers_4xx_then_recovers(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m",
                              "tmpfs", str(data)], capture_output=True)
    assert mounted.returncode == 0, (
        "this test mounts a small tmpfs and needs root: "
        + mounted.stderr.decode())
    try:
        with Sealpostd(tmp_path, "queue_min_free = 2M\n") as server:
            spool = data / "spool"
            assert (spool / "reserve").stat().st_size == 1 << 20

            # The threshold stops intake before the filesystem is full:
            # every refusal is the temporary one at MAIL, never a failed
            # write (451), and never a 250 for a message not kept.
            codes = [send_one(server.port, 1_000_000) for _ in range(40)]
            accepted = codes.count(250)
            assert 5 < accepted < 40, codes
            assert set(codes) == {250, 452}, codes
            assert len(server.queue()) == accepted
            assert "disk is full" not in server.log()

            # Deleting messages makes room inside the spool.
            for entry in server.queue()[: accepted // 2]:
                server.sealpost("queue", "delete", entry["id"])
            time.sleep(0.6)  # the free-space answer holds for 500 ms
            assert send_one(server.port, 1_000_000) == 250
            kept = len(server.queue())
            assert kept == accepted - accepted // 2 + 1

            # Something else fills the filesystem: refused, and deleting
            # still works, through the reserve.  The log is cut to nothing
            # first, so that the delete must grow it: a log with room in
            # its file would not need the reserve.
            # (The daemon's checkpointer may still be at work: wait for it.)
            deadline = time.monotonic() + 20
            with sqlite3.connect(spool / "spool.db") as db:
                while db.execute("PRAGMA wal_checkpoint(TRUNCATE)"
                                 ).fetchone()[0] != 0:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
            assert (spool / "spool.db-wal").stat().st_size == 0
            assert (spool / "reserve").exists()
            filler = data / "filler"
            fill(filler)
            time.sleep(0.6)
            assert send_one(server.port, 1_000_000) == 452
            victim = server.queue()[0]["id"]
            server.sealpost("queue", "delete", victim)
            assert not (spool / "reserve").exists()
            assert len(server.queue()) == kept - 1
            time.sleep(0.6)
            assert send_one(server.port, 1000) == 452

            # Space returns: the reserve is made again and mail flows.
            filler.unlink()
            time.sleep(0.6)
            assert send_one(server.port, 1_000_000) == 250
            assert (spool / "reserve").stat().st_size == 1 << 20
            assert len(server.queue()) == kept
        print(f"full disk: accepted={accepted} of 40, then recovered")
    finally:
        subprocess.run(["umount", "-l", str(data)], capture_output=True)
