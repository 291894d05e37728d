"""A full spool drains with connections reused.

10,000 messages for 50 domains are taken in while delivery is held,
then sealpostd restarts with delivery on: every queued recipient becomes
a job from the spool, and the messages go to ten aiosmtpd receivers (five
domains each, on loopback addresses).  Every message arrives exactly
once, and the receivers count the connections: no more than the messages
divided by the per-connection limit, plus one per retry (there are none
here).  The time the drain took is printed for the record; the speed
itself is measured by bench/, not here.
"""
import re
import smtplib
import threading
import time

from dnsserver import free_port
from receiver import Receiver
from smtpd import Sealpostd
from test_delivery import deliveries, message, wait_empty, wait_for

MESSAGES = 10000
DOMAINS = [f"d{n}.example" for n in range(50)]
RECEIVERS = [f"127.0.0.{n + 2}" for n in range(10)]
PER_CONNECTION = 100
THREADS = 8


def submit_part(port, part, sent, failures):
    """Messages part, part + THREADS, ... over one session."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
            for n in range(part, MESSAGES, THREADS):
                rcpt = f"u{n}@{DOMAINS[n % len(DOMAINS)]}"
                smtp.sendmail("s@example.com", [rcpt],
                              message("s@example.com", rcpt, n))
                sent[n] = rcpt
    except Exception as error:  # reported by the test thread
        failures.append(repr(error))


def test_ten_thousand_messages_drain_over_reused_connections(tmp_path):
    port = free_port()
    routes = " ".join(f"{d}=[{RECEIVERS[n % len(RECEIVERS)]}]:{port}"
                      for n, d in enumerate(DOMAINS))
    receivers = [Receiver(address, port) for address in RECEIVERS]
    for receiver in receivers:
        receiver.__enter__()
    try:
        server = Sealpostd(
            tmp_path, "delivery_hold = yes\n"
            f"delivery_routes = {routes}\n"
            f"delivery_messages_per_connection = {PER_CONNECTION}\n"
            "delivery_retry_schedule = 1s\n")
        with server:
            sent, failures = [None] * MESSAGES, []
            threads = [threading.Thread(target=submit_part,
                                        args=(server.port, part, sent,
                                              failures))
                       for part in range(THREADS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert failures == [], failures
            assert len(server.queue()) == MESSAGES

            # Delivery on: everything comes from the spool at start.
            server.stop()
            text = server.config_path.read_text()
            server.config_path.write_text(
                text.replace("delivery_hold = yes", "delivery_hold = no"))
            started = time.monotonic()
            server.start()
            assert wait_for(lambda: sum(len(r.messages) for r in receivers)
                            >= MESSAGES, 600, 0.5), server.log()[-3000:]
            drained = time.monotonic() - started
            assert wait_empty(server, 60)
            log = server.log()
    finally:
        for receiver in receivers:
            receiver.__exit__()

    assert re.search(rf"delivery jobs={MESSAGES} ", log), log[:2000]
    arrived = [r for receiver in receivers for m in receiver.messages
               for r in m["rcpts"]]
    assert sorted(arrived) == sorted(sent)  # each exactly once
    retries = len(deliveries(server, "deferred"))
    opened = sum(receiver.opened for receiver in receivers)
    assert opened <= MESSAGES // PER_CONNECTION + retries, \
        (opened, retries, [r.opened for r in receivers])
    print(f"\n{MESSAGES} messages to {len(DOMAINS)} domains drained in "
          f"{drained:.1f} s over {opened} connections ({retries} retries)")
