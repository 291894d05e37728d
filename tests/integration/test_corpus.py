"""Verification of material written by other projects (tests/data/corpus).

The Mail::DKIM corpus: every file gives the verdict its EXPECTED.tsv
requires under RFC 6376 as amended by RFC 8301 (the "policy" column), and
with --legacy the verdict of the corpus's own verifier (the "legacy"
column).  A verdict is read from all signatures of the message:

  pass     some signature passes
  fail     none passes; the reasons are fail, policy or permerror
  invalid  every signature is permerror or temperror
  none     no DKIM signature (DomainKeys fields are reported, not judged)

dkimpy's and the RFC 8463 material: the messages that must pass do, with
every signature.
"""
import pytest

from conftest import CORPUS, sealpost, statuses, verify_json

MAIL_DKIM = CORPUS / "mail-dkim"


def expected_rows():
    rows = []
    for line in (MAIL_DKIM / "EXPECTED.tsv").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, legacy, policy, _ = line.split("\t", 3)
        rows.append((name, legacy, policy))
    return rows


ROWS = expected_rows()


def test_the_whole_corpus_is_listed():
    listed = {name for name, _, _ in ROWS}
    on_disk = {path.name for path in (MAIL_DKIM / "corpus").iterdir()}
    assert listed == on_disk
    assert len(listed) == 79


def meets(verdict, found, domainkeys):
    """Whether the statuses found satisfy an EXPECTED.tsv verdict."""
    if verdict == "none":
        return found == [] and domainkeys > 0
    if verdict == "pass":
        return "pass" in found
    if "pass" in found or not found:
        return False
    if verdict == "invalid":
        return all(s in ("permerror", "temperror") for s in found)
    assert verdict == "fail", verdict
    return all(s in ("fail", "policy", "permerror", "temperror",
                     "neutral") for s in found) and \
        any(s in ("fail", "policy", "permerror") for s in found)


@pytest.mark.parametrize("name,legacy,policy", ROWS,
                         ids=[row[0] for row in ROWS])
def test_mail_dkim_policy_verdict(name, legacy, policy):
    code, report = verify_json(MAIL_DKIM / "corpus" / name,
                               MAIL_DKIM / "dns.txt")
    found = statuses(report)
    assert meets(policy, found, report["domainkeys"]), (found, report)
    assert (code == 0) == (policy == "pass")
    if policy == "none":
        assert code == 4
    for sig in report["signatures"]:
        assert sig["detail"]


@pytest.mark.parametrize("name,legacy,policy",
                         [row for row in ROWS if row[1] != "n/a"],
                         ids=[row[0] for row in ROWS if row[1] != "n/a"])
def test_mail_dkim_legacy_verdict(name, legacy, policy):
    _, report = verify_json(MAIL_DKIM / "corpus" / name,
                            MAIL_DKIM / "dns.txt", "--legacy")
    assert meets(legacy, statuses(report), report["domainkeys"]), report


def test_multiple_2_legacy_order():
    # EXPECTED.tsv: in legacy mode its first three signatures are invalid,
    # pass and fail.
    _, report = verify_json(MAIL_DKIM / "corpus" / "multiple_2.txt",
                            MAIL_DKIM / "dns.txt", "--legacy")
    assert statuses(report)[:3] == ["permerror", "pass", "fail"]


@pytest.mark.parametrize("name", ["good_1878523.txt", "goodkey_1.txt",
                                  "good_83176.txt"])
def test_policy_failures_say_valid_but(name):
    """An operator must read why receivers fail otherwise sound mail."""
    _, report = verify_json(MAIL_DKIM / "corpus" / name,
                            MAIL_DKIM / "dns.txt")
    sig = report["signatures"][0]
    assert sig["status"] == "policy"
    assert sig["crypto_valid"] is True
    assert sig["detail"].startswith("cryptographically valid, but")
    assert "RFC 8301" in sig["detail"]


def test_short_key_reports_its_size():
    _, report = verify_json(MAIL_DKIM / "corpus" / "goodkey_2.txt",
                            MAIL_DKIM / "dns.txt")
    sig = report["signatures"][0]
    assert sig["key_bits"] == 512
    assert "512-bit key" in sig["detail"]


def test_domainkeys_are_reported_as_deprecated():
    done = sealpost("dkim", "verify", "--dns-file", MAIL_DKIM / "dns.txt",
                    MAIL_DKIM / "corpus" / "good_dk_1.txt")
    assert done.returncode == 4
    assert b"DomainKeys is a deprecated protocol" in done.stdout


@pytest.mark.parametrize("path,dns", [
    ("rfc8463/signed.eml", "rfc8463/dns.txt"),
    ("dkimpy/rfc6376.signed.msg", "dkimpy/dns.txt"),
])
def test_rfc8463_messages_pass_with_both_signatures(path, dns):
    # No x= in these signatures: they pass at any verification time.
    for when in ("1", "1700000000", "4000000000"):
        code, report = verify_json(CORPUS / path, CORPUS / dns,
                                   "--time", when)
        assert statuses(report) == ["pass", "pass"], report
        algorithms = {sig["algorithm"] for sig in report["signatures"]}
        assert algorithms == {"ed25519-sha256", "rsa-sha256"}
        assert code == 0


@pytest.mark.parametrize("name", ["ed25519test2.msg", "test2.message"])
def test_dkimpy_messages_pass(name):
    code, report = verify_json(CORPUS / "dkimpy" / name,
                               CORPUS / "dkimpy" / "dns.txt")
    assert statuses(report) == ["pass"], report
    assert code == 0


def test_gmail_message_with_degenerate_folding_passes():
    _, report = verify_json(CORPUS / "dkimpy" / "test2.message",
                            CORPUS / "dkimpy" / "dns.txt")
    sig = report["signatures"][0]
    assert (sig["domain"], sig["key_bits"]) == ("gmail.com", 2048)


def test_extra_message_does_not_pass(tmp):
    path = CORPUS / "dkimpy" / "test_extra.message"
    code, report = verify_json(path, CORPUS / "dkimpy" / "dns.txt")
    assert code != 0 and "pass" not in statuses(report)

    # Signed, it passes; with one more From above the signed one, it no
    # longer does: From is oversigned, so the added field takes the empty
    # slot in h= and the signature breaks.
    seed = CORPUS.parent.parent / "cases" / "keys" / \
        "ed25519-rfc8032-test1.seed.b64"
    signed = sealpost("dkim", "sign", "--fix-eol", "--domain", "example.com",
                      "--selector", "ed1", "--key", seed,
                      stdin=path.read_bytes())
    assert signed.returncode == 0, signed.stderr
    dns = CORPUS.parent.parent / "cases" / "keys" / "dns-all.txt"
    (tmp / "signed.eml").write_bytes(signed.stdout)
    assert statuses(verify_json(tmp / "signed.eml", dns)[1]) == ["pass"]
    (tmp / "extra.eml").write_bytes(
        b"From: Mallory <ceo@example.com>\r\n" + signed.stdout)
    _, report = verify_json(tmp / "extra.eml", dns)
    assert statuses(report) == ["fail"]
    assert report["signatures"][0]["reason"] == "signature"


def test_nofrom_message_is_refused_for_signing():
    path = CORPUS / "dkimpy" / "test_nofrom.message"
    done = sealpost("dkim", "sign", "--fix-eol", "--domain", "example.com",
                    "--selector", "sel", "--key",
                    CORPUS / "dkimpy" / "test.private",
                    stdin=path.read_bytes())
    assert done.returncode == 1
    assert b"no From field" in done.stderr
    assert done.stdout == b""
