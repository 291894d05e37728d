"""PGP/MIME sealing against the OpenPGP tools people decrypt with.

Keys are made with GnuPG in a throw-away home; messages are sealed with
seal_driver (SEALPOST_SEAL_DRIVER) and must decrypt, with gpg and with
rnp, to the MIME entity that went in, byte for byte, with integrity
protection that gpg recognises.  Expired, revoked and sign-only keys are
refused with exit status 2 and the reason.
"""
import base64
import email
import email.policy
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import time

import pytest

DRIVER = os.environ.get("SEALPOST_SEAL_DRIVER", "seal_driver")

# No passphrase, and no pinentry to ask for one.
GPG_QUIET = ["--batch", "--pinentry-mode", "loopback", "--passphrase", ""]

PLAIN = (b"From: Sender <sender@example.org>\n"
         b"To: Recipient <t@example.com>\n"
         b"Subject: plain text\n"
         b"Date: Thu, 04 Dec 2025 10:00:00 +0000\n"
         b"Message-ID: <plain@example.org>\n"
         b"MIME-Version: 1.0\n"
         b"Content-Type: text/plain; charset=us-ascii\n"
         b"\n"
         b"Hello,\n"
         b"\n"
         b"From the start of a line, and a dot:\n"
         b".\n"
         b"-- \n"
         b"the sender\n")

ATTACHMENT = bytes(range(256)) * 8

MIXED = (b"From: Sender <sender@example.org>\r\n"
         b"To: Recipient <t@example.com>\r\n"
         b"Subject: with an attachment\r\n"
         b"MIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed;\r\n"
         b"\tboundary=\"mixed-boundary\"\r\n"
         b"\r\n"
         b"--mixed-boundary\r\n"
         b"Content-Type: text/plain; charset=us-ascii\r\n"
         b"\r\n"
         b"The figures are attached.\r\n"
         b"--mixed-boundary\r\n"
         b"Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
         b"Content-Transfer-Encoding: base64\r\n"
         b"Content-Disposition: attachment; filename=\"data.bin\"\r\n"
         b"\r\n" +
         base64.encodebytes(ATTACHMENT).replace(b"\n", b"\r\n") +
         b"--mixed-boundary--\r\n")

EIGHTBIT = ("From: Sender <sender@example.org>\r\n"
            "To: Recipient <t@example.com>\r\n"
            "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n"
            "\r\n"
            "Grüße aus Köln, naïve café, ½ € and 日本語.\r\n").encode()

MESSAGES = {"plain": PLAIN, "mixed": MIXED, "8bit": EIGHTBIT}


def crlf(data):
    """The message as sealpost's intake makes it: CRLF line endings."""
    return re.sub(rb"\r?\n", b"\r\n", data)


def entity(message, subject_inside=False):
    """What must travel encrypted: every Content-* field (and the Subject
    when it is replaced outside) as written, an empty line, the body."""
    head, body = crlf(message).split(b"\r\n\r\n", 1)
    fields = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    inside = [f for f in fields if f.lower().startswith(b"content-") or
              (subject_inside and f.lower().startswith(b"subject:"))]
    return b"".join(f + b"\r\n" for f in inside) + b"\r\n" + body


def gpg(home, *args, stdin=None, check=True):
    done = subprocess.run(["gpg", "--homedir", str(home), *GPG_QUIET, *args],
                          input=stdin, capture_output=True, timeout=120)
    if check:
        assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done


def fingerprint(home, uid):
    listing = gpg(home, "--with-colons", "--list-keys", uid).stdout.decode()
    return re.search(r"^fpr:+([0-9A-F]{40}):", listing, re.M).group(1)


def make_key(home, uid, algo, expiry="never", encr=None):
    """A key with a primary of algo that signs, and an encryption subkey
    of encr when given; returns its fingerprint."""
    gpg(home, "--quick-gen-key", uid, algo, "sign", expiry)
    fpr = fingerprint(home, uid)
    if encr is not None:
        gpg(home, "--quick-add-key", fpr, encr, "encr", "never")
    return fpr


class Keyring:
    """A GnuPG home with the test keys, and an rnp home with their secret
    halves, both removed at the end."""

    def __init__(self):
        # gpg-agent's socket path must stay short: not under pytest's tmp.
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="sp-pgp-"))
        self.gnupg = self.root / "gnupg"
        self.rnp = self.root / "rnp"
        self.gnupg.mkdir(mode=0o700)
        self.rnp.mkdir(mode=0o700)
        self.fpr = {}

    def export(self, name, armored):
        path = self.root / (name + (".asc" if armored else ".gpg"))
        args = ["--armor"] if armored else []
        path.write_bytes(gpg(self.gnupg, *args, "--export",
                             self.fpr[name]).stdout)
        return path

    def close(self):
        subprocess.run(["gpgconf", "--homedir", str(self.gnupg), "--kill",
                        "all"], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def keys():
    ring = Keyring()
    try:
        home = ring.gnupg
        ring.fpr["rsa"] = make_key(home, "RSA Test <rsa@example.com>",
                                   "rsa2048", encr="rsa2048")
        ring.fpr["cv25519"] = make_key(home, "T <t@example.com>", "ed25519",
                                       encr="cv25519")
        ring.fpr["signer"] = make_key(home, "Signer <signer@example.com>",
                                      "ed25519")

        # Revoked with the certificate gpg stored when it made the key; the
        # leading colon there keeps it from being imported by accident.
        ring.fpr["revoked"] = make_key(home, "Gone <gone@example.com>",
                                       "ed25519", encr="cv25519")
        rev = home / "openpgp-revocs.d" / (ring.fpr["revoked"] + ".rev")
        gpg(home, "--import", stdin=rev.read_bytes().replace(
            b":-----BEGIN", b"-----BEGIN"))

        # Expiring in seconds; by the time it is used it has expired.
        ring.fpr["expired"] = make_key(home, "Old <old@example.com>",
                                       "ed25519", expiry="seconds=3",
                                       encr="cv25519")
        made = time.time()

        # rnp decrypts with the secret halves, imported into its own home.
        for name in ("rsa", "cv25519"):
            secret = gpg(home, "--armor", "--export-secret-keys",
                         ring.fpr[name]).stdout
            path = ring.root / (name + "-secret.asc")
            path.write_bytes(secret)
            done = subprocess.run(["rnpkeys", "--homedir", str(ring.rnp),
                                   "--import", str(path)],
                                  capture_output=True, timeout=60)
            assert done.returncode == 0, done.stderr
        time.sleep(max(0.0, made + 4 - time.time()))
        yield ring
    finally:
        ring.close()


def seal(keyfile, message, *args):
    return subprocess.run([DRIVER, str(keyfile), *args], input=message,
                          capture_output=True, timeout=120)


def encrypted_part(sealed):
    """Check the outer message's MIME shape; return the armored text."""
    outer = email.message_from_bytes(sealed, policy=email.policy.default)
    assert outer.get_content_type() == "multipart/encrypted"
    assert outer.get_param("protocol") == "application/pgp-encrypted"
    assert outer["MIME-Version"] == "1.0"
    parts = list(outer.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        "application/pgp-encrypted", "application/octet-stream"]
    assert parts[0].get_payload(decode=True).strip() == b"Version: 1"
    armored = parts[1].get_payload(decode=True)
    assert armored.startswith(b"-----BEGIN PGP MESSAGE-----\r\n")
    assert armored.rstrip().endswith(b"-----END PGP MESSAGE-----")
    return outer, armored


def assert_crlf_only(data):
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert b"\r" not in data.replace(b"\r\n", b"")


def gpg_decrypt(keys, armored):
    """Decrypt with gpg; the plaintext, after checking that gpg found the
    data integrity-protected."""
    done = gpg(keys.gnupg, "--status-fd", "2", "--decrypt", stdin=armored)
    status = done.stderr.decode(errors="replace")
    assert "[GNUPG:] DECRYPTION_OKAY" in status, status
    assert ("[GNUPG:] GOODMDC" in status or
            re.search(r"DECRYPTION_INFO \d+ \d+ [1-9]", status)), status
    assert "not integrity protected" not in status, status
    return done.stdout


def rnp_decrypt(keys, armored):
    done = subprocess.run(["rnp", "--homedir", str(keys.rnp), "--decrypt",
                           "--output=-"], input=armored,
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


@pytest.mark.parametrize("kind", ["rsa", "cv25519"])
@pytest.mark.parametrize("armored", [True, False], ids=["armored", "binary"])
@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_sealed_messages_decrypt_to_the_entity(keys, kind, armored, name):
    message = MESSAGES[name]
    done = seal(keys.export(kind, armored), message)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    sealed = done.stdout
    assert_crlf_only(sealed)

    # The routing fields stay outside, as they were.
    outer, armored_text = encrypted_part(sealed)
    original = email.message_from_bytes(message, policy=email.policy.default)
    for field in ("From", "To", "Subject", "Date", "Message-ID"):
        assert outer[field] == original[field], field
    assert b"Content-Transfer-Encoding" not in sealed.split(b"\r\n\r\n")[0]

    expected = entity(message)
    assert gpg_decrypt(keys, armored_text) == expected
    assert rnp_decrypt(keys, armored_text) == expected


def test_replaced_subject_travels_inside(keys):
    done = seal(keys.export("cv25519", True), MIXED, "--subject", "sealed")
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    outer, armored_text = encrypted_part(done.stdout)
    assert outer["Subject"] == "sealed"
    inside = gpg_decrypt(keys, armored_text)
    assert inside == entity(MIXED, subject_inside=True)
    assert b"Subject: with an attachment\r\n" in inside


def test_each_seal_has_its_own_boundary_and_ciphertext(keys):
    keyfile = keys.export("cv25519", True)
    first, second = seal(keyfile, PLAIN).stdout, seal(keyfile, PLAIN).stdout
    boundary = re.compile(rb'boundary="([^"]+)"')
    assert boundary.search(first).group(1) != boundary.search(second).group(1)
    assert encrypted_part(first)[1] != encrypted_part(second)[1]


@pytest.mark.parametrize("name, reason", [
    ("expired", "expired on"),
    ("revoked", "is revoked"),
    ("signer", "may encrypt"),
])
def test_unusable_keys_are_refused(keys, name, reason):
    for armored in (True, False):
        done = seal(keys.export(name, armored), PLAIN)
        stderr = done.stderr.decode(errors="replace")
        assert done.returncode == 2, stderr
        assert reason in stderr
        assert done.stdout == b""


def test_two_keys_in_one_file_are_not_a_key(keys):
    both = keys.root / "both.asc"
    both.write_bytes(keys.export("rsa", False).read_bytes() +
                     keys.export("cv25519", False).read_bytes())
    done = seal(both, PLAIN)
    assert done.returncode == 1
    assert b"one key per file" in done.stderr
