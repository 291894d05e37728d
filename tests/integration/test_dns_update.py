"""sealpost's dynamic updates: "sealpost dns update" against a real BIND.

BIND (dnsauth.Bind, on a free loopback port) serves example.com and takes
updates signed with its TSIG key.  sealpost publishes a DKIM record with
an RSA-2048 key, longer than one 255-octet string, replaces it, revokes
it and deletes it; dig, a raw TCP query and sealpost's own verifier
(libunbound through --resolver) read the results back.  The server must
refuse a wrong secret, an unknown key, an unsigned update, a zone it does
not serve and a name outside the zone, and sealpost must say so with the
RCODE, exit 3 and leave the record as it was.  Small fake servers stand
in for a server that never answers and for answers that cannot be
trusted (unsigned, or signed with a wrong MAC).
"""
import base64
import json
import re
import secrets
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import sealpost
from dnsauth import Bind, RCODE_NOERROR, RCODE_NXDOMAIN

ZONE = "example.com"
KEEP = "keep._domainkey.example.com"
KEEP_VALUE = ("v=DKIM1; k=ed25519; "
              "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
# The client's whole budget for one exchange, in seconds (update.c).
UPDATE_TIMEOUT = 5


def spki_base64(pem):
    der = subprocess.run(["openssl", "pkey", "-in", str(pem), "-pubout",
                          "-outform", "DER"], capture_output=True,
                         check=True).stdout
    return base64.b64encode(der).decode()


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory):
    """A fresh RSA-2048 key and its DKIM record (over 255 octets)."""
    work = tmp_path_factory.mktemp("dns-update-keys")
    pem = work / "rsa2048.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", str(pem)],
                   check=True, capture_output=True)
    record = f"v=DKIM1; k=rsa; p={spki_base64(pem)}"
    assert len(record.encode()) > 255
    return pem, record


@pytest.fixture(scope="module")
def bind():
    with Bind({ZONE: {"keep._domainkey": KEEP_VALUE}}) as running:
        yield running


@pytest.fixture(scope="module")
def tsig_file(bind, tmp_path_factory):
    path = tmp_path_factory.mktemp("dns-update-tsig") / "update.tsig"
    path.write_text(bind.tsig + "\n")
    path.chmod(0o600)
    return path


def update(bind, name, *args, tsig=None, tsig_file=None, zone=ZONE,
           server=None):
    """Run "sealpost dns update"; returns (status, stdout, stderr)."""
    argv = ["dns", "update", "--server", server or bind.server(),
            "--zone", zone]
    if tsig is not None:
        argv += ["--tsig", tsig]
    if tsig_file is not None:
        argv += ["--tsig-file", tsig_file]
    done = sealpost(*argv, name, *args, timeout=60)
    return (done.returncode, done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"))


def dig_ttl(bind, name):
    answer = bind.dig("+noall", "+answer", name, "TXT").split()
    assert answer[0] == name + "." and answer[3] == "TXT", answer
    return int(answer[1])


def sign(tmp, selector, key):
    message = (b"From: Alice <alice@example.com>\n"
               b"To: bob@example.net\n"
               b"Subject: key rotation\n"
               b"Date: Tue, 14 Nov 2023 22:13:20 +0000\n"
               b"\n"
               b"Signed with a key published by dynamic update.\n")
    done = sealpost("dkim", "sign", "--fix-eol", "--domain", ZONE,
                    "--selector", selector, "--key", key, stdin=message)
    assert done.returncode == 0, done.stderr
    out = tmp / f"{selector}.eml"
    out.write_bytes(done.stdout)
    return out


def verify(bind, path):
    done = sealpost("dkim", "verify", "--json", "--resolver", bind.server(),
                    path, timeout=120)
    report = json.loads(done.stdout)
    assert len(report["signatures"]) == 1, report
    sig = report["signatures"][0]
    return sig["status"], sig["reason"]


def assert_kept(bind):
    """The record that refused updates tried to change is still there."""
    assert bind.txt_values(KEEP) == [KEEP_VALUE]


# ------------------------------------------------------------------------
# The fixture itself


def test_fixture_serves_zone_and_takes_its_own_updates(bind):
    rcode, records = bind.query_txt(KEEP)
    assert rcode == RCODE_NOERROR
    assert records == [[KEEP_VALUE.encode()]]
    name = "fixture.example.com"
    bind.add_txt(name, "one")
    bind.add_txt(name, "two", ttl=120)
    assert bind.txt_values(name) == ["one", "two"]
    bind.remove(name, "TXT")
    assert bind.query_txt(name) == (RCODE_NXDOMAIN, [])


def test_fixture_splits_long_initial_records_into_strings(rsa_key):
    _, record = rsa_key
    with Bind({"example.org": {"long": record},
               "example.net": [("@", "TXT", ["a", "b"])]}) as other:
        _, records = other.query_txt("long.example.org")
        assert [len(s) for s in records[0]] == [255, len(record) - 255]
        assert b"".join(records[0]).decode() == record
        assert other.query_txt("example.net")[1] == [[b"a", b"b"]]
        assert other.tsig == (f"hmac-sha256:{other.key_name}:"
                              f"{other.secret}")
        assert len(base64.b64decode(other.secret, validate=True)) == 32
        workdir = other.dir
        assert (workdir / "named.pid").exists()
    assert not workdir.exists()


# ------------------------------------------------------------------------
# Publishing, replacing, revoking, deleting


def test_publishes_a_long_rsa_record_in_255_octet_strings(bind, rsa_key,
                                                          tsig_file):
    _, record = rsa_key
    name = "pub._domainkey.example.com"
    status, out, err = update(bind, name, "--txt", record, "--ttl", "600",
                              tsig_file=tsig_file)
    assert (status, err) == (0, ""), err
    assert out == f"{name}: TXT published\n"

    rcode, records = bind.query_txt(name)
    assert rcode == RCODE_NOERROR and len(records) == 1
    assert records[0] == [record[:255].encode(), record[255:].encode()]
    assert bind.dig("+short", name, "TXT").strip() == \
        f'"{record[:255]}" "{record[255:]}"'
    assert dig_ttl(bind, name) == 600


def test_replacing_leaves_exactly_the_new_record(bind, tsig_file):
    name = "swap._domainkey.example.com"
    bind.add_txt(name, "v=DKIM1; p=first")
    bind.add_txt(name, "v=DKIM1; p=second")
    assert len(bind.txt_values(name)) == 2
    status, _, err = update(bind, name, "--txt", "v=DKIM1; p=third",
                            tsig_file=tsig_file)
    assert status == 0, err
    assert bind.txt_values(name) == ["v=DKIM1; p=third"]
    assert dig_ttl(bind, name) == 3600


def test_delete_removes_the_txt_rrset_and_is_idempotent(bind, tsig_file):
    name = "gone._domainkey.example.com"
    bind.add_txt(name, "v=DKIM1; p=old")
    assert bind.txt_values(name) == ["v=DKIM1; p=old"]
    status, out, err = update(bind, name, "--delete", tsig_file=tsig_file)
    assert (status, out) == (0, f"{name}: TXT deleted\n"), err
    assert bind.query_txt(name) == (RCODE_NXDOMAIN, [])
    status, _, err = update(bind, name, "--delete", tsig_file=tsig_file)
    assert status == 0, err


def test_rotation_publish_verify_revoke_delete(bind, rsa_key, tmp):
    """The DKIM lifecycle a rotation walks, seen by sealpost's verifier."""
    pem, record = rsa_key
    name = "rot._domainkey.example.com"
    signed = sign(tmp, "rot", pem)
    assert verify(bind, signed) == ("permerror", "no_key")

    status, _, err = update(bind, name, "--txt", record, tsig=bind.tsig)
    assert status == 0, err
    assert verify(bind, signed) == ("pass", "ok")

    status, _, err = update(bind, name, "--txt", "v=DKIM1; k=rsa; p=",
                            tsig=bind.tsig)
    assert status == 0, err
    assert verify(bind, signed) == ("permerror", "key_revoked")

    status, _, err = update(bind, name, "--delete", tsig=bind.tsig)
    assert status == 0, err
    assert verify(bind, signed) == ("permerror", "no_key")


def test_hmac_sha512_keys_sign_updates(rsa_key):
    _, record = rsa_key
    with Bind({ZONE: {}}, algorithm="hmac-sha512") as other:
        assert other.tsig.startswith("hmac-sha512:")
        name = "k512._domainkey.example.com"
        status, _, err = update(other, name, "--txt", record,
                                tsig=other.tsig)
        assert status == 0, err
        assert other.txt_values(name) == [record]


# ------------------------------------------------------------------------
# Refusals by the server


def test_wrong_secret_is_refused_as_tsig_notauth(bind):
    wrong = base64.b64encode(secrets.token_bytes(32)).decode()
    status, out, err = update(bind, KEEP, "--txt", "v=DKIM1; p=evil",
                              tsig=f"hmac-sha256:{bind.key_name}:{wrong}")
    assert status == 3 and out == ""
    assert "NOTAUTH" in err and "TSIG rejected (BADSIG" in err, err
    assert wrong not in err and bind.secret not in err
    assert_kept(bind)


def test_unknown_key_name_is_refused_as_badkey(bind):
    status, _, err = update(bind, KEEP, "--txt", "v=DKIM1; p=evil",
                            tsig=f"hmac-sha256:nobody:{bind.secret}")
    assert status == 3
    assert "NOTAUTH" in err and "BADKEY, key nobody" in err, err
    assert bind.secret not in err
    assert_kept(bind)


def test_unsigned_update_is_refused(bind):
    status, _, err = update(bind, KEEP, "--txt", "v=DKIM1; p=evil")
    assert status == 3
    assert "REFUSED" in err and "allow-update" in err, err
    assert_kept(bind)


def test_zone_the_server_does_not_serve_is_refused(bind, tsig_file):
    status, _, err = update(bind, "sel._domainkey.example.net", "--txt",
                            "v=DKIM1; p=", zone="example.net",
                            tsig_file=tsig_file)
    assert status == 3
    assert "NOTAUTH" in err and "not authoritative" in err, err
    assert "zone example.net" in err


def test_name_outside_the_zone_is_notzone(bind, tsig_file):
    status, _, err = update(bind, "sel._domainkey.example.org", "--txt",
                            "v=DKIM1; p=", tsig_file=tsig_file)
    assert status == 3
    assert "NOTZONE" in err, err


# ------------------------------------------------------------------------
# Servers that do not answer, or answer what cannot be trusted


def test_silent_server_times_out_with_a_clear_message():
    with socket.socket() as listener:
        # Connections complete in the kernel's backlog; nothing reads.
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        start = time.monotonic()
        status, _, err = update(None, KEEP, "--txt", "v=DKIM1; p=",
                                server=f"127.0.0.1@{port}")
        elapsed = time.monotonic() - start
    assert status == 3
    assert f"127.0.0.1 port {port} did not answer within " \
           f"{UPDATE_TIMEOUT} seconds (timeout)" in err, err
    assert UPDATE_TIMEOUT - 0.5 <= elapsed < UPDATE_TIMEOUT + 10


def test_closed_port_is_reported_as_refused_connection():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    status, _, err = update(None, KEEP, "--txt", "v=DKIM1; p=",
                            server=f"127.0.0.1@{port}")
    assert status == 3
    assert "refused the connection" in err, err


def _name(text):
    out = b""
    for label in text.strip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def _skip_name(packet, pos):
    while packet[pos] != 0:
        if packet[pos] & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + packet[pos]
    return pos + 1


def _forged_tsig(key_name):
    """A TSIG RR with the right shape and a MAC made of random bytes."""
    mac = secrets.token_bytes(32)
    rdata = (_name("hmac-sha256") + struct.pack("!HIH", 0, int(time.time()),
                                                300) +
             struct.pack("!H", len(mac)) + mac + struct.pack("!HHH", 0, 0, 0))
    return (_name(key_name) + struct.pack("!HHIH", 250, 255, 0, len(rdata)) +
            rdata)


def _fake_server(answer_tsig):
    """A one-shot TCP server answering NOERROR to an UPDATE.

    answer_tsig(query) gives the TSIG RR to append, or b"" for none.
    Returns (port, thread, queries seen).
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    seen = []

    def serve():
        with listener:
            listener.settimeout(20)
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(10)
                length = struct.unpack("!H", conn.recv(2, socket.MSG_WAITALL))
                query = conn.recv(length[0], socket.MSG_WAITALL)
                seen.append(query)
                zone_end = _skip_name(query, 12) + 4
                tsig = answer_tsig(query)
                header = struct.pack("!HHHHHH", struct.unpack(
                    "!H", query[:2])[0], 0xA800, 1, 0, 0, 1 if tsig else 0)
                answer = header + query[12:zone_end] + tsig
                conn.sendall(struct.pack("!H", len(answer)) + answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread, seen


@pytest.mark.parametrize("forged,expected", [
    (False, "without TSIG"),
    (True, "fails TSIG verification"),
])
def test_success_answers_that_cannot_be_trusted_are_refused(forged,
                                                            expected):
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    port, thread, seen = _fake_server(
        (lambda query: _forged_tsig("k1")) if forged else (lambda q: b""))
    status, _, err = update(None, KEEP, "--txt", "v=DKIM1; p=",
                            tsig=f"hmac-sha256:k1:{key}",
                            server=f"127.0.0.1@{port}")
    thread.join(timeout=30)
    assert len(seen) == 1
    # The query was an UPDATE (opcode 5), signed: a TSIG RR ends it.
    assert (seen[0][2] >> 3) & 0x0F == 5
    assert b"\x0bhmac-sha256\x00" in seen[0]
    assert status == 3
    assert expected in err, err
    assert key not in err


# ------------------------------------------------------------------------
# What is refused before anything is sent


@pytest.mark.parametrize("args,tsig,words", [
    (["--server", "127.0.0.1@99999"], None, "port after '@'"),
    (["--server", "127.0.0.1@53x"], None, "port after '@'"),
    (["--server", "localhost@53"], None, "not an IPv4 or IPv6 address"),
    ([], "hmac-md5:k:c2VjcmV0", "hmac-md5\": not accepted (RFC 8945"),
    ([], "hmac-sha384:k:c2VjcmV0", "libldns cannot sign with it"),
    ([], "hmac-sha256:c2VjcmV0", "expected ALGORITHM:NAME:SECRET"),
    ([], "hmac-sha256:k:Zm9v!!notbase64!!", "TSIG secret: not base64"),
    ([], "hmac-sha256::c2VjcmV0", "TSIG key name: empty"),
    (["--delete"], None, "--txt and --delete exclude each other"),
    (["--ttl", "-5"], None, "--ttl: seconds"),
    (["--ttl", "2147483648"], None, "--ttl: seconds"),
])
def test_unusable_options_are_usage_errors(bind, args, tsig, words):
    argv = ["dns", "update", "--server", bind.server(), "--zone", ZONE]
    if tsig is not None:
        argv += ["--tsig", tsig]
    done = sealpost(*argv, KEEP, "--txt", "v=DKIM1; p=evil", *args)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert words in err, err
    if tsig is not None:
        assert tsig.rsplit(":", 1)[-1] not in err
    assert_kept(bind)


@pytest.mark.parametrize("argv,words", [
    (["--zone", ZONE, KEEP, "--txt", "x"], "--server is required"),
    (["--server", "127.0.0.1", KEEP, "--txt", "x"], "--zone is required"),
    (["--server", "127.0.0.1", "--zone", ZONE, "--txt", "x"],
     "one NAME expected"),
    (["--server", "127.0.0.1", "--zone", ZONE, KEEP],
     "--txt or --delete is required"),
    (["--server", "127.0.0.1", "--zone", ZONE, KEEP, "--delete", "--ttl",
      "60"], "--ttl goes with --txt"),
    (["--server", "127.0.0.1", "--zone", ZONE, "--tsig", "", KEEP,
      "--delete"], "--tsig is empty"),
    (["--server", "127.0.0.1", "--zone", ZONE, "--tsig", "a:b:c",
      "--tsig", "a:b:c", KEEP, "--delete"], "one --tsig or --tsig-file"),
    (["--server", "127.0.0.1", "--zone", "bad..zone", KEEP, "--delete"],
     "zone \"bad..zone\": not a domain name"),
])
def test_missing_or_conflicting_options_are_usage_errors(argv, words):
    done = sealpost("dns", "update", *argv)
    assert done.returncode == 2
    assert words in done.stderr.decode(), done.stderr


def test_value_too_long_for_one_update_is_refused(bind):
    status, _, err = update(bind, KEEP, "--txt", "p" * 8193,
                            tsig=bind.tsig)
    assert status == 2
    assert "8193 octets, more than the 8192" in err, err
    assert_kept(bind)


def test_empty_tsig_file_is_refused_not_sent_unsigned(bind, tmp):
    empty = tmp / "empty.tsig"
    empty.write_text("\n  \n")
    status, _, err = update(bind, KEEP, "--txt", "v=DKIM1; p=evil",
                            tsig_file=empty)
    assert status == 2
    assert "holds no key" in err, err
    assert_kept(bind)


def test_secret_in_a_tsig_file_is_never_printed(bind, tmp):
    secret = base64.b64encode(secrets.token_bytes(32)).decode()
    path = tmp / "wrong.tsig"
    path.write_text(f"hmac-sha256:{bind.key_name}:{secret}\n")
    status, out, err = update(bind, KEEP, "--txt", "v=DKIM1; p=evil",
                              tsig_file=path)
    assert status == 3 and "BADSIG" in err, err
    assert secret not in out + err
    assert re.search(r"[A-Za-z0-9+/]{40,}", err) is None, err
    assert_kept(bind)


def test_help_describes_the_command():
    done = sealpost("dns", "update", "--help")
    assert done.returncode == 0
    assert done.stdout.startswith(b"usage: sealpost dns update --server")
