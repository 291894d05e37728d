"""sealpost's live DNS path: "dkim verify --resolver 127.0.0.1@PORT".

A real DNS server (dnsmasq, started here on a free loopback port) serves
the keys of tests/data/cases/keys/dns-all.txt and owns example.com, so a
name under it that is not served is NXDOMAIN.  sealpost's resolver
(libunbound forwarding to that server) must reach the same verdicts as the
--dns-file tables give: the BR-001 message passes, BR-011's key published
in SubjectPublicKeyInfo form is permerror/key_syntax, an unserved selector
is permerror/no_key from an NXDOMAIN answer, a refusing server is a
temperror, and RSA records split into several character-strings are
joined before the key is read.
"""
import base64
import json
import re
import subprocess

import pytest

from conftest import CASES, sealpost
from dnsserver import (Dnsmasq, RCODE_NOERROR, RCODE_NXDOMAIN, query_txt,
                       txt_strings)

DNS_ALL = CASES / "keys" / "dns-all.txt"
RSA1024 = CASES / "keys" / "rsa1024-rfc6376-appendixC.private.pem"
ZONE = "example.com"
# Pieces of the RFC 6376 key record, cut far below 255 octets on purpose.
SMALL_PIECE = 50


def table_records(path):
    """The TXT records of a --dns-file table, as name -> list of strings."""
    records = {}
    for line in path.read_text().splitlines():
        match = re.match(r'\s*(\S+)\s+TXT\s+(".*)$', line)
        if match:
            records[match.group(1)] = re.findall(r'"((?:[^"\\]|\\.)*)"',
                                                 match.group(2))
    return records


def spki_base64(pem):
    der = subprocess.run(["openssl", "pkey", "-in", str(pem), "-pubout",
                          "-outform", "DER"], capture_output=True,
                         check=True).stdout
    return base64.b64encode(der).decode()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """A fresh RSA-2048 key, whose record needs two strings."""
    work = tmp_path_factory.mktemp("resolver-keys")
    rsa = work / "rsa2048.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", str(rsa)],
                   check=True, capture_output=True)
    return {"rsa2048": rsa}


@pytest.fixture(scope="module")
def records(keys):
    served = table_records(DNS_ALL)
    assert set(served) >= {"ed1._domainkey.example.com",
                           "ed1spki._domainkey.example.com",
                           "rsa1._domainkey.example.com"}
    long_record = f"v=DKIM1; k=rsa; p={spki_base64(keys['rsa2048'])}"
    served["long._domainkey.example.com"] = long_record
    rsa1 = "".join(served["rsa1._domainkey.example.com"])
    served["pieces._domainkey.example.com"] = txt_strings(rsa1, SMALL_PIECE)
    return served


@pytest.fixture(scope="module")
def server(records):
    with Dnsmasq(records, local_zones=[ZONE]) as running:
        yield running


def verify(server, path):
    done = sealpost("dkim", "verify", "--json", "--resolver",
                    server.server(), path, timeout=120)
    assert done.stderr == b"", done.stderr.decode(errors="replace")
    report = json.loads(done.stdout)
    assert len(report["signatures"]) == 1, report
    return done.returncode, report["signatures"][0]


def sign(tmp, selector, key, name="signed.eml", domain=ZONE):
    message = (b"From: Alice <alice@example.com>\n"
               b"To: bob@example.net\n"
               b"Subject: resolver check\n"
               b"Date: Tue, 14 Nov 2023 22:13:20 +0000\n"
               b"\n"
               b"A body long enough to be worth hashing.\n")
    done = sealpost("dkim", "sign", "--fix-eol", "--domain", domain,
                    "--selector", selector, "--key", key, stdin=message)
    assert done.returncode == 0, done.stderr
    out = tmp / name
    out.write_bytes(done.stdout)
    return out


def test_server_says_nxdomain_for_unserved_names_in_the_zone(server):
    rcode, found = query_txt("absent._domainkey.example.com",
                             port=server.port)
    assert (rcode, found) == (RCODE_NXDOMAIN, [])
    rcode, found = query_txt("ed1._domainkey.example.com", port=server.port)
    assert rcode == RCODE_NOERROR and len(found) == 1


@pytest.mark.parametrize("selector,pieces", [("long", 2), ("pieces", 5)])
def test_server_sends_split_records_as_several_strings(server, records,
                                                       selector, pieces):
    name = f"{selector}._domainkey.example.com"
    rcode, found = query_txt(name, port=server.port)
    assert rcode == RCODE_NOERROR and len(found) == 1
    assert len(found[0]) == pieces
    assert b"".join(found[0]).decode() == "".join(txt_strings(
        records[name]))


def test_br001_passes_through_the_live_resolver(server):
    code, sig = verify(server, CASES / "BR-001" / "input.eml")
    assert (sig["status"], sig["reason"]) == ("pass", "ok"), sig
    assert code == 0
    # The key came from this server, not from anywhere else.
    assert "query[TXT] ed1._domainkey.example.com" in server.log()


def test_br001_with_a_changed_body_fails_through_the_live_resolver(server,
                                                                   tmp):
    raw = (CASES / "BR-001" / "input.eml").read_bytes()
    changed = tmp / "changed.eml"
    changed.write_bytes(raw.replace(b"Hello Bob", b"Hello Eve"))
    assert changed.read_bytes() != raw
    code, sig = verify(server, changed)
    assert (sig["status"], sig["reason"]) == ("fail", "body_hash"), sig
    assert code == 1


def test_br011_spki_ed25519_key_is_permerror_key_syntax(server):
    code, sig = verify(server, CASES / "BR-011" / "input-spki-published.eml")
    assert (sig["status"], sig["reason"]) == ("permerror", "key_syntax")
    assert "44 octets" in sig["detail"]
    assert code == 1


def test_unserved_selector_is_permerror_no_key_from_nxdomain(server, tmp):
    raw = (CASES / "BR-001" / "input.eml").read_bytes()
    assert b"s=ed1;" in raw
    unserved = tmp / "unserved.eml"
    unserved.write_bytes(raw.replace(b"s=ed1;", b"s=absent;", 1))
    code, sig = verify(server, unserved)
    assert (sig["status"], sig["reason"]) == ("permerror", "no_key"), sig
    assert "absent._domainkey.example.com" in sig["detail"]
    assert "NXDOMAIN" in sig["detail"]
    assert code == 1


def test_refused_query_is_temperror(server, keys, tmp):
    # example.net is not served: dnsmasq refuses, which is not an answer.
    signed = sign(tmp, "x", keys["rsa2048"], domain="example.net")
    code, sig = verify(server, signed)
    assert sig["status"] == "temperror", sig
    assert code == 3


@pytest.mark.parametrize("selector,key", [
    ("long", "rsa2048"),
    ("pieces", "rsa1024"),
])
def test_rsa_record_in_several_strings_is_joined(server, keys, tmp,
                                                 selector, key):
    path = keys["rsa2048"] if key == "rsa2048" else RSA1024
    signed = sign(tmp, selector, path)
    code, sig = verify(server, signed)
    assert (sig["status"], sig["reason"]) == ("pass", "ok"), sig
    assert sig["key_bits"] == (2048 if key == "rsa2048" else 1024)
    assert code == 0
