"""The sealpost command line: options, exit statuses, reports for people
and for scripts, and the Authentication-Results output.

Exit statuses (see the design): 0 success, 1 negative answer, 2 usage or
configuration, 3 runtime failure; dkim verify adds 4 for "no signature".
"""
import json
import os
import pathlib

import pytest

from conftest import CASES, CORPUS, sealpost

SEED = CASES / "keys" / "ed25519-rfc8032-test1.seed.b64"
DNS = CASES / "keys" / "dns-all.txt"
MESSAGE = (b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\n"
           b"Subject: statement\r\n\r\nBalance: 10.00\r\n")


def sign(*extra, message=MESSAGE):
    return sealpost("dkim", "sign", "--domain", "example.com",
                    "--selector", "ed1", "--key", SEED, *extra,
                    stdin=message)


def fields_of(signed):
    """The DKIM-Signature fields, unfolded, as {tag: value} dicts."""
    header = signed.split(b"\r\n\r\n", 1)[0].decode()
    unfolded = header.replace("\r\n\t", " ").replace("\r\n ", " ")
    result = []
    for line in unfolded.split("\r\n"):
        if line.startswith("DKIM-Signature:"):
            tags = {}
            for spec in line.split(":", 1)[1].split(";"):
                if "=" in spec:
                    name, value = spec.split("=", 1)
                    tags[name.strip()] = value.strip()
            result.append(tags)
    return result


def test_help_and_version():
    assert sealpost("--help").returncode == 0
    done = sealpost("version")
    assert done.returncode == 0 and done.stdout.startswith(b"sealpost ")
    for command in (("dkim", "sign"), ("dkim", "verify")):
        done = sealpost(*command, "--help")
        assert done.returncode == 0
        assert b"usage: sealpost " + " ".join(command).encode() in \
            done.stdout


@pytest.mark.parametrize("args", [
    (), ("frobnicate",), ("dkim",), ("dkim", "sign"),
    ("dkim", "sign", "--bogus"), ("dkim", "verify", "--bogus"),
    ("--bogus-global",),
])
def test_usage_errors_exit_2(args):
    done = sealpost(*args, stdin=b"")
    assert done.returncode == 2
    assert b"usage" in done.stderr or b"unknown" in done.stderr


def test_sign_needs_domain_and_selector_before_key():
    done = sealpost("dkim", "sign", "--key", SEED, stdin=MESSAGE)
    assert done.returncode == 2
    assert b"needs --domain and --selector" in done.stderr


def test_unreadable_key_is_a_runtime_failure(tmp):
    done = sign("--selector", "x", "--key", tmp / "missing.pem")
    assert done.returncode == 3
    assert b"missing.pem" in done.stderr


def test_not_a_key_is_a_usage_error(tmp):
    bogus = tmp / "bogus.pem"
    bogus.write_text("hello\n")
    done = sealpost("dkim", "sign", "--domain", "example.com", "--selector",
                    "s", "--key", bogus, stdin=MESSAGE)
    assert done.returncode == 2
    assert b"not a private key" in done.stderr


def test_sign_writes_t_x_and_custom_fields():
    done = sign("--time", "1700000000", "--expire", "90d", "--fields",
                "From,Subject", "--canon", "simple/relaxed",
                "--identity", "billing@example.com")
    assert done.returncode == 0, done.stderr
    (tags,) = fields_of(done.stdout)
    assert tags["t"] == "1700000000"
    assert tags["x"] == str(1700000000 + 90 * 86400)
    assert tags["h"].replace(" ", "") == "from:from:subject:subject"
    assert tags["c"] == "simple/relaxed"
    assert tags["i"] == "billing@example.com"
    assert "l" not in tags
    assert done.stdout.endswith(MESSAGE)


@pytest.mark.parametrize("bad", ["--expire=soon", "--expire=5y",
                                 "--canon=loose", "--canon=relaxed/x"])
def test_sign_rejects_bad_option_values(bad):
    done = sign(bad)
    assert done.returncode == 2


def test_two_keys_need_two_selectors(tmp):
    rsa = tmp / "rsa.pem"
    import subprocess
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", str(rsa)], check=True,
                   capture_output=True)
    same = sealpost("dkim", "sign", "--domain", "example.com", "--selector",
                    "s1", "--key", SEED, "--key", rsa, stdin=MESSAGE)
    assert same.returncode == 2
    assert b"share selector" in same.stderr

    both = sealpost("dkim", "sign", "--domain", "example.com", "--selector",
                    "e1", "--key", SEED, "--selector", "r1", "--key", rsa,
                    stdin=MESSAGE)
    assert both.returncode == 0, both.stderr
    algorithms = [tags["a"] for tags in fields_of(both.stdout)]
    assert algorithms == ["ed25519-sha256", "rsa-sha256"]


def test_1024_bit_key_signs_with_a_warning():
    done = sealpost("dkim", "sign", "--domain", "example.com", "--selector",
                    "rsa1", "--key",
                    CASES / "keys" / "rsa1024-rfc6376-appendixC.private.pem",
                    stdin=MESSAGE)
    assert done.returncode == 0
    assert b"warning" in done.stderr and b"2048" in done.stderr


def test_verify_reads_stdin_and_reports_for_people():
    signed = sign().stdout
    done = sealpost("dkim", "verify", "--dns-file", DNS, stdin=signed)
    assert done.returncode == 0
    text = done.stdout.decode()
    assert "(stdin):" in text
    assert "signature 1: pass" in text
    assert "d=example.com s=ed1 a=ed25519-sha256 key=256" in text
    assert text.rstrip().endswith("result: pass")


def test_verify_json_is_one_object_per_message(tmp):
    signed = tmp / "signed.eml"
    signed.write_bytes(sign().stdout)
    unsigned = tmp / "unsigned.eml"
    unsigned.write_bytes(MESSAGE)
    done = sealpost("dkim", "verify", "--json", "--dns-file", DNS, signed,
                    unsigned)
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 2
    first, second = map(json.loads, lines)
    assert first["result"] == "pass" and first["file"] == str(signed)
    sig = first["signatures"][0]
    assert sig["canonicalization"] == "relaxed/relaxed"
    assert sig["key_bits"] == 256 and sig["body_length"] is None
    assert second["result"] == "none" and second["signatures"] == []
    # The highest status wins: "no signature" (4) over "pass" (0).
    assert done.returncode == 4


def test_verify_exit_status_for_fail_and_dns_failure(tmp):
    signed = sign().stdout
    tampered = tmp / "tampered.eml"
    tampered.write_bytes(signed.replace(b"10.00", b"99.00"))
    done = sealpost("dkim", "verify", "--dns-file", DNS, tampered)
    assert done.returncode == 1
    assert b"body hash mismatch" in done.stdout

    broken = tmp / "dns.txt"
    broken.write_text("ed1._domainkey.example.com TIMEOUT\n")
    good = tmp / "good.eml"
    good.write_bytes(signed)
    done = sealpost("dkim", "verify", "--dns-file", broken, good)
    assert done.returncode == 3
    assert b"temperror" in done.stdout


def test_verify_missing_file_is_a_runtime_failure(tmp):
    done = sealpost("dkim", "verify", "--dns-file", DNS, tmp / "nope.eml")
    assert done.returncode == 3
    assert b"nope.eml" in done.stderr


def test_verify_bad_dns_file_is_a_usage_error(tmp):
    bad = tmp / "dns.txt"
    bad.write_text("name TXT unquoted\n")
    done = sealpost("dkim", "verify", "--dns-file", bad, stdin=MESSAGE)
    assert done.returncode == 2
    assert b"line 1" in done.stderr


def test_add_header_prepends_authentication_results():
    signed = sign().stdout
    done = sealpost("dkim", "verify", "--dns-file", DNS, "--add-header",
                    "--authserv-id", "mx.example.net", stdin=signed)
    assert done.returncode == 0
    assert done.stdout.startswith(
        b"Authentication-Results: mx.example.net;\r\n\tdkim=pass")
    assert b"header.d=example.com header.s=ed1" in done.stdout
    assert done.stdout.endswith(signed)


def test_add_header_takes_one_message(tmp):
    done = sealpost("dkim", "verify", "--add-header", "--dns-file", DNS,
                    tmp / "a", tmp / "b")
    assert done.returncode == 2


def test_lf_files_are_read_as_crlf_unless_raw(tmp):
    lf = tmp / "lf.eml"
    lf.write_bytes(sign().stdout.replace(b"\r\n", b"\n"))
    done = sealpost("dkim", "verify", "--dns-file", DNS, lf)
    assert done.returncode == 0
    assert b"LF line endings read as CRLF" in done.stdout
    done = sealpost("dkim", "verify", "--raw", "--dns-file", DNS, lf)
    assert done.returncode == 1


def test_environment_supplies_global_options(tmp):
    import os
    import subprocess
    from conftest import SEALPOST
    env = dict(os.environ, SEALPOST_DATA_DIR=str(tmp))
    done = subprocess.run([SEALPOST, "version"], env=env,
                          capture_output=True)
    assert done.returncode == 0


def test_corpus_private_key_with_pkcs1_pem_is_accepted():
    done = sealpost("dkim", "sign", "--domain", "example.com", "--selector",
                    "test", "--key", CORPUS / "dkimpy" / "test2.private",
                    stdin=MESSAGE)
    assert done.returncode == 0, done.stderr


def test_config_check_names_each_kind_of_mistake(tmp_path):
    """"config check" takes the shipped configuration, and names the line
    or setting of each mistake with exit status 2."""
    source = pathlib.Path(os.environ.get("SEALPOST_SOURCE", "."))
    done = sealpost("--config", source / "etc" / "sealpost.conf", "config",
                    "check")
    assert done.returncode == 0, done.stderr
    assert b"the configuration is good" in done.stdout
    for text, words in (
            ("data_dir = /tmp/x\nsmtp_lisen = 1\n", b"line 2: unknown "
             b"setting"),
            ("no equals sign\n", b"line 1: expected key = value"),
            ("delivery_rules = example.com connections=2; *.x rate=a/m\n",
             b"delivery_rules"),
            ("delivery_tls = sometimes\n", b"delivery_tls"),
            ("delivery_source = 192.0.2.1,banana\n", b"delivery_source"),
            ("smtp_listen = 127.0.0.1\n", b"smtp_listen"),
            ("http_listen = localhost:80\n", b"http_listen"),
            ("smtp_max_command = 10\n", b"smtp_max_command")):
        path = tmp_path / "bad.conf"
        path.write_text(text)
        done = sealpost("--config", path, "config", "check")
        assert done.returncode == 2, (text, done.stderr)
        assert words in done.stderr, (text, done.stderr)
