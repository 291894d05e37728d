"""The event stream of delivery: sealpostd commits each message's events
with the submission or outcome they describe, moves them to the event
store, and "sealpost events" reads them.

- one injection and one terminal event (delivery, bounce) per recipient,
  plus a delay for each 4xx; the bounce with its class and the reply;
  every event_id unique;
- the command's filters (type, recipient, queue id, since, limit) and its
  table; --follow prints events as they come;
- killed with SIGKILL just after delivering and started again, every event
  is in the store exactly once.
"""
import json
import subprocess
import time

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
