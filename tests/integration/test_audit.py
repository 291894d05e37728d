"""sealpost dkim audit and sealpost dmarc record, through a real DNS server.

dnsmasq (the Dnsmasq fixture, on a free loopback port) serves every TXT
record of the mail-dkim corpus (tests/data/corpus/dkim/mail-dkim/dns.txt)
and of tests/data/cases/keys/dns-all.txt, plus records added here: keys at
selectors third-party senders use, DMARC records good and bad, a legacy
DomainKeys policy, and keys at selectors of a store that "sealpost dkim
keygen" fills.  Each audited domain is a dnsmasq --local zone, so a
selector that is not served is NXDOMAIN.

Every fault of the corpus must come out as its own finding, with the
right code and severity: 512- and 768-bit keys, t=y, revoked, v=DKIM3, a
tag without '=' (testbad2), an unknown k= (testbad3), s=chat (testbad4),
h=md5:sha1 (test2), an Ed25519 key in SubjectPublicKeyInfo form, and a
published key that is not the one in sealpost's store.  A clean domain
must pass with status 0, so the status 1 of the others means something.
"""
import base64
import json
import os
import re
import subprocess

import pytest

from conftest import CASES, CORPUS, SEALPOST, sealpost
from dnsserver import Dnsmasq

CORPUS_DNS = CORPUS / "mail-dkim" / "dns.txt"
DNS_ALL = CASES / "keys" / "dns-all.txt"

ZONES = ["messiah.edu", "vmt2.cis.att.net", "wander.science", "yahoo.com",
         "gmail.com", "ijs.si", "example.org", "example.com", "example.net"]

# The selectors of the corpus's messiah.edu that carry a fault.
MESSIAH = ["test1", "test2", "test3", "testbad1", "testbad2", "testbad3",
           "testbad4", "testrevoked", "nonexistent"]


def table_records(path):
    """TXT lines of a --dns-file table, as name -> list of strings."""
    records = {}
    for line in path.read_text().splitlines():
        match = re.match(r'\s*(\S+)\s+TXT\s+(".*)$', line)
        if match:
            records[match.group(1)] = re.findall(r'"((?:[^"\\]|\\.)*)"',
                                                 match.group(2))
    return records


def zone_value(text):
    """The TXT value of a record printed in zone-file syntax."""
    return "".join(re.findall(r'"([^"]*)"', text))


def rsa_key(work, name, bits=2048):
    path = work / f"{name}.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    f"rsa_keygen_bits:{bits}", "-out", str(path)],
                   check=True, capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", str(path), "-pubout",
                          "-outform", "DER"], capture_output=True,
                         check=True).stdout
    return base64.b64encode(der).decode()


def pkcs1_form(spki_b64):
    """The same RSA public key as a bare PKCS#1 RSAPublicKey."""
    der = subprocess.run(["openssl", "rsa", "-pubin", "-inform", "DER",
                          "-RSAPublicKey_out", "-outform", "DER"],
                         input=base64.b64decode(spki_b64),
                         capture_output=True, check=True).stdout
    return base64.b64encode(der).decode()


def keygen(data_dir, domain, selector, *kind):
    """Make a key in the store with sealpost itself; its TXT value."""
    done = sealpost("--data-dir", data_dir, "dkim", "keygen", domain,
                    "--selector", selector, *kind, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    value = zone_value(done.stdout.decode())
    assert value.startswith("v=DKIM1;"), done.stdout
    return value


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A data directory whose store holds keys of messiah.edu.

    sealrsa and sealpkcs1 are published as they are (the latter in PKCS#1
    form), sealed and sealother are published with other keys, and
    sealpending is not published at all.
    """
    data_dir = tmp_path_factory.mktemp("audit-store")
    ours = {
        "sealrsa": keygen(data_dir, "messiah.edu", "sealrsa", "--rsa",
                          "2048"),
        "sealpkcs1": keygen(data_dir, "messiah.edu", "sealpkcs1", "--rsa",
                            "2048"),
        "sealed": keygen(data_dir, "messiah.edu", "sealed", "--ed25519"),
        "sealother": keygen(data_dir, "messiah.edu", "sealother", "--rsa",
                            "2048"),
        "sealpending": keygen(data_dir, "messiah.edu", "sealpending",
                              "--ed25519"),
    }
    assert (data_dir / "sealpost.db").exists()
    return {"dir": data_dir, "records": ours}


@pytest.fixture(scope="module")
def records(tmp_path_factory, store):
    work = tmp_path_factory.mktemp("audit-keys")
    served = table_records(CORPUS_DNS)
    served.update(table_records(DNS_ALL))
    assert "testbad2._domainkey.messiah.edu" in served
    assert "ed1spki._domainkey.example.com" in served
    rsa1 = "".join(served["rsa1._domainkey.example.com"])
    ed1 = "".join(served["ed1._domainkey.example.com"])
    good = f"v=DKIM1; k=rsa; p={rsa_key(work, 'good')}"

    # Third-party selectors: Google's is sound, Mailchimp's testing.
    served["google._domainkey.messiah.edu"] = good
    served["k1._domainkey.messiah.edu"] = rsa1.replace("k=rsa;",
                                                       "k=rsa; t=y;")
    # A clean domain: a good key at a well-known selector, a strict DMARC.
    served["google._domainkey.example.net"] = good
    served["_dmarc.example.net"] = \
        "v=DMARC1; p=reject; rua=mailto:dmarc@example.net"

    # The legacy DomainKeys policy, and DMARC good, broken and partial.
    served["_domainkey.messiah.edu"] = "t=y; o=~; r=postmaster@messiah.edu"
    served["_dmarc.messiah.edu"] = \
        "v=DMARC1; p=none; rua=mailto:dmarc@messiah.edu"
    served["_dmarc.example.com"] = "v=DMARC1; p=block; rua=mailto:d@x.com"
    served["_dmarc.gmail.com"] = "v=DMARC1; p=reject"

    # The store's keys, published right and wrong.
    ours = store["records"]
    served["sealrsa._domainkey.messiah.edu"] = ours["sealrsa"]
    spki = ours["sealpkcs1"].split("p=", 1)[1]
    served["sealpkcs1._domainkey.messiah.edu"] = \
        f"v=DKIM1; k=rsa; p={pkcs1_form(spki)}"
    served["sealed._domainkey.messiah.edu"] = ed1
    served["sealother._domainkey.messiah.edu"] = rsa1
    assert "sealpending._domainkey.messiah.edu" not in served
    return served


@pytest.fixture(scope="module")
def server(records):
    with Dnsmasq(records, local_zones=ZONES) as running:
        yield running


@pytest.fixture(scope="module")
def empty_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("audit-nostore")


def audit(server, domain, *selectors, data_dir, json_out=True):
    """Run the audit; (exit status, report) with the JSON parsed."""
    args = ["--data-dir", data_dir, "dkim", "audit", domain, "--resolver",
            server.server()]
    for selector in selectors:
        args += ["--selector", selector]
    if json_out:
        args.append("--json")
    done = sealpost(*args, timeout=120)
    assert done.stderr == b"", done.stderr.decode(errors="replace")
    if not json_out:
        return done.returncode, done.stdout.decode()
    return done.returncode, json.loads(done.stdout)


@pytest.fixture(scope="module")
def reports(server, store, empty_dir):
    """One audit per domain, shared by the tests that read it."""
    out = {}
    out["messiah.edu"] = audit(server, "messiah.edu", *MESSIAH,
                               data_dir=store["dir"])
    out["messiah.edu/nostore"] = audit(server, "messiah.edu", "sealrsa",
                                       data_dir=empty_dir)
    for domain, selectors in [("vmt2.cis.att.net", ["shan", "foo"]),
                              ("wander.science",
                               ["invalid", "2023-05-ed25519"]),
                              ("example.com", ["ed1spki", "ed1", "rsa1"]),
                              ("yahoo.com", ["s1024"]),
                              ("gmail.com", ["beta"]),
                              ("example.net", [])]:
        out[domain] = audit(server, domain, *selectors, data_dir=empty_dir)
    return out


def selector(report, name):
    found = [s for s in report["selectors"] if s["selector"] == name]
    assert len(found) == 1, [s["selector"] for s in report["selectors"]]
    return found[0]


def finding(entry, code):
    """The one finding of code in entry; fails when absent."""
    found = [f for f in entry["findings"] if f["code"] == code]
    assert len(found) == 1, (code, entry["findings"])
    return found[0]


def codes(entry):
    return {f["code"] for f in entry["findings"]}


@pytest.mark.parametrize("domain,name,code,severity,words", [
    ("messiah.edu", "test1", "key_too_short", "error",
     "512 bits: under 1024 bits, rejected by the major mailbox providers "
     "(RFC 8301)"),
    ("messiah.edu", "test1", "testing", "warning", "t=y"),
    ("vmt2.cis.att.net", "shan", "key_too_short", "error", "768 bits"),
    ("vmt2.cis.att.net", "foo", "key_too_short", "error", "768 bits"),
    ("messiah.edu", "testrevoked", "revoked", "warning", "revoked"),
    ("messiah.edu", "testbad1", "version", "error", "v=DKIM3"),
    ("messiah.edu", "testbad2", "syntax", "error", 'tag "t" has no'),
    ("messiah.edu", "testbad3", "key_type", "error", "k=foobar"),
    ("messiah.edu", "testbad4", "service", "error", "s=chat"),
    ("messiah.edu", "test2", "hash_sha1_only", "error", "h=md5:sha1"),
    ("messiah.edu", "test3", "granularity", "warning", "g=jl*g"),
    ("messiah.edu", "nonexistent", "missing", "error", "NXDOMAIN"),
    ("wander.science", "invalid", "ed25519_spki", "error", "SPKI form"),
    ("example.com", "ed1spki", "ed25519_spki", "error",
     "publish p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="),
    ("example.com", "rsa1", "key_weak", "warning", "1024 bits: weak"),
    ("yahoo.com", "s1024", "key_weak", "warning", "1024 bits"),
    ("yahoo.com", "s1024", "testing", "warning", "t=y"),
])
def test_each_fault_is_its_own_finding(reports, domain, name, code,
                                       severity, words):
    status, report = reports[domain]
    entry = selector(report, name)
    found = finding(entry, code)
    assert found["severity"] == severity, found
    assert words in found["text"], found
    assert entry["status"] == severity or entry["status"] == "error"
    assert entry["source"] == "given"
    assert status == 1


@pytest.mark.parametrize("domain,name,bits,key_type", [
    ("messiah.edu", "test1", 512, "rsa"),
    ("vmt2.cis.att.net", "shan", 768, "rsa"),
    ("example.com", "rsa1", 1024, "rsa"),
    ("wander.science", "2023-05-ed25519", 256, "ed25519"),
    ("example.net", "google", 2048, "rsa"),
])
def test_key_sizes_are_measured(reports, domain, name, bits, key_type):
    entry = selector(reports[domain][1], name)
    assert (entry["key_type"], entry["key_bits"]) == (key_type, bits)


def test_faults_do_not_leak_into_sound_records(reports):
    # The corpus's 768-bit key allows sha1:sha256:sha512: only its size.
    assert codes(selector(reports["vmt2.cis.att.net"][1], "shan")) == \
        {"key_too_short", "not_compared"}
    good = selector(reports["wander.science"][1], "2023-05-ed25519")
    assert good["status"] == "ok"
    assert codes(good) == {"key_size", "not_compared"}
    # A syntax error stops the evaluation: nothing else is claimed.
    assert codes(selector(reports["messiah.edu"][1], "testbad2")) == \
        {"syntax", "not_compared"}


def test_clean_domain_passes_with_status_zero(reports):
    status, report = reports["example.net"]
    assert report["result"] == "ok"
    assert (report["errors"], report["warnings"]) == (0, 0)
    entry = selector(report, "google")
    assert entry["status"] == "ok"
    assert finding(entry, "key_size")["text"] == "RSA key of 2048 bits: good"
    assert report["dmarc"]["valid"] is True
    assert report["dmarc"]["policy"] == "reject"
    assert status == 0


def test_third_party_selectors_are_probed_and_named(server, reports):
    status, report = reports["messiah.edu"]
    third = {s["selector"]: s for s in report["selectors"]
             if s["source"] == "third-party"}
    assert set(third) == {"google", "k1", "selector1"}
    assert third["selector1"]["sender"] == "Microsoft 365"
    assert third["google"]["sender"] == "Google Workspace"
    assert third["k1"]["sender"] == "Mailchimp"
    assert third["google"]["status"] == "ok"
    assert third["selector1"]["status"] == "warning"
    assert finding(third["selector1"], "key_weak")
    assert finding(third["k1"], "testing")
    assert finding(third["k1"], "third_party")["severity"] == "info"
    # Selectors not published are probed but not reported.
    assert report["probed"] >= 30
    assert "query[TXT] mandrill._domainkey.messiah.edu" in server.log()
    assert "mandrill" not in {s["selector"] for s in report["selectors"]}


def test_domainkeys_policy_is_a_deprecated_protocol(reports):
    dk = reports["messiah.edu"][1]["domainkeys"]
    assert dk["present"] is True
    assert dk["record"] == "t=y; o=~; r=postmaster@messiah.edu"
    found = finding(dk, "domainkeys")
    assert found["severity"] == "warning"
    assert "deprecated protocol" in found["text"]
    assert dk["status"] == "warning"
    clean = reports["example.net"][1]["domainkeys"]
    assert (clean["present"], clean["findings"]) == (False, [])


def test_dmarc_records_are_read_and_judged(reports):
    good = reports["messiah.edu"][1]["dmarc"]
    assert (good["present"], good["valid"], good["policy"]) == \
        (True, True, "none")
    assert good["rua"] == ["mailto:dmarc@messiah.edu"]
    assert finding(good, "dmarc_policy")["severity"] == "info"

    broken = reports["example.com"][1]["dmarc"]
    assert (broken["present"], broken["valid"]) == (True, False)
    assert "p=block" in broken["error"]
    assert finding(broken, "dmarc_invalid")["severity"] == "error"

    absent = reports["wander.science"][1]["dmarc"]
    assert (absent["present"], absent["valid"]) == (False, False)
    assert finding(absent, "dmarc_missing")["severity"] == "warning"

    no_rua = reports["gmail.com"][1]["dmarc"]
    assert (no_rua["valid"], no_rua["policy"], no_rua["rua"]) == \
        (True, "reject", [])
    assert finding(no_rua, "dmarc_no_rua")["severity"] == "warning"


@pytest.mark.parametrize("name,code,severity", [
    ("sealrsa", "key_match", "ok"),
    ("sealpkcs1", "key_match", "ok"),
    ("sealed", "key_mismatch", "error"),
    ("sealother", "key_mismatch", "error"),
    ("sealpending", "missing", "warning"),
])
def test_published_keys_are_compared_with_the_store(reports, name, code,
                                                    severity):
    entry = selector(reports["messiah.edu"][1], name)
    assert entry["source"] == "ours"
    assert finding(entry, code)["severity"] == severity
    assert "not_compared" not in codes(entry)
    assert entry["status"] == severity


def test_without_a_store_the_match_is_skipped_and_said(reports, empty_dir):
    status, report = reports["messiah.edu/nostore"]
    entry = selector(report, "sealrsa")
    assert entry["source"] == "given"
    skipped = finding(entry, "not_compared")
    assert skipped["severity"] == "info"
    assert "no store" in skipped["text"]
    assert "sealpending" not in {s["selector"] for s in report["selectors"]}
    # An audit reads the store; it never makes one.
    assert not (empty_dir / "sealpost.db").exists()


@pytest.mark.parametrize("how", ["environment", "config"])
def test_data_dir_comes_from_the_environment_or_the_config(server, store,
                                                           tmp, how):
    env = {k: v for k, v in os.environ.items()
           if k not in ("SEALPOST_DATA_DIR", "SEALPOST_CONFIG")}
    argv = [SEALPOST, "dkim", "audit", "messiah.edu", "--resolver",
            server.server(), "--json"]
    if how == "environment":
        env["SEALPOST_DATA_DIR"] = str(store["dir"])
    else:
        config = tmp / "sealpost.conf"
        config.write_text(f"data_dir = {store['dir']}\n")
        argv[1:1] = ["--config", str(config)]
    done = subprocess.run(argv, env=env, capture_output=True, timeout=120)
    assert done.stderr == b"", done.stderr
    entry = selector(json.loads(done.stdout), "sealrsa")
    assert entry["source"] == "ours"
    assert finding(entry, "key_match")["severity"] == "ok"


def test_readable_report(server, store):
    status, text = audit(server, "messiah.edu", "testbad3", "test1",
                         data_dir=store["dir"], json_out=False)
    assert "selector test1 (given)  rsa 512 bits  verdict: error" in text
    assert "selector selector1 (third-party: Microsoft 365)" in text
    assert "key_type" in text and "k=foobar" in text
    assert "selector sealed (ours)" in text
    assert "_domainkey.messiah.edu (DomainKeys policy): warning" in text
    assert "result: problems found" in text
    assert status == 1


def test_dns_failure_is_status_three(server, empty_dir):
    # dnsmasq owns no zone for this name and refuses: no answer at all.
    status, report = audit(server, "unserved.example.edu", "sel",
                           data_dir=empty_dir)
    assert finding(selector(report, "sel"), "dns_servfail")["severity"] == \
        "error"
    assert report["result"] == "incomplete"
    assert status == 3


def test_dns_timeout_from_a_table_is_status_three(empty_dir):
    done = sealpost("--data-dir", empty_dir, "dkim", "audit",
                    "blackhole.messiah.edu", "--selector", "test3",
                    "--dns-file", CORPUS_DNS, "--json")
    report = json.loads(done.stdout)
    assert finding(selector(report, "test3"), "dns_timeout")
    assert done.returncode == 3


@pytest.mark.parametrize("args", [
    [],
    ["messiah.edu", "extra.example"],
    ["bad domain"],
    ["messiah.edu", "--selector", "bad selector"],
    ["messiah.edu", "--no-such-option"],
])
def test_audit_usage_errors_are_status_two(empty_dir, args):
    done = sealpost("--data-dir", empty_dir, "dkim", "audit", *args)
    assert done.stdout == b""
    assert done.returncode == 2


# ------------------------------------------------------------------------
# sealpost dmarc record


@pytest.mark.parametrize("extra,value", [
    ([], "v=DMARC1; p=none; rua=mailto:dmarc@example.org"),
    (["--policy", "quarantine", "--pct", "10"],
     "v=DMARC1; p=quarantine; pct=10; rua=mailto:dmarc@example.org"),
    (["--policy", "reject"],
     "v=DMARC1; p=reject; rua=mailto:dmarc@example.org"),
])
def test_dmarc_record_prints_a_record_the_parser_accepts(tmp, empty_dir,
                                                         extra, value):
    done = sealpost("dmarc", "record", "example.org", "--rua",
                    "mailto:dmarc@example.org", *extra)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.decode().splitlines()
             if line and not line.startswith(";")]
    assert len(lines) == 1, lines
    assert lines[0].startswith("_dmarc.example.org. 3600 IN TXT \"")
    assert zone_value(lines[0]) == value

    # The audit's DMARC parser reads it back as valid.
    table = tmp / "dns.txt"
    table.write_text(f"_dmarc.example.org TXT \"{zone_value(lines[0])}\"\n")
    audited = sealpost("--data-dir", empty_dir, "dkim", "audit",
                       "example.org", "--dns-file", table, "--json")
    dmarc = json.loads(audited.stdout)["dmarc"]
    assert (dmarc["present"], dmarc["valid"], dmarc["error"]) == \
        (True, True, None)
    assert dmarc["rua"] == ["mailto:dmarc@example.org"]


def test_dmarc_record_advises_how_to_tighten():
    done = sealpost("dmarc", "record", "example.org", "--rua",
                    "mailto:dmarc@example.org")
    advice = done.stdout.decode()
    assert "p=none" in advice and "monitor" in advice
    assert "few weeks" in advice
    assert "DKIM or SPF aligned" in advice
    assert "p=quarantine with pct=10" in advice
    assert "p=reject" in advice


def test_dmarc_record_names_the_authorization_for_outside_reports():
    done = sealpost("dmarc", "record", "example.org", "--rua",
                    "mailto:a@example.org,mailto:agg@reports.example.net")
    assert done.returncode == 0
    assert "example.org._report._dmarc.reports.example.net" in \
        done.stdout.decode()
    assert "_report._dmarc.example.org" not in done.stdout.decode()


@pytest.mark.parametrize("args,words", [
    (["example.org"], "--rua is required"),
    (["example.org", "--rua", "dmarc@example.org"], "not a mailto: URI"),
    (["example.org", "--rua", "mailto:nobody"], "local@domain"),
    (["example.org", "--rua", "mailto:a@example.org,"], "empty URI"),
    (["example.org", "--rua", "https://example.org/r"], "not a mailto: URI"),
    (["example.org", "--rua", "mailto:a@example.org", "--policy", "block"],
     "expected none, quarantine or reject"),
    (["example.org", "--rua", "mailto:a@example.org", "--pct", "50"],
     "quarantine or reject only"),
    (["example.org", "--rua", "mailto:a@example.org", "--policy", "reject",
      "--pct", "150"], "from 0 to 100"),
    (["not a domain", "--rua", "mailto:a@example.org"], "not a domain"),
])
def test_dmarc_record_refuses_bad_input(args, words):
    done = sealpost("dmarc", "record", *args)
    assert done.returncode == 2
    assert done.stdout == b""
    assert words in done.stderr.decode()
