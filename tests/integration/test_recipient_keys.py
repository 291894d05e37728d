"""The directory of recipients' keys: "sealpost keys import|list|remove".

Certificates are made with the openssl command and OpenPGP keys with gpg
(the fixtures of test_seal_smime and test_seal_pgp), then:

- a certificate chained to the test CA (--ca) is stored for the address
  it names; without --ca it is refused as untrusted, and nothing is
  stored;
- an expired certificate, a revoked OpenPGP key and a sign-only one are
  refused with their reason;
- --address must be an address the key names; --domain makes a domain's
  default;
- the same key twice for an address is refused;
- list shows what is stored (JSON and table); remove takes one key by
  fingerprint, or all of an address's;
- /api/v1/recipient-keys does the same over HTTP, with the keys scope.
"""
import base64
import json
import subprocess

import pytest

from conftest import SEALPOST
from smtpd import Sealpostd
from test_events import api
from test_seal_pgp import keys  # noqa: F401 (a fixture)
from test_seal_smime import pki  # noqa: F401 (a fixture)


def sealpost(data_dir, *args):
    return subprocess.run([SEALPOST, "--data-dir", str(data_dir),
                           *map(str, args)], capture_output=True, timeout=60)


def listed(data_dir, *args):
    done = sealpost(data_dir, "keys", "list", "--json", *args)
    assert done.returncode in (0, 1), done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_a_certificate_is_checked_then_stored(pki, tmp_path):  # noqa: F811
    untrusted = sealpost(tmp_path, "keys", "import", pki.cert)
    assert untrusted.returncode == 1
    assert b"refused" in untrusted.stderr
    assert listed(tmp_path) == []

    done = sealpost(tmp_path, "keys", "import", "--ca", pki.ca, pki.cert)
    assert done.returncode == 0, done.stderr
    assert b"stored smime key" in done.stdout
    (key,) = listed(tmp_path)
    assert key["address"] == "alice@example.org"
    assert key["method"] == "smime" and not key["expired"]
    assert len(key["fingerprint"]) == 64

    again = sealpost(tmp_path, "keys", "import", "--ca", pki.ca, pki.cert)
    assert again.returncode == 1 and b"already has" in again.stderr

    expired = sealpost(tmp_path, "keys", "import", "--ca", pki.ca,
                       pki.expired())
    assert expired.returncode == 1 and b"expired" in expired.stderr


def test_address_and_domain(pki, tmp_path):  # noqa: F811
    wrong = sealpost(tmp_path, "keys", "import", "--ca", pki.ca,
                     "--address", "bob@example.org", pki.cert)
    assert wrong.returncode == 1
    assert b"does not name bob@example.org" in wrong.stderr

    done = sealpost(tmp_path, "keys", "import", "--ca", pki.ca,
                    "--domain", "example.org", pki.cert)
    assert done.returncode == 0, done.stderr
    assert [k["address"] for k in listed(tmp_path)] == ["@example.org"]
    table = sealpost(tmp_path, "keys", "list").stdout.decode()
    assert "@example.org" in table and "smime" in table


def test_openpgp_keys(keys, tmp_path):  # noqa: F811
    for name, armored in (("rsa", True), ("cv25519", False)):
        done = sealpost(tmp_path, "keys", "import",
                        keys.export(name, armored))
        assert done.returncode == 0, done.stderr
    stored = listed(tmp_path)
    assert sorted(k["address"] for k in stored) == ["rsa@example.com",
                                                    "t@example.com"]
    assert {k["fingerprint"] for k in stored} == {keys.fpr["rsa"],
                                                  keys.fpr["cv25519"]}

    for name, reason in (("revoked", b"revoked"), ("signer", b"encrypt"),
                         ("expired", b"expired")):
        done = sealpost(tmp_path, "keys", "import", keys.export(name, True))
        assert done.returncode == 1, (name, done.stdout)
        assert reason in done.stderr, (name, done.stderr)
    assert len(listed(tmp_path)) == 2

    removed = sealpost(tmp_path, "keys", "remove", "rsa@example.com",
                       keys.fpr["rsa"].lower())
    assert removed.returncode == 0, removed.stderr
    assert [k["address"] for k in listed(tmp_path)] == ["t@example.com"]
    assert sealpost(tmp_path, "keys", "remove",
                    "rsa@example.com").returncode == 1
    assert sealpost(tmp_path, "keys", "remove",
                    "T@Example.com").returncode == 0
    assert listed(tmp_path) == []


@pytest.mark.parametrize("args", [[], ["--address", "x"], ["a", "b"],
                                  ["--address", "a@b", "--domain", "b",
                                   "f"]])
def test_usage(tmp_path, args):
    assert sealpost(tmp_path, "keys", "import", *args).returncode == 2


def test_keys_over_the_http_api(keys, tmp_path):  # noqa: F811
    """POST checks, then stores; GET lists; DELETE removes; the keys scope
    is needed; a refused key is a 422 with the reason."""
    server = Sealpostd(tmp_path)
    with server:
        admin = server.sealpost("apikey", "create", "--name", "admin",
                                "--scope", "keys").stdout.decode().strip()
        sender = server.sealpost("apikey", "create",
                                 "--name", "app").stdout.decode().strip()
        armored = keys.export("rsa", True).read_text()
        binary = base64.b64encode(
            keys.export("cv25519", False).read_bytes()).decode()

        code, body = api(server, "/api/v1/recipient-keys", sender, "POST",
                         {"key": armored})
        assert code == 403, body

        code, body = api(server, "/api/v1/recipient-keys", admin, "POST",
                         {"key": armored})
        assert code == 200, body
        (stored,) = body["results"]
        assert stored["address"] == "rsa@example.com"
        assert stored["method"] == "pgp"
        assert stored["fingerprint"] == keys.fpr["rsa"]

        code, body = api(server, "/api/v1/recipient-keys", admin, "POST",
                         {"key": armored})
        assert code == 409, body

        code, body = api(server, "/api/v1/recipient-keys", admin, "POST",
                         {"key_base64": binary, "domain": "example.com"})
        assert code == 200, body
        assert body["results"][0]["address"] == "@example.com"

        for payload, words in (
                ({"key": keys.export("revoked", True).read_text()},
                 "revoked"),
                ({"key": armored, "address": "bob@example.com"},
                 "does not name"),
                ({"key": "not a key"}, "neither"),
                ({"key": armored, "key_base64": binary}, "one of")):
            code, body = api(server, "/api/v1/recipient-keys", admin,
                             "POST", payload)
            assert code == 422, (payload, body)
            assert words in json.dumps(body), (words, body)

        code, body = api(server, "/api/v1/recipient-keys", admin)
        assert code == 200
        assert sorted(k["address"] for k in body["results"]) == \
            ["@example.com", "rsa@example.com"]
        code, body = api(server,
                         "/api/v1/recipient-keys?address=RSA@example.com",
                         admin)
        assert [k["address"] for k in body["results"]] == \
            ["rsa@example.com"]

        code, _ = api(server, "/api/v1/recipient-keys/rsa@example.com",
                      admin, "DELETE")
        assert code == 204
        code, _ = api(server, "/api/v1/recipient-keys/rsa@example.com",
                      admin, "DELETE")
        assert code == 404
        assert [k["address"] for k in listed(server.data_dir)] == \
            ["@example.com"]


def test_many_and_malformed_addresses(pki, tmp_path):  # noqa: F811
    """A certificate naming more addresses than are stored at once is
    taken only for one --address; addresses that are not local@domain
    (no '@', a space, a line break) are dropped, not stored."""
    sans = ",".join(f"email:u{n}@example.org" for n in range(40))
    bad = "email:no-at-sign,email:two words@example.org,email:ok@example.org"
    made = {}
    for name, san in (("many", sans), ("bad", bad)):
        (tmp_path / f"{name}.cnf").write_text(
            "basicConstraints = critical, CA:FALSE\n"
            "keyUsage = critical, keyEncipherment\n"
            "extendedKeyUsage = emailProtection\n"
            f"subjectAltName = {san}\n")
        subprocess.run(["openssl", "x509", "-req", "-in",
                        str(pki.dir / "alice.csr"), "-CA", str(pki.ca),
                        "-CAkey", str(pki.dir / "ca.key"), "-set_serial",
                        str(len(made) + 50), "-days", "30", "-extfile",
                        str(tmp_path / f"{name}.cnf"), "-out",
                        str(tmp_path / f"{name}.pem")],
                       check=True, capture_output=True)
        made[name] = tmp_path / f"{name}.pem"

    refused = sealpost(tmp_path / "d", "keys", "import", "--ca", pki.ca,
                       made["many"])
    assert refused.returncode == 1 and b"give --address" in refused.stderr
    done = sealpost(tmp_path / "d", "keys", "import", "--ca", pki.ca,
                    "--address", "u7@example.org", made["many"])
    assert done.returncode == 0, done.stderr
    done = sealpost(tmp_path / "d", "keys", "import", "--ca", pki.ca,
                    made["bad"])
    assert done.returncode == 0, done.stderr
    assert sorted(k["address"] for k in listed(tmp_path / "d")) == \
        ["ok@example.org", "u7@example.org"]
