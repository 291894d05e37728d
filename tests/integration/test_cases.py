"""The DKIM cases reduced from public bug reports (tests/data/cases).

Each test asserts the result the case's expected.txt requires, and where
the case names a reason (body hash, l=, two From fields, key syntax), that
the report gives that reason rather than merely not passing.
"""
import pytest

from conftest import CASES, verify_json, statuses, sealpost

DNS = CASES / "keys" / "dns-all.txt"


def one(path):
    code, report = verify_json(path, DNS)
    assert len(report["signatures"]) == 1
    return code, report["signatures"][0]


@pytest.mark.parametrize("name,status,reason", [
    ("input.eml", "pass", "ok"),
    # The signer kept a space after the colon of a field folded there.
    ("input-buggy-signer.eml", "fail", "signature"),
])
def test_br001_fold_after_colon(name, status, reason):
    code, sig = one(CASES / "BR-001" / name)
    assert (sig["status"], sig["reason"]) == (status, reason)
    assert code == (0 if status == "pass" else 1)


def test_br001_buggy_signer_body_hash_still_matches():
    _, sig = one(CASES / "BR-001" / "input-buggy-signer.eml")
    assert "body hash" not in sig["detail"]


@pytest.mark.parametrize("name,status,reason", [
    ("signed.eml", "pass", "ok"),
    # Crypto holds (the bottom From is signed) but two From fields never pass.
    ("prepended-from.eml", "policy", "from_count"),
    ("appended-from.eml", "fail", "signature"),
    ("oversigned.eml", "pass", "ok"),
    ("oversigned-then-prepended.eml", "fail", "signature"),
])
def test_br003_extra_from(name, status, reason):
    code, sig = one(CASES / "BR-003" / name)
    assert (sig["status"], sig["reason"]) == (status, reason)
    if name == "prepended-from.eml":
        assert sig["crypto_valid"] is True
        assert "2 From fields" in sig["detail"]
    assert (code == 0) == (status == "pass")


@pytest.mark.parametrize("name,status,reason", [
    ("signed-with-l.eml", "pass", "ok"),
    ("appended-after-l.eml", "policy", "body_length"),
    ("l-larger-than-body.eml", "permerror", "body_length_long"),
])
def test_br004_body_length(name, status, reason):
    code, sig = one(CASES / "BR-004" / name)
    assert (sig["status"], sig["reason"]) == (status, reason)
    assert (code == 0) == (status == "pass")


def test_br004_unsigned_octets_are_counted():
    _, sig = one(CASES / "BR-004" / "appended-after-l.eml")
    unsigned = sig["body_octets"] - sig["body_length"]
    assert unsigned > 0
    assert f"leaves {unsigned} octets" in sig["detail"]


@pytest.mark.parametrize("name,status,reason", [
    ("relaxed-empty-body.eml", "pass", "ok"),
    ("simple-empty-body.eml", "pass", "ok"),
    ("relaxed-empty-body-wrong-bh.eml", "fail", "body_hash"),
    ("relaxed-whitespace-only-body.eml", "pass", "ok"),
    ("no-separator-line.eml", "pass", "ok"),
])
def test_br005_empty_bodies(name, status, reason):
    _, sig = one(CASES / "BR-005" / name)
    assert (sig["status"], sig["reason"]) == (status, reason)
    if reason == "body_hash":
        assert sig["crypto_valid"] is True


def test_br007_h_list_case_and_folding():
    code, sig = one(CASES / "BR-007" / "input.eml")
    assert sig["status"] == "pass" and code == 0


@pytest.mark.parametrize("name", ["input-relaxed.eml", "input-simple.eml"])
def test_br009_utf8_headers(name):
    code, sig = one(CASES / "BR-009" / name)
    assert sig["status"] == "pass" and code == 0


def test_br011_raw_ed25519_key_passes():
    _, sig = one(CASES / "BR-011" / "input-raw-published.eml")
    assert sig["status"] == "pass"


def test_br011_spki_ed25519_key_is_permerror():
    code, sig = one(CASES / "BR-011" / "input-spki-published.eml")
    assert (sig["status"], sig["reason"]) == ("permerror", "key_syntax")
    assert "44 octets" in sig["detail"]
    assert code == 1


def sign(message, *extra):
    seed = CASES / "keys" / "ed25519-rfc8032-test1.seed.b64"
    return sealpost("dkim", "sign", "--domain", "example.com",
                    "--selector", "ed1", "--key", seed, "--time",
                    "1700000000", *extra, stdin=message)


def body_hash(signed):
    header = signed.split(b"\r\n\r\n", 1)[0]
    field = header.split(b"DKIM-Signature:", 1)[1]
    unfolded = b"".join(field.split(b"\r\n"))
    return unfolded.split(b"bh=", 1)[1].split(b";", 1)[0].strip()


def test_br012_bare_lf_refused_without_normalization():
    raw = (CASES / "BR-012" / "input-mixed-eol.eml").read_bytes()
    done = sign(raw)
    assert done.returncode == 1
    assert b"bare LF" in done.stderr
    assert done.stdout == b""


@pytest.mark.parametrize("canon", ["relaxed/relaxed", "simple/simple"])
def test_br012_normalized_then_signed(canon, tmp):
    raw = (CASES / "BR-012" / "input-mixed-eol.eml").read_bytes()
    normalized = (CASES / "BR-012" / "expected-normalized.eml").read_bytes()
    done = sign(raw, "--fix-eol", "--canon", canon)
    assert done.returncode == 0, done.stderr
    signature_end = done.stdout.index(b"\r\n", done.stdout.index(b"b=")) + 2
    while done.stdout[signature_end:signature_end + 1] in (b"\t", b" "):
        signature_end = done.stdout.index(b"\r\n", signature_end) + 2
    # The bytes after the signature are exactly the normalized message.
    assert done.stdout[signature_end:] == normalized
    assert body_hash(done.stdout) == \
        b"TZs3o3g7PghHr0BfK/POPOPd9EA5Vyr9L6Dlg066n6Y="
    out = tmp / "signed.eml"
    out.write_bytes(done.stdout)
    _, report = verify_json(out, DNS, "--raw")
    assert statuses(report) == ["pass"]


def test_br012_to_field_is_its_own_field_after_normalization():
    raw = (CASES / "BR-012" / "input-mixed-eol.eml").read_bytes()
    done = sign(raw, "--fix-eol")
    header = done.stdout.split(b"\r\n\r\n", 1)[0]
    unfolded = b"".join(header.split(b"\r\n\t"))
    h_list = unfolded.split(b"h=", 1)[1].split(b";", 1)[0].split(b":")
    # To occurs once, so it is listed twice (oversigned).
    assert h_list.count(b"to") == 2


def test_br003_signer_oversigns_and_refuses_two_from():
    message = (b"From: a@example.com\r\nTo: b@example.org\r\n"
               b"Subject: s\r\n\r\nbody\r\n")
    done = sign(message)
    assert done.returncode == 0
    unfolded = b"".join(done.stdout.split(b"\r\n\t"))
    h_list = unfolded.split(b"h=", 1)[1].split(b";", 1)[0].split(b":")
    for name, present in [(b"from", 1), (b"to", 1), (b"subject", 1),
                          (b"cc", 0), (b"reply-to", 0), (b"date", 0),
                          (b"message-id", 0), (b"content-type", 0),
                          (b"mime-version", 0)]:
        assert h_list.count(name) == present + 1, name

    two_from = b"From: x@example.com\r\n" + message
    done = sign(two_from)
    assert done.returncode == 1
    assert b"2 From fields" in done.stderr
