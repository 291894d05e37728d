"""The DKIM key lifecycle against a real authoritative DNS server (BIND).

Keys are made pending, become active only once their records are visible
in DNS and hold the key, retire while mail signed with them may still be
checked, and retire for good only when no queued message carries their
signature and their signatures have expired.  The command line takes the
clock from --time, so a rotation period of a day passes in one test; the
daemon is also watched doing a step on its own schedule.  Every state
change must leave a dkim_key event.
"""
import json
import os
import re
import signal
import sqlite3
import subprocess
import time

import dkim
import pytest

from conftest import SEALPOSTD, sealpost
from dnsauth import Bind

T0 = 1_796_300_000  # 2026-12-03, the fourth quarter
DAY = 86_400
MESSAGE = (b"From: Billing <billing@example.com>\r\n"
           b"To: customer@example.org\r\nSubject: Your statement\r\n"
           b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
           b"Message-ID: <s1@example.com>\r\n\r\nBalance: 10.00\r\n")


def zone_records(zone_text):
    """{name: value} from zone-file lines that `dkim dns` prints."""
    records = {}
    for match in re.finditer(r'^(\S+) \d+ IN TXT \((.*?)\)', zone_text,
                             re.M | re.S):
        strings = re.findall(r'"((?:[^"\\]|\\.)*)"', match.group(2))
        records[match.group(1).rstrip(".")] = "".join(strings)
    return records


@pytest.fixture
def site(tmp_path):
    """A BIND server for example.com and a configuration pointing at it."""
    with Bind({"example.com": {}}) as bind:
        config = tmp_path / "sealpost.conf"
        data = tmp_path / "data"
        config.write_text(
            f"data_dir = {data}\n"
            "dkim_domains = example.com\n"
            "dkim_rotation_period = 1d\n"
            "dkim_signature_expiry = 2d\n"
            "queue_max_lifetime = 1h\n"
            "http_listen =\n"
            f"resolver = {bind.server()}\n")
        yield bind, config, data


def run(config, *args, check=True):
    done = sealpost("--config", config, *args)
    if check:
        assert done.returncode == 0, done.stderr.decode()
    return done


def status(config):
    lines = run(config, "dkim", "status", "--json").stdout.splitlines()
    return {row["selector"]: row for row in map(json.loads, lines)}


def publish(bind, config, zone_text=None):
    """Publish what `dkim dns` prints, as an operator would."""
    text = zone_text or run(config, "dkim", "dns", "example.com").stdout
    for name, value in zone_records(text.decode()).items():
        bind.remove(name)
        bind.add_txt(name, value)


def events(data):
    return [json.loads(line)
            for line in (data / "events.jsonl").read_text().splitlines()]


def test_keygen_refuses_weak_keys_and_makes_2048(site):
    _, config, _ = site
    for bits in ("512", "768"):
        done = run(config, "dkim", "keygen", "example.com", "--rsa", bits,
                   check=False)
        assert done.returncode == 2
        assert b"RFC 8301" in done.stderr and bits.encode() in done.stderr
    run(config, "dkim", "keygen", "example.com", "--time", str(T0))
    keys = status(config)
    assert {(k["algorithm"], k["bits"]) for k in keys.values()} == \
        {("rsa", 2048), ("ed25519", 256)}
    assert set(keys) == {"sp2026q4r", "sp2026q4e"}
    assert all(k["state"] == "pending" for k in keys.values())


def test_signed_mail_passes_dkimpy_against_the_printed_record(site, tmp_path):
    bind, config, _ = site
    run(config, "dkim", "keygen", "example.com", "--time", str(T0))
    printed = run(config, "dkim", "dns", "example.com").stdout
    publish(bind, config, printed)
    run(config, "dkim", "rotate", "example.com", "--time", str(T0 + 60))
    signed = sealpost("--config", config, "dkim", "sign", "--domain",
                      "example.com", stdin=MESSAGE)
    assert signed.returncode == 0, signed.stderr

    records = {name.encode() + b".": value.encode()
               for name, value in zone_records(printed.decode()).items()}
    checked = 0
    for field in re.findall(rb"^DKIM-Signature:.*?(?=\r\n[^ \t])",
                            signed.stdout, re.M | re.S):
        selector = re.search(rb"s=([\w-]+)", field).group(1)
        # dkimpy verifies the first signature; put each one on top in turn.
        message = field + b"\r\n" + signed.stdout.replace(field + b"\r\n",
                                                         b"")
        assert dkim.verify(message, dnsfunc=lambda name, timeout=5:
                           records.get(name)), selector
        checked += 1
    assert checked == 2


def test_full_rotation(site, tmp_path):
    bind, config, data = site

    # Made, but not active until DNS shows the records.
    run(config, "dkim", "keygen", "example.com", "--time", str(T0))
    out = run(config, "dkim", "rotate", "example.com", "--time",
              str(T0 + 10)).stdout.decode()
    assert "stays pending" in out and "no record" in out
    assert {k["state"] for k in status(config).values()} == {"pending"}

    publish(bind, config)
    run(config, "dkim", "rotate", "example.com", "--time", str(T0 + 60))
    first = status(config)
    assert {k["state"] for k in first.values()} == {"active"}

    # Mail signed now carries the first keys' signatures.
    signed = sealpost("--config", config, "dkim", "sign", "--domain",
                      "example.com", "--time", str(T0 + 120), stdin=MESSAGE)
    assert signed.returncode == 0, signed.stderr
    mail = tmp_path / "m1.eml"
    mail.write_bytes(signed.stdout)
    expiry = T0 + 120 + 2 * DAY

    # A day later the rotation is due: new keys, under new selectors.
    out = run(config, "dkim", "rotate", "example.com", "--time",
              str(T0 + DAY + 100)).stdout.decode()
    assert out.count("new -> pending") == 2
    second = {s: k for s, k in status(config).items() if s not in first}
    assert len(second) == 2
    assert all(k["state"] == "pending" for k in second.values())
    assert all(k["state"] == "active"
               for s, k in status(config).items() if s in first)

    publish(bind, config)
    run(config, "dkim", "rotate", "example.com", "--time",
        str(T0 + DAY + 200))
    keys = status(config)
    assert all(keys[s]["state"] == "active" for s in second)
    assert all(keys[s]["state"] == "retiring" for s in first)

    # While its keys retire, the earlier mail still verifies through DNS.
    done = sealpost("dkim", "verify", "--json", "--resolver", bind.server(),
                    "--time", str(T0 + DAY + 300), mail)
    report = json.loads(done.stdout)
    assert [s["status"] for s in report["signatures"]] == ["pass", "pass"]

    # A queued message carrying an old signature holds the retirement.
    db = sqlite3.connect(data / "sealpost.db")
    old_id = db.execute("SELECT id FROM dkim_keys WHERE selector = ?",
                        ("sp2026q4r",)).fetchone()[0]
    db.execute("INSERT INTO queued_signatures (key_id, message) "
               "VALUES (?, 'Q1')", (old_id,))
    db.commit()
    out = run(config, "dkim", "rotate", "example.com", "--time",
              str(expiry + 10)).stdout.decode()
    assert "1 queued message carries its signature" in out
    assert status(config)["sp2026q4r"]["state"] == "retiring"
    # The other first key has nothing queued and its x= has passed.
    assert status(config)["sp2026q4e"]["state"] == "retired"
    db.execute("DELETE FROM queued_signatures")
    db.commit()
    db.close()
    out = run(config, "dkim", "rotate", "example.com", "--time",
              str(expiry + 20)).stdout.decode()
    assert "retiring -> retired" in out
    assert {status(config)[s]["state"] for s in first} == {"retired"}

    # Retired keys are offered as revocation records.
    zone = zone_records(run(config, "dkim", "dns", "example.com")
                        .stdout.decode())
    for selector in first:
        value = zone[f"{selector}._domainkey.example.com"]
        assert value.endswith("p=") and "k=" in value

    # Every move is an event of one shape.
    moves = [(e["selector"], e["previous_state"], e["state"])
             for e in events(data) if e["type"] == "dkim_key"]
    for selector in first:
        assert (selector, None, "pending") in moves
        assert (selector, "pending", "active") in moves
        assert (selector, "active", "retiring") in moves
        assert (selector, "retiring", "retired") in moves
    for event in events(data):
        assert set(event) >= {"event_id", "type", "timestamp", "domain",
                              "selector", "state", "reason"}
    assert len({e["event_id"] for e in events(data)}) == len(events(data))

    # The same events are in the event store, where "sealpost events"
    # reads them.
    stored = run(config, "events", "--json", "--type", "dkim_key").stdout
    assert [json.loads(line)["event_id"] for line in stored.splitlines()] \
        == [e["event_id"] for e in events(data) if e["type"] == "dkim_key"]


def test_retirement_waits_for_x_expiry(site):
    bind, config, _ = site
    run(config, "dkim", "keygen", "example.com", "--ed25519", "--time",
        str(T0))
    publish(bind, config)
    run(config, "dkim", "rotate", "example.com", "--time", str(T0 + 10))
    sealpost("--config", config, "dkim", "sign", "--domain", "example.com",
             "--time", str(T0 + 20), stdin=MESSAGE)
    run(config, "dkim", "rotate", "example.com", "--now", "--time",
        str(T0 + 30))
    publish(bind, config)
    run(config, "dkim", "rotate", "example.com", "--time", str(T0 + 40))
    out = run(config, "dkim", "rotate", "example.com", "--time",
              str(T0 + DAY)).stdout.decode()
    assert "stays retiring: its signatures stay valid until" in out
    assert status(config)["sp2026q4e"]["state"] == "retiring"


def test_mismatched_record_keeps_the_key_pending(site):
    bind, config, _ = site
    run(config, "dkim", "keygen", "example.com", "--ed25519", "--time",
        str(T0))
    bind.add_txt("sp2026q4e._domainkey.example.com",
                 "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
    out = run(config, "dkim", "rotate", "example.com", "--time",
              str(T0 + 10)).stdout.decode()
    assert "another key" in out
    assert status(config)["sp2026q4e"]["state"] == "pending"


def test_activate_by_hand_is_marked_unconfirmed(site):
    _, config, _ = site
    run(config, "dkim", "keygen", "example.com", "--ed25519")
    done = run(config, "dkim", "activate", "example.com", "sp2026q4e")
    assert b"warning" in done.stderr
    key = status(config)["sp2026q4e"]
    assert key["state"] == "active" and key["unconfirmed"] is True
    signed = sealpost("--config", config, "dkim", "sign", "--domain",
                      "example.com", stdin=MESSAGE)
    assert signed.returncode == 0
    assert b"signs unconfirmed" in signed.stderr


def test_short_expiry_is_refused_naming_both_values(tmp_path):
    config = tmp_path / "bad.conf"
    config.write_text(f"data_dir = {tmp_path}\n"
                      "dkim_rotation_period = 90d\n"
                      "dkim_signature_expiry = 30d\n")
    done = sealpost("--config", config, "dkim", "status")
    assert done.returncode == 2
    for words in (b"dkim_signature_expiry (30d)", b"dkim_rotation_period (90d)"):
        assert words in done.stderr
    daemon = subprocess.run([SEALPOSTD, "--config", str(config)],
                            capture_output=True, timeout=20)
    assert daemon.returncode == 2
    assert b"dkim_signature_expiry (30d)" in daemon.stderr
    assert b"dkim_rotation_period (90d)" in daemon.stderr


def test_export_prints_the_key_only_when_asked(site):
    _, config, data = site
    out = run(config, "dkim", "keygen", "example.com", "--ed25519").stdout
    assert b"PRIVATE" not in out
    pem = run(config, "dkim", "export", "example.com", "sp2026q4e").stdout
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    # Nothing of the private key is in the database in the clear.
    body = b"".join(pem.splitlines()[1:-1])
    raw = (data / "sealpost.db").read_bytes()
    assert body[:40] not in raw
    assert oct((data / "master.key").stat().st_mode & 0o777) == "0o600"


def test_rotation_publishes_by_dns_update(site):
    bind, config, _ = site
    with open(config, "a") as more:
        more.write(f"dns_update_server = {bind.server()}\n"
                   f"dns_update_tsig = {bind.tsig}\n")
    out = run(config, "dkim", "keygen", "example.com", "--ed25519",
              "--time", str(T0)).stdout.decode()
    assert "published sp2026q4e._domainkey.example.com" in out
    assert bind.txt_values("sp2026q4e._domainkey.example.com")

    # Published by sealpost itself: the next step sees it and activates.
    run(config, "dkim", "rotate", "example.com", "--time", str(T0 + 10))
    assert status(config)["sp2026q4e"]["state"] == "active"
    run(config, "dkim", "rotate", "example.com", "--now", "--time",
        str(T0 + 20))
    run(config, "dkim", "rotate", "example.com", "--time", str(T0 + 30))
    assert status(config)["sp2026q4e2"]["state"] == "active"
    out = run(config, "dkim", "rotate", "example.com", "--time",
              str(T0 + 3 * DAY)).stdout.decode()
    assert "retiring -> retired" in out
    (value,) = bind.txt_values("sp2026q4e._domainkey.example.com")
    assert value == "v=DKIM1; k=ed25519; p="


def test_wrong_tsig_leaves_the_key_waiting(site):
    bind, config, _ = site
    algorithm, name, _ = bind.tsig.split(":")
    with open(config, "a") as more:
        more.write(f"dns_update_server = {bind.server()}\n"
                   f"dns_update_tsig = {algorithm}:{name}:"
                   "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
    out = run(config, "dkim", "keygen", "example.com", "--ed25519").stdout
    assert b"could not publish" in out
    assert bind.txt_values("sp2026q4e._domainkey.example.com") == []
    assert status(config)["sp2026q4e"]["state"] == "pending"


def test_daemon_activates_on_its_own_schedule(site, tmp_path):
    bind, config, data = site
    with open(config, "a") as more:
        more.write("dkim_check_interval = 1s\n")
    run(config, "dkim", "keygen", "example.com", "--ed25519")
    proc = subprocess.Popen([SEALPOSTD, "--config", str(config)],
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = proc.stderr.readline().decode()
            if " ready " in line:
                break
        publish(bind, config)
        deadline = time.monotonic() + 20
        while status(config)["sp2026q4e"]["state"] != "active":
            assert time.monotonic() < deadline, "the daemon never activated"
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    log = proc.stderr.read().decode()
    assert '"state":"active"' in log
    assert any(e["state"] == "active" for e in events(data))
