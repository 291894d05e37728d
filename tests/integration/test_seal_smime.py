"""S/MIME sealing, opened by other software.

Messages are sealed through the seal driver (tests/seal_driver.c, which
calls seal.h as the command line will) for a recipient whose certificate
and key the test makes with the openssl command, under a throw-away CA.
Each sealed message is then opened with "openssl cms -decrypt" and with
gpgsm, and what they give back must be the original MIME entity (the
Content-* fields, the empty line, the body) byte for byte.  The outer
message must parse as application/pkcs7-mime with the routing fields
kept, have CRLF line endings only and lines of 78 characters at most.

gpgsm here is GnuPG 2.2, which cannot read AuthEnvelopedData
(AES-256-GCM); it opens the CBC messages only, openssl opens both.
"""
import base64
import email
import email.policy
import os
import pathlib
import re
import subprocess

import pytest

DRIVER = os.environ.get("SEALPOST_SEAL_DRIVER", "seal_driver")
DATA = pathlib.Path(os.environ.get(
    "SEALPOST_TESTDATA",
    pathlib.Path(__file__).resolve().parent.parent / "data"))
CASES = DATA / "cases"

LEAF_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = emailProtection
subjectAltName = email:alice@example.org
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

# "openssl ca" is the one openssl command that sets a validity in the past.
CA_CONFIG = """\
[ca]
default_ca = test_ca
[test_ca]
database = index.txt
new_certs_dir = issued
serial = serial
default_md = sha256
policy = any_name
unique_subject = no
[any_name]
commonName = supplied
emailAddress = optional
[leaf]
""" + LEAF_EXTENSIONS


def openssl(*args, cwd):
    done = subprocess.run(["openssl", *map(str, args)], cwd=cwd,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


class Pki:
    """A CA and a recipient, made with the openssl command in dir."""

    def __init__(self, where):
        self.dir = where
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes",
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
                "-subj", "/CN=Sealpost Test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                cwd=where)
        openssl("req", "-new", "-newkey", "rsa:2048", "-nodes",
                "-keyout", "alice.key", "-out", "alice.csr",
                "-subj", "/CN=Alice Example", cwd=where)
        (where / "leaf.cnf").write_text(LEAF_EXTENSIONS)
        openssl("x509", "-req", "-in", "alice.csr", "-CA", "ca.pem",
                "-CAkey", "ca.key", "-set_serial", "2", "-days", "30",
                "-extfile", "leaf.cnf", "-out", "alice.pem", cwd=where)
        self.ca = where / "ca.pem"
        self.cert = where / "alice.pem"
        self.key = where / "alice.key"

    def expired(self):
        """The recipient's request signed for January 2020 only."""
        (self.dir / "ca.cnf").write_text(CA_CONFIG)
        (self.dir / "issued").mkdir(exist_ok=True)
        (self.dir / "index.txt").write_text("")
        (self.dir / "serial").write_text("10\n")
        openssl("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem",
                "-keyfile", "ca.key", "-in", "alice.csr",
                "-out", "expired.pem", "-extensions", "leaf", "-notext",
                "-startdate", "20200101000000Z",
                "-enddate", "20200201000000Z", cwd=self.dir)
        return self.dir / "expired.pem"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def gpgsm_home(pki, tmp_path_factory):
    """A GNUPGHOME holding the recipient's key, imported as PKCS#12, and
    trusting the CA; its agent is stopped afterwards."""
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    # GnuPG 2.2 reads PKCS#12 with the older PBE, not OpenSSL 3's PBES2.
    openssl("pkcs12", "-export", "-inkey", pki.key, "-in", pki.cert,
            "-certfile", pki.ca, "-out", home / "alice.p12",
            "-passout", "pass:", "-keypbe", "PBE-SHA1-3DES",
            "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1", cwd=pki.dir)
    (home / "gpgsm.conf").write_text("disable-crl-checks\n"
                                     "disable-trusted-cert-crl-check\n")
    env = dict(os.environ, GNUPGHOME=str(home))
    done = gpgsm(env, "--import", home / "alice.p12")
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    fingerprint = openssl("x509", "-in", pki.ca, "-noout", "-fingerprint",
                          "-sha1", cwd=pki.dir).decode().split("=")[1]
    (home / "trustlist.txt").write_text(fingerprint.strip() + " S\n")
    yield env
    subprocess.run(["gpgconf", "--kill", "all"], env=env,
                   capture_output=True, timeout=60)


def gpgsm(env, *args):
    return subprocess.run(["gpgsm", "--batch", "--pinentry-mode", "loopback",
                           "--passphrase", "", *map(str, args)], env=env,
                          capture_output=True, timeout=120)


def seal(pki, message, *options, cert=None):
    return subprocess.run([DRIVER, str(cert or pki.cert), "--ca", str(pki.ca),
                           *options], input=message, capture_output=True,
                          timeout=120)


def sealed_ok(pki, message, *options):
    done = seal(pki, message, *options)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def entity_of(message, subject_inside=False):
    """What must be encrypted: the Content-* fields (and the Subject when
    it is replaced outside) as they were, the empty line, the body."""
    head, body = message.split(b"\r\n\r\n", 1)
    fields = re.split(rb"\r\n(?![ \t])", head)
    kept = [field for field in fields
            if field.lower().startswith(b"content-") or
            (subject_inside and field.lower().startswith(b"subject:"))]
    return b"".join(field + b"\r\n" for field in kept) + b"\r\n" + body


def openssl_open(pki, sealed, where):
    path = where / "sealed.eml"
    path.write_bytes(sealed)
    return openssl("cms", "-decrypt", "-in", path, "-inkey", pki.key,
                   "-recip", pki.cert, cwd=where)


def gpgsm_open(env, sealed, where):
    outer = email.message_from_bytes(sealed, policy=email.policy.compat32)
    path = where / "sealed.p7m"
    path.write_bytes(outer.get_payload(decode=True))
    done = gpgsm(env, "--decrypt", path)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def assert_wire_form(sealed):
    assert b"\r" not in sealed.replace(b"\r\n", b"")
    assert b"\n" not in sealed.replace(b"\r\n", b"")
    assert sealed.endswith(b"\r\n")
    for line in sealed.split(b"\r\n"):
        assert len(line) <= 78, line


def crlf(text):
    return text.replace(b"\n", b"\r\n")


PLAIN = crlf(b"""\
From: Sender <sender@example.org>
To: Alice Example <alice@example.org>
Cc: Carol <carol@example.net>
Subject: Plain text
Date: Tue, 14 Nov 2023 22:13:20 +0000
Message-ID: <plain@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit

Hello Alice.
  Indented, with trailing spaces.   

Last line.
""")

FOLDED_8BIT = crlf("""\
From: Sender <sender@example.org>
To: alice@example.org
Subject: Folded and eight-bit
Date: Tue, 14 Nov 2023 22:13:20 +0000
Message-ID: <folded@example.org>
MIME-Version: 1.0
Content-Type: text/plain;
\tcharset="utf-8";
 format=flowed
Content-Transfer-Encoding: 8bit
Content-Language: de

Grüße aus Köln, 42 €.
""".encode())


def with_attachment():
    """multipart/mixed with a binary attachment of every octet value."""
    blob = bytes(range(256)) * 7 + os.urandom(301)
    encoded = base64.encodebytes(blob)
    return blob, crlf(b"""\
From: Sender <sender@example.org>
To: alice@example.org
Subject: With an attachment
Date: Tue, 14 Nov 2023 22:13:20 +0000
Message-ID: <attach@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain; charset=us-ascii

See the file.
--b1
Content-Type: application/octet-stream; name="data.bin"
Content-Disposition: attachment; filename="data.bin"
Content-Transfer-Encoding: base64

""" + encoded + b"""--b1--
""")


def check_outer(sealed, original, smime_type, subject=None):
    outer = email.message_from_bytes(sealed, policy=email.policy.default)
    source = email.message_from_bytes(original, policy=email.policy.default)
    assert outer.get_content_type() == "application/pkcs7-mime"
    assert outer.get_param("smime-type") == smime_type
    assert outer.get_filename() == "smime.p7m"
    assert outer["Content-Transfer-Encoding"] == "base64"
    for name in ("From", "To", "Date", "Message-ID"):
        assert outer[name] == source[name]
    assert outer["Subject"] == (subject or source["Subject"])
    assert len(outer.get_all("MIME-Version")) == 1
    assert len(outer.get_all("Content-Type")) == 1


@pytest.mark.parametrize("name", ["plain", "attachment", "folded"])
@pytest.mark.parametrize("gcm", [False, True], ids=["cbc", "gcm"])
def test_sealed_messages_open_to_their_entity(pki, gpgsm_home, tmp_path,
                                              name, gcm):
    message = {"plain": PLAIN, "attachment": with_attachment()[1],
               "folded": FOLDED_8BIT}[name]
    sealed = sealed_ok(pki, message, *(["--gcm"] if gcm else []))
    assert_wire_form(sealed)
    check_outer(sealed, message,
                "authEnveloped-data" if gcm else "enveloped-data")
    assert openssl_open(pki, sealed, tmp_path) == entity_of(message)
    if not gcm:
        assert gpgsm_open(gpgsm_home, sealed, tmp_path) == entity_of(message)


def test_the_attachment_survives_whole(pki, tmp_path):
    blob, message = with_attachment()
    inner = openssl_open(pki, sealed_ok(pki, message), tmp_path)
    parsed = email.message_from_bytes(inner, policy=email.policy.default)
    parts = list(parsed.iter_attachments())
    assert len(parts) == 1
    assert parts[0].get_content() == blob


def test_a_replaced_subject_travels_inside(pki, gpgsm_home, tmp_path):
    sealed = sealed_ok(pki, PLAIN, "--subject", "Encrypted message")
    assert_wire_form(sealed)
    check_outer(sealed, PLAIN, "enveloped-data", subject="Encrypted message")
    assert b"Plain text" not in sealed
    want = entity_of(PLAIN, subject_inside=True)
    assert want.startswith(b"Subject: Plain text\r\n")
    assert openssl_open(pki, sealed, tmp_path) == want
    assert gpgsm_open(gpgsm_home, sealed, tmp_path) == want


def test_an_expired_certificate_is_refused(pki):
    done = seal(pki, PLAIN, cert=pki.expired())
    assert done.returncode == 2
    assert done.stdout == b""
    assert b"expired on 2020-02-01" in done.stderr


def test_an_untrusted_certificate_is_refused(pki, tmp_path):
    done = subprocess.run([DRIVER, str(pki.cert)], input=PLAIN,
                          capture_output=True, timeout=120)
    assert done.returncode == 2
    assert b"trusted root" in done.stderr
    done = subprocess.run([DRIVER, str(tmp_path / "missing.pem")],
                          input=PLAIN, capture_output=True, timeout=120)
    assert done.returncode == 1


def verify_signed(entity, signer, where):
    """openssl cms -verify over the decrypted entity made a message."""
    path = where / "opened.eml"
    path.write_bytes(b"MIME-Version: 1.0\r\n" + entity)
    done = subprocess.run(["openssl", "cms", "-verify", "-in", path,
                           "-CAfile", signer, "-purpose", "smimesign",
                           "-out", where / "content.eml"],
                          capture_output=True, timeout=120)
    return done.returncode, done.stderr.decode(errors="replace")


@pytest.mark.parametrize("case,name", [
    ("BR-023", "signed-original.eml"),
    ("BR-025", "signed-lf-converted-to-crlf.eml"),
    ("BR-025", "signed-lf-only.eml"),
])
@pytest.mark.parametrize("gcm", [False, True], ids=["cbc", "gcm"])
def test_a_signed_message_stays_verifiable_inside(pki, tmp_path, case, name,
                                                  gcm):
    """A multipart/signed entity must come out byte-identical, so that its
    signature still verifies; a message with bare LF is made CRLF first,
    which leaves the CRLF-signed entity alone (BR-025)."""
    original = (CASES / case / name).read_bytes()
    sealed = sealed_ok(pki, original, *(["--gcm"] if gcm else []))
    assert_wire_form(sealed)
    inner = openssl_open(pki, sealed, tmp_path)
    want = entity_of(original.replace(b"\r\n", b"\n").replace(b"\n",
                                                              b"\r\n"))
    assert inner == want
    assert inner.startswith(b"Content-Type: multipart/signed;")
    status, why = verify_signed(inner, CASES / case / "signer-cert.pem",
                                tmp_path)
    assert status == 0, why
