"""DKIM interoperability with two independent implementations, both ways.

Over more than fifty varied messages (the DKIM corpora of Mail::DKIM,
dkimpy and RFC 8463 under tests/data/corpus/dkim, and the email test
messages of Python's standard library), with a fresh RSA-2048 key and a
fresh Ed25519 key, under all four canonicalization pairs:

  - what sealpost signs with both keys at once, dkimpy verifies: both
    signatures;
  - sealpost's RSA signature, OpenDKIM's opendkim-testmsg verifies,
    fetching the key over real DNS (dnsmasq in a private network
    namespace);
  - what dkimpy signs, RSA and Ed25519, "sealpost dkim verify" passes.

Messages that sealpost must refuse to sign (no From field or several, a
header line that is not a field) are refused with exit status 1 and a
message, and are not counted.  OpenDKIM judges no signature of a message
whose header breaks RFC 5322's field counts (no Date, two Date fields), as
its verdict on the unsigned message shows; those are left out of its
count.  Under simple header canonicalization OpenDKIM hashes the last
field of a message that has no empty line after its header unlike dkimpy
and sealpost; there its verdict must match its verdict on dkimpy's
signature, and the message must pass once the empty line is written.

Each direction has negative controls: a changed body fails in every
verifier, so a verifier that passed everything would not go unnoticed.
"""
import base64
import concurrent.futures
import json
import os
import pathlib
import re
import shutil
import subprocess

import dkim
import pytest

from conftest import CORPUS, sealpost
from dnsserver import NamespaceError, run_in_namespace, txt_strings

STDLIB_EMAIL = pathlib.Path("/usr/lib/python3.11/test/test_email/data")
OPENDKIM_TESTMSG = "/usr/sbin/opendkim-testmsg"
DOMAIN = "example.com"
CANONS = ["simple/simple", "simple/relaxed", "relaxed/simple",
          "relaxed/relaxed"]
MIN_SIGNED = 50
WORKERS = max(2, os.cpu_count() or 2)
# A signature that will not pass here because nothing publishes its key.
UNSERVED = "unserved"


# ------------------------------------------------------------------------
# The messages

def message_paths():
    """Every message of the corpora, as (id, path)."""
    groups = [
        ("mail-dkim", sorted((CORPUS / "mail-dkim" / "corpus").glob("*.txt"))),
        ("dkimpy", sorted((CORPUS / "dkimpy").glob("*.msg")) +
         sorted((CORPUS / "dkimpy").glob("*.message"))),
        ("rfc8463", [CORPUS / "rfc8463" / "signed.eml"]),
        ("stdlib", sorted(STDLIB_EMAIL.glob("msg_*.txt"))),
    ]
    return [(f"{group}/{path.name}", path)
            for group, paths in groups for path in paths]


def signature_tags(message):
    """The tags of each DKIM-Signature field of message, top down."""
    found = []
    for field in split_header(message)[0]:
        if not field.lower().startswith(b"dkim-signature:"):
            continue
        value = field.split(b":", 1)[1]
        unfolded = re.sub(rb"\s+", b"", value).decode(errors="replace")
        found.append(dict(tag.split("=", 1)
                          for tag in unfolded.split(";") if "=" in tag))
    return found


def split_header(message):
    """(fields, rest): each header field with its continuation lines, then
    everything from the empty line that ends the header on."""
    lines = message.splitlines(keepends=True)
    fields = []
    for number, line in enumerate(lines):
        if line in (b"\n", b"\r\n"):
            return fields, b"".join(lines[number:])
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields, b""


def without_signatures(message, keep=None):
    """message without its DKIM-Signature fields, but the one whose s= is
    keep."""
    fields, rest = split_header(message)
    kept = [field for field in fields
            if not field.lower().startswith(b"dkim-signature:") or
            (keep is not None and signature_tags(field)[0]["s"] == keep)]
    return b"".join(kept) + rest


def prepare(raw):
    """The message to sign: mbox envelope line and DKIM signatures gone.

    A leading "From " line separates messages in an mbox file and is no
    part of the message.  Existing DKIM-Signature fields are removed so
    that each verifier judges only the signatures made here.
    """
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
    return without_signatures(raw)


def header_lines(message):
    """The lines of the header section, without their line endings."""
    lines = []
    for line in message.splitlines():
        if line == b"":
            break
        lines.append(line)
    return lines


FIELD = re.compile(rb"^[\x21-\x39\x3b-\x7e]+:")


def refusal_reason(message):
    """Why sealpost must refuse to sign message, or None if it must sign.

    RFC 5322 requires exactly one From field, which DKIM must sign, and a
    header line that neither starts a "name:" field nor continues one is
    not a header at all.
    """
    from_count = 0
    for line in header_lines(message):
        if line[:1] in (b" ", b"\t"):
            continue
        if not FIELD.match(line):
            return "not a header field"
        if line.lower().startswith(b"from:"):
            from_count += 1
    if from_count != 1:
        return f"{from_count} From fields"
    return None


def to_crlf(message):
    """Every line ending, bare CR and bare LF included, as CRLF."""
    return re.sub(rb"\r\n|\r|\n", b"\r\n", message)


MESSAGES = [(name, prepare(path.read_bytes()))
            for name, path in message_paths()]
SIGNABLE = [(name, raw) for name, raw in MESSAGES
            if refusal_reason(raw) is None]


def parallel(function, items):
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(function, items))


# ------------------------------------------------------------------------
# Keys and the records that publish them

def openssl(*args):
    return subprocess.run(["openssl", *map(str, args)], capture_output=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Fresh keys in the forms each tool wants, and their TXT records."""
    work = tmp_path_factory.mktemp("keys")
    rsa, ed = work / "rsa.pem", work / "ed.pem"
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
            "rsa_keygen_bits:2048", "-out", rsa)
    openssl("genpkey", "-algorithm", "ED25519", "-out", ed)

    rsa_spki = openssl("pkey", "-in", rsa, "-pubout", "-outform", "DER")
    ed_spki = openssl("pkey", "-in", ed, "-pubout", "-outform", "DER")
    ed_pkcs8 = openssl("pkey", "-in", ed, "-outform", "DER")
    # The raw key and seed are the last 32 octets of their DER forms.
    assert len(ed_spki) == 44 and len(ed_pkcs8) == 48
    records = {
        f"r._domainkey.{DOMAIN}":
            "v=DKIM1; k=rsa; p=" + base64.b64encode(rsa_spki).decode(),
        f"e._domainkey.{DOMAIN}":
            "v=DKIM1; k=ed25519; p=" +
            base64.b64encode(ed_spki[-32:]).decode(),
    }
    dns_file = work / "dns.txt"
    dns_file.write_text("".join(
        f"{name} TXT " + " ".join(f'"{s}"' for s in txt_strings(value)) +
        "\n" for name, value in records.items()))
    return {
        "rsa": rsa,
        "ed": ed,
        # dkimpy reads PKCS#1 PEM for RSA and the base64 seed for Ed25519.
        "rsa_pkcs1": openssl("pkey", "-in", rsa, "-traditional"),
        "ed_seed": base64.b64encode(ed_pkcs8[-32:]),
        "records": records,
        "dns_file": dns_file,
    }


def dnsfunc(records):
    """dkimpy's DNS callback, answering from records."""
    table = {name.lower(): value.encode() for name, value in records.items()}

    def lookup(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return table.get(name.lower().rstrip("."))
    return lookup


# ------------------------------------------------------------------------
# Signing with sealpost

def sealpost_sign(message, canon, *key_args):
    return sealpost("dkim", "sign", "--fix-eol", "--canon", canon,
                    "--domain", DOMAIN, *key_args, stdin=message,
                    timeout=120)


@pytest.fixture(scope="module")
def signed_both(keys):
    """canon -> [(id, CompletedProcess)]: every message, both keys."""
    args = ["--selector", "r", "--key", keys["rsa"],
            "--selector", "e", "--key", keys["ed"]]
    jobs = [(canon, name, raw) for canon in CANONS for name, raw in MESSAGES]
    done = parallel(lambda job: sealpost_sign(job[2], job[0], *args), jobs)
    out = {canon: [] for canon in CANONS}
    for (canon, name, _), result in zip(jobs, done):
        out[canon].append((name, result))
    return out


@pytest.fixture(scope="module")
def signed_rsa(signed_both):
    """canon -> [(id, signed message)]: the signable messages, RSA only.

    sealpost's RSA signature with the Ed25519 one taken away, which it
    does not cover (h= never lists DKIM-Signature).
    """
    signable = {name for name, _ in SIGNABLE}
    out = {}
    for canon in CANONS:
        out[canon] = []
        for name, done in signed_both[canon]:
            if name not in signable:
                continue
            assert done.returncode == 0, (name, done.stderr)
            tags = signature_tags(done.stdout)
            assert "dkim-signature" not in tags[0]["h"].lower().split(":")
            rsa_only = without_signatures(done.stdout, keep="r")
            assert [t["s"] for t in signature_tags(rsa_only)] == ["r"]
            out[canon].append((name, rsa_only))
    return out


def change_body(message):
    """message with one more body line, which every canonicalization sees."""
    return message + b"An added line.\r\n"


# ------------------------------------------------------------------------
# Refusals

def test_the_corpora_hold_enough_varied_messages():
    groups = {name.split("/")[0] for name, _ in MESSAGES}
    assert groups == {"mail-dkim", "dkimpy", "rfc8463", "stdlib"}, \
        f"missing corpora (libpython3.11-testsuite installed?): {groups}"
    assert len(SIGNABLE) >= MIN_SIGNED
    # Both kinds of line ending are among them.
    assert any(b"\r\n" in raw for _, raw in SIGNABLE)
    assert any(b"\r\n" not in raw for _, raw in SIGNABLE)


def test_sealpost_refuses_exactly_the_unsignable_messages(signed_both):
    wrong, refused = [], 0
    for canon in CANONS:
        for (name, raw), (_, done) in zip(MESSAGES, signed_both[canon]):
            reason = refusal_reason(raw)
            if reason is None:
                if done.returncode != 0:
                    wrong.append((canon, name, "refused", done.stderr))
                elif not done.stdout.endswith(to_crlf(raw)):
                    # What follows the signatures is the message as signed.
                    wrong.append((canon, name, "message changed"))
                continue
            refused += 1
            clean = (done.returncode == 1 and done.stdout == b"" and
                     done.stderr.startswith(b"sealpost: message refused: ")
                     and done.stderr.endswith(b"\n"))
            if not clean:
                wrong.append((canon, name, reason, done.returncode,
                              done.stderr))
            elif "From" in reason and b"From field" not in done.stderr:
                wrong.append((canon, name, reason, done.stderr))
    assert wrong == []
    assert refused >= len(CANONS)


def test_sealpost_refuses_corpus_messages_given_a_second_from(keys):
    samples = SIGNABLE[::25]
    assert len(samples) >= 5
    for name, raw in samples:
        two_from = b"From: Mallory <m@example.org>\n" + raw
        assert refusal_reason(two_from) == "2 From fields"
        done = sealpost_sign(two_from, "relaxed/relaxed", "--selector", "r",
                             "--key", keys["rsa"])
        assert (done.returncode, done.stdout) == (1, b""), name
        assert done.stderr.startswith(b"sealpost: message refused: ")
        assert b"2 From fields" in done.stderr, (name, done.stderr)


def test_sealpost_signed_at_least_50_messages_under_each_canon(signed_both):
    for canon in CANONS:
        signed = [name for name, done in signed_both[canon]
                  if done.returncode == 0]
        assert len(signed) >= MIN_SIGNED, (canon, len(signed))


# ------------------------------------------------------------------------
# sealpost signs, dkimpy verifies

def dkimpy_results(message, records):
    """{selector: dkimpy's verdict} for every signature of message.

    The verdict is True or False, or the text of the exception dkimpy
    raised instead of answering (a body hash mismatch, for one).
    """
    lookup = dnsfunc(records)
    checker = dkim.DKIM(message)
    verdicts = {}
    for index, tags in enumerate(signature_tags(message)):
        try:
            verdicts[tags.get("s")] = checker.verify(idx=index,
                                                     dnsfunc=lookup)
        except dkim.DKIMException as exc:
            verdicts[tags.get("s")] = f"exception: {exc}"
    return verdicts


@pytest.mark.parametrize("canon", CANONS)
def test_dkimpy_verifies_both_sealpost_signatures(signed_both, keys, canon):
    checked, failures = 0, []
    for name, done in signed_both[canon]:
        if done.returncode != 0:
            continue
        tags = signature_tags(done.stdout)
        assert [(t["s"], t["a"], t["c"]) for t in tags] == \
            [("r", "rsa-sha256", canon), ("e", "ed25519-sha256", canon)], name
        verdicts = dkimpy_results(done.stdout, keys["records"])
        if verdicts != {"r": True, "e": True}:
            failures.append((name, verdicts))
        checked += 1
    assert failures == []
    assert checked >= MIN_SIGNED


@pytest.mark.parametrize("canon", ["simple/simple", "relaxed/relaxed"])
def test_dkimpy_rejects_sealpost_signatures_after_a_body_change(
        signed_both, keys, canon):
    signed = [done.stdout for _, done in signed_both[canon]
              if done.returncode == 0][:10]
    assert len(signed) == 10
    for message in signed:
        assert dkimpy_results(message, keys["records"]) == \
            {"r": True, "e": True}
        verdicts = dkimpy_results(change_body(message), keys["records"])
        assert sorted(verdicts) == ["e", "r"]
        for verdict in verdicts.values():
            assert verdict is not True
            assert "body hash mismatch" in str(verdict), verdicts


def test_dkimpy_rejects_sealpost_signatures_after_a_from_change(
        signed_both, keys):
    name, done = next((n, d) for n, d in signed_both["relaxed/relaxed"]
                      if d.returncode == 0)
    changed = re.sub(rb"(?im)^from:", b"From: Mallory <m@example.org>\r\n"
                     b"X-Old-From:", done.stdout, count=1)
    assert changed != done.stdout
    assert dkimpy_results(changed, keys["records"]) == \
        {"r": False, "e": False}, name


# ------------------------------------------------------------------------
# sealpost signs, OpenDKIM verifies over real DNS

TESTMSG_LOOP = """
for message in "$1"/*.eml; do
    {testmsg} -C < "$message" > "$message.out" 2>&1
    echo $? > "$message.status"
done
"""
# What opendkim-testmsg says of a message it reads but finds unsigned, and
# of one whose header breaks RFC 5322 (no Date field or two, a From field
# without an address): it judges no signature of those.
OPENDKIM_UNSIGNED = "dkim_chunk(): No signature"
OPENDKIM_UNREADABLE = "dkim_chunk(): Syntax error"


def has_body_separator(message):
    """Whether an empty line ends the header (RFC 5322 makes it optional
    when there is no body)."""
    message = to_crlf(message)
    return message.startswith(b"\r\n") or b"\r\n\r\n" in message


def dkimpy_reference(signed, message, keys):
    """message signed by dkimpy with the key, c= and h= of sealpost's
    signature in signed, to compare what OpenDKIM says of each."""
    tags = signature_tags(signed)[0]
    names = [name.encode() for name in tags["h"].split(":")]
    canonicalize = tuple(tags["c"].encode().split(b"/"))
    return dkim.sign(message, b"r", DOMAIN.encode(), keys["rsa_pkcs1"],
                     canonicalize=canonicalize, include_headers=names) + \
        message


def require_opendkim():
    if not os.access(OPENDKIM_TESTMSG, os.X_OK):
        pytest.fail(f"{OPENDKIM_TESTMSG} is missing: install opendkim-tools")
    if shutil.which("/usr/sbin/dnsmasq") is None:
        pytest.fail("/usr/sbin/dnsmasq is missing: install dnsmasq-base")


def opendkim_testmsg(message):
    """opendkim-testmsg's (exit status, output) for message, without DNS."""
    done = subprocess.run([OPENDKIM_TESTMSG, "-C"], input=message,
                          capture_output=True, timeout=60)
    return done.returncode, (done.stdout + done.stderr).decode(
        errors="replace")


def opendkim_verdicts(keys, messages, workdir):
    """{file name: (exit status, output)} of opendkim-testmsg per message.

    Runs every message through opendkim-testmsg (-C: the messages are
    CRLF already and reach it byte for byte) in one private namespace where
    dnsmasq serves the keys and is the system resolver.
    """
    mail = workdir / "mail"
    mail.mkdir()
    for file_name, message in messages.items():
        (mail / file_name).write_bytes(message)
    script = TESTMSG_LOOP.format(testmsg=OPENDKIM_TESTMSG)
    try:
        done = run_in_namespace(keys["records"],
                                ["sh", "-c", script, "sh", str(mail)],
                                local_zones=[DOMAIN], workdir=workdir)
    except NamespaceError as exc:
        pytest.fail(f"OpenDKIM must be checked over real DNS: {exc}")
    assert done.returncode == 0, done.stderr
    verdicts = {}
    for file_name in messages:
        status = (mail / (file_name + ".status")).read_text().strip()
        output = (mail / (file_name + ".out")).read_text(errors="replace")
        verdicts[file_name] = (int(status), output)
    return verdicts


@pytest.fixture(scope="module")
def opendkim_readable():
    """The ids of the signable messages OpenDKIM reads, judged unsigned."""
    require_opendkim()
    verdicts = parallel(lambda item: opendkim_testmsg(to_crlf(item[1])),
                        SIGNABLE)
    readable, other = set(), []
    for (name, _), (status, output) in zip(SIGNABLE, verdicts):
        if status != 0 and OPENDKIM_UNSIGNED in output:
            readable.add(name)
        elif status == 0 or OPENDKIM_UNREADABLE not in output:
            other.append((name, status, output))
    assert other == []
    return readable


@pytest.fixture(scope="module")
def opendkim_run(signed_rsa, opendkim_readable, keys, tmp_path_factory):
    """OpenDKIM's verdicts on every RSA signature and on the controls.

    Returns ({file: (id, canon)}, {control file: kind}, verdicts).
    """
    messages, controls, files = {}, {}, {}
    raw = dict(SIGNABLE)
    for number, canon in enumerate(CANONS):
        changed = 0
        for index, (name, message) in enumerate(signed_rsa[canon]):
            file_name = f"c{number}-{index:03d}.eml"
            messages[file_name] = (name, canon)
            files[file_name] = message
            if canon.startswith("simple/") and \
                    not has_body_separator(raw[name]):
                files[f"dkimpy-{file_name}"] = dkimpy_reference(
                    message, to_crlf(raw[name]), keys)
                # The same message with the optional empty line written.
                files[f"separated-{file_name}"] = message + b"\r\n"
            if name in opendkim_readable and changed < 5:
                controls[f"changed-{file_name}"] = "changed"
                files[f"changed-{file_name}"] = change_body(message)
                changed += 1
    unserved = sealpost_sign(
        to_crlf(next(raw for name, raw in SIGNABLE
                     if name in opendkim_readable)),
        "relaxed/relaxed", "--selector", UNSERVED, "--key", keys["rsa"])
    assert unserved.returncode == 0
    controls["unserved-selector.eml"] = "unserved"
    files["unserved-selector.eml"] = unserved.stdout
    verdicts = opendkim_verdicts(keys, files,
                                 tmp_path_factory.mktemp("opendkim"))
    return messages, controls, verdicts


def test_opendkim_reads_at_least_50_of_the_messages(opendkim_readable):
    assert len(opendkim_readable) >= MIN_SIGNED


def test_opendkim_verifies_every_sealpost_rsa_signature(opendkim_run,
                                                        opendkim_readable):
    messages, _, verdicts = opendkim_run
    failures, passed = [], 0
    for file_name, (name, canon) in messages.items():
        if f"dkimpy-{file_name}" in verdicts:
            continue
        if name in opendkim_readable:
            if verdicts[file_name] != (0, ""):
                failures.append((name, canon, verdicts[file_name]))
            passed += 1
        elif OPENDKIM_UNREADABLE not in verdicts[file_name][1]:
            # What OpenDKIM cannot read unsigned, it cannot read signed.
            failures.append((name, canon, verdicts[file_name]))
    assert failures == []
    assert passed >= len(CANONS) * MIN_SIGNED


def test_opendkim_judges_header_only_messages_as_dkimpy_and_passes_them(
        opendkim_run, opendkim_readable):
    messages, _, verdicts = opendkim_run
    compared = [(file_name, name) for file_name, (name, _) in
                messages.items() if f"dkimpy-{file_name}" in verdicts]
    assert compared, "the corpora lost their messages with no body"
    for file_name, name in compared:
        if name not in opendkim_readable:
            continue
        ours, reference = verdicts[file_name], verdicts[f"dkimpy-{file_name}"]
        assert ours == reference, (name, file_name, ours, reference)
        assert verdicts[f"separated-{file_name}"] == (0, ""), \
            (name, file_name, verdicts[f"separated-{file_name}"])


def test_opendkim_rejects_sealpost_signatures_after_a_body_change(
        opendkim_run):
    _, controls, verdicts = opendkim_run
    changed = [name for name, kind in controls.items() if kind == "changed"]
    assert len(changed) == 5 * len(CANONS)
    for file_name in changed:
        status, output = verdicts[file_name]
        assert status != 0 and "Bad signature" in output, \
            (file_name, status, output)


def test_opendkim_finds_no_key_for_an_unserved_selector(opendkim_run):
    _, _, verdicts = opendkim_run
    status, output = verdicts["unserved-selector.eml"]
    assert status != 0 and "Key retrieval failed" in output, (status, output)


# ------------------------------------------------------------------------
# dkimpy signs, sealpost verifies

# Every other message names its fields, From twice so that a second From
# added later cannot pass; the rest take dkimpy's default list.
NAMED_FIELDS = [b"from", b"to", b"cc", b"subject", b"date", b"message-id",
                b"mime-version", b"content-type", b"from"]


def dkimpy_sign(message, canon, keys, index):
    fields = NAMED_FIELDS if index % 2 else None
    canonicalize = tuple(canon.encode().split(b"/"))
    rsa = dkim.sign(message, b"r", DOMAIN.encode(), keys["rsa_pkcs1"],
                    canonicalize=canonicalize, include_headers=fields)
    ed = dkim.sign(message, b"e", DOMAIN.encode(), keys["ed_seed"],
                   canonicalize=canonicalize, include_headers=fields,
                   signature_algorithm=b"ed25519-sha256")
    return rsa + ed + message


def sealpost_verdicts(paths, dns_file):
    """(exit status, {path: report}) of one sealpost run over paths."""
    done = sealpost("dkim", "verify", "--json", "--dns-file", dns_file,
                    *paths, timeout=300)
    assert done.stderr == b"", done.stderr.decode(errors="replace")
    reports = [json.loads(line) for line in done.stdout.splitlines()]
    return done.returncode, {report["file"]: report for report in reports}


@pytest.fixture(scope="module")
def dkimpy_signed(keys, tmp_path_factory):
    """canon -> [(id, path)]: the signable messages, signed by dkimpy."""
    out = {}
    for number, canon in enumerate(CANONS):
        work = tmp_path_factory.mktemp(f"dkimpy-{number}")
        out[canon] = []
        for index, (name, raw) in enumerate(SIGNABLE):
            path = work / f"{index:03d}.eml"
            path.write_bytes(dkimpy_sign(to_crlf(raw), canon, keys, index))
            out[canon].append((name, path))
    return out


@pytest.mark.parametrize("canon", CANONS)
def test_sealpost_verifies_dkimpy_rsa_and_ed25519_signatures(
        dkimpy_signed, keys, canon):
    paths = [str(path) for _, path in dkimpy_signed[canon]]
    code, reports = sealpost_verdicts(paths, keys["dns_file"])
    assert sorted(reports) == sorted(paths)
    failures = []
    for name, path in dkimpy_signed[canon]:
        sigs = reports[str(path)]["signatures"]
        seen = [(s["selector"], s["algorithm"], s["canonicalization"],
                 s["status"]) for s in sigs]
        if seen != [("r", "rsa-sha256", canon, "pass"),
                    ("e", "ed25519-sha256", canon, "pass")]:
            failures.append((name, [(s["status"], s["detail"])
                                    for s in sigs]))
    assert failures == []
    assert code == 0
    assert len(paths) >= MIN_SIGNED


@pytest.mark.parametrize("canon", ["simple/simple", "relaxed/relaxed"])
def test_sealpost_rejects_dkimpy_signatures_after_a_body_change(
        dkimpy_signed, keys, canon, tmp):
    paths = []
    for index, (_, path) in enumerate(dkimpy_signed[canon][:10]):
        changed = tmp / f"changed-{index}.eml"
        changed.write_bytes(change_body(path.read_bytes()))
        paths.append(str(changed))
    code, reports = sealpost_verdicts(paths, keys["dns_file"])
    for path in paths:
        sigs = reports[path]["signatures"]
        assert [(s["status"], s["reason"]) for s in sigs] == \
            [("fail", "body_hash")] * 2, (path, sigs)
    assert code == 1
