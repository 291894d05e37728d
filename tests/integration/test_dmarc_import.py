"""DMARC aggregate report intake: `sealpost dmarc parse` and `dmarc import`.

Every expected value is computed here, independently of sealpost, with
Python's gzip, zlib, zipfile, email and xml.etree modules over the same
files, or taken from the expected parse that travels with the material.

- The parsedmarc sample reports (XML, gzip, zip, whole report mails, a
  malformed and an empty one): every file is read or refused with a
  reason; the empty file is refused as empty.  Where Python can read a
  report, sealpost's report equals it: metadata, published policy, every
  record with its evaluated policy, identifiers and DKIM and SPF results,
  enumerated values in lower case, unknown tokens flagged.  A value with a
  raw '<' is read with repaired markup; bytes that are not UTF-8 are read
  with repaired bytes.
- The mail-auth reports (XML and mails) equal the .json parse beside each.
- The cases from public bug reports: a gzip that holds no XML (bare and in
  a mail) is refused as not XML; decompression bombs are refused by the
  size cap while memory stays far below the inflated size; a DOCTYPE is
  refused without expanding or reading anything; upper-case tokens are
  lower-cased; two DKIM results of one record are both kept.
- `dmarc import` into a fresh data directory: good reports are stored
  while bad ones beside them are refused, a second import of a report is a
  duplicate that stores nothing, and a whole directory accounts for every
  payload that `dmarc parse` finds.
- Hostile inputs made here: truncated gzip streams, a zip member whose
  header understates its size and a gzip past the size cap (both refused
  by the 16 MiB cap, their ratio being harmless), a report cut off between
  records, and a mismatched close tag (refused with its line number).
- Well-formed variations made here (a declared ISO-8859-1 encoding, CDATA,
  character references, comments, a namespace prefix, a BOM or blank
  lines before the document, a streamed zip, gzip header fields and two
  gzip members, a forwarded message/rfc822, a quoted-printable text/xml
  part) are read exactly as Python reads them, with no flag.
- Usage errors exit with status 2.
"""
import base64
import gzip
import io
import json
import os
import pathlib
import quopri
import re
import sqlite3
import subprocess
import tempfile
import zipfile
import xml.etree.ElementTree as ET

import pytest

from conftest import CASES, DATA, SEALPOST
from dmarcfiles import address, is_xml, local, payloads, repair_markup, \
    text

MIB = 1024 * 1024
TIME = "/usr/bin/time"


DMARC = DATA / "corpus" / "dmarc"  # see tests/data/corpus/README.md
PARSEDMARC = DMARC / "parsedmarc"
MAIL_AUTH = DMARC / "mail-auth"

SANITIZER = re.compile(rb"AddressSanitizer|LeakSanitizer|UndefinedBehavior"
                       rb"Sanitizer|runtime error:|Segmentation fault")
LIMIT_WORDS = re.compile(r"limit|cap\b|MiB|too (large|big)|exceed|ratio",
                         re.I)

# The schema's tokens (RFC 7489 appendix C and its dmarc-2.0 revision).
DISPOSITIONS = {"none", "quarantine", "reject", "pass"}
POLICIES = {"none", "quarantine", "reject"}
VERDICTS = {"pass", "fail"}
DKIM_RESULTS = {"none", "pass", "fail", "policy", "neutral", "temperror",
                "permerror"}
SPF_RESULTS = {"none", "neutral", "pass", "fail", "softfail", "temperror",
               "permerror"}
SCOPES = {"helo", "mfrom"}
ALIGNMENTS = {"r", "s"}
TESTING = {"n", "y"}
DISCOVERY = {"psl", "treewalk"}
OVERRIDES = {"forwarded", "sampled_out", "trusted_forwarder",
             "mailing_list", "local_policy", "other", "policy_test_mode"}
FLAGS = {"repaired_markup", "repaired_bytes", "truncated", "unknown_values"}


# ---------------------------------------------------------------------------
# Running sealpost


class Usage:
    """What one run of sealpost cost: peak resident memory in octets and
    CPU seconds."""

    def __init__(self, peak, cpu):
        self.peak = peak
        self.cpu = cpu

    def __repr__(self):
        return f"peak RSS {self.peak / MIB:.1f} MiB, CPU {self.cpu:.2f} s"


def run(*args, timeout=120):
    """Run sealpost and return (exit status, stdout, stderr, Usage).

    sealpost runs under /usr/bin/time, whose own child it is: a child of
    this (large) Python process would be charged the parent's resident
    memory at the fork, which says nothing of sealpost."""
    with tempfile.NamedTemporaryFile() as cost:
        done = subprocess.run([TIME, "-f", "%M %U %S", "-o", cost.name,
                               SEALPOST, *map(str, args)],
                              stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout)
        lines = pathlib.Path(cost.name).read_text().splitlines()
    assert not SANITIZER.search(done.stderr), \
        done.stderr.decode(errors="replace")
    # GNU time notes an exit status or a death by signal before its figures.
    assert not any("signal" in line for line in lines), (lines, done.stderr)
    fields = lines[-1].split()
    assert len(fields) == 3, lines
    usage = Usage(int(fields[0]) * 1024, float(fields[1]) + float(fields[2]))
    return done.returncode, done.stdout, done.stderr, usage


def check_entry(entry):
    """One `dmarc parse --json` line is well formed."""
    assert isinstance(entry.get("file"), str), entry
    assert isinstance(entry.get("part"), str), entry
    assert entry["status"] in ("read", "refused"), entry
    if entry["status"] == "refused":
        assert isinstance(entry.get("reason"), str), entry
        assert entry["reason"].strip(), entry
    else:
        report = entry["report"]
        assert report["format"] in (1, 2), entry
        assert set(report["flags"]) <= FLAGS, report["flags"]
        assert isinstance(report["notes"], list)
        assert isinstance(report["record"], list)
        for key in ("begin", "end"):
            value = report["report_metadata"]["date_range"][key]
            assert value is None or isinstance(value, int), report
        for record in report["record"]:
            assert isinstance(record["row"]["count"], int), record


def parse(*paths):
    """`dmarc parse --json`: (exit status, entries, stderr, rusage)."""
    code, stdout, stderr, usage = run("dmarc", "parse", *paths, "--json")
    assert code in (0, 1), (code, stderr)
    entries = [json.loads(line) for line in stdout.decode().splitlines()
               if line.strip()]
    for entry in entries:
        check_entry(entry)
    read_all = bool(entries) and all(e["status"] == "read" for e in entries)
    assert code == (0 if read_all else 1), (code, entries, stderr)
    return code, entries, stderr, usage


def parse_one(path):
    """The single payload of one file."""
    _, entries, stderr, _ = parse(path)
    assert len(entries) == 1, (entries, stderr)
    assert entries[0]["file"] == str(path)
    return entries[0]


def read_one(path):
    entry = parse_one(path)
    assert entry["status"] == "read", entry
    return entry["report"]


def refused_one(path):
    entry = parse_one(path)
    assert entry["status"] == "refused", entry
    return entry["reason"]


# ---------------------------------------------------------------------------
# Python's own reading of the same files
# (the layers, the markup and the report XML in dmarcfiles)


def xml_root(data):
    """The <feedback> element of a well-formed report, namespaces
    dropped; None when Python cannot read it as one."""
    if data is None or b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        return None
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return None
    namespace = root.tag[1:].split("}")[0] if root.tag[:1] == "{" else None
    for element in root.iter():
        element.tag = local(element.tag)
    if root.tag != "feedback":
        return None
    root.set("{namespace}", namespace or "")
    return root


def number(element, path):
    value = text(element, path)
    return None if value is None else int(value)


class Tokens:
    """Normalizes enumerated values and remembers any outside the schema."""

    def __init__(self):
        self.unknown = []

    def __call__(self, value, allowed):
        if value is None:
            return None
        if value.lower() in allowed:
            return value.lower()
        self.unknown.append(value)
        return value


def python_report(data):
    """What a report holds, read with ElementTree: (summary, unknown
    tokens) or None when Python cannot read data."""
    root = xml_root(data)
    if root is None:
        return None
    token = Tokens()
    meta = "report_metadata/"
    policy = "policy_published/"
    summary = {
        "namespace": root.get("{namespace}"),
        "org_name": text(root, meta + "org_name"),
        "email": text(root, meta + "email"),
        "report_id": text(root, meta + "report_id"),
        "begin": number(root, meta + "date_range/begin"),
        "end": number(root, meta + "date_range/end"),
        "error": [e.text.strip() for e in root.findall(meta + "error")
                  if e.text and e.text.strip()],
        "domain": text(root, policy + "domain"),
        "adkim": token(text(root, policy + "adkim"), ALIGNMENTS),
        "aspf": token(text(root, policy + "aspf"), ALIGNMENTS),
        "p": token(text(root, policy + "p"), POLICIES),
        "sp": token(text(root, policy + "sp"), POLICIES),
        "np": token(text(root, policy + "np"), POLICIES),
        "pct": number(root, policy + "pct"),
        "fo": text(root, policy + "fo"),
        "testing": token(text(root, policy + "testing"), TESTING),
        "discovery_method": token(text(root, policy + "discovery_method"),
                                  DISCOVERY),
        "record": [],
    }
    for record in root.findall("record"):
        evaluated = "row/policy_evaluated/"
        summary["record"].append({
            "source_ip": address(text(record, "row/source_ip")),
            "count": number(record, "row/count"),
            "disposition": token(text(record, evaluated + "disposition"),
                                 DISPOSITIONS),
            "dkim": token(text(record, evaluated + "dkim"), VERDICTS),
            "spf": token(text(record, evaluated + "spf"), VERDICTS),
            "reason": [(token(text(r, "type"), OVERRIDES), text(r, "comment"))
                       for r in record.findall(evaluated + "reason")],
            "header_from": text(record, "identifiers/header_from"),
            "envelope_from": text(record, "identifiers/envelope_from"),
            "envelope_to": text(record, "identifiers/envelope_to"),
            "auth_dkim": [(text(d, "domain"), text(d, "selector"),
                           token(text(d, "result"), DKIM_RESULTS),
                           text(d, "human_result"))
                          for d in record.findall("auth_results/dkim")],
            "auth_spf": [(text(s, "domain"), token(text(s, "scope"), SCOPES),
                          token(text(s, "result"), SPF_RESULTS))
                         for s in record.findall("auth_results/spf")],
        })
    return summary, token.unknown


def clean(value):
    """sealpost's value as the comparison takes it: stripped, with an
    empty string meaning absent."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def sealpost_summary(report):
    """sealpost's report in the shape python_report gives."""
    meta = report["report_metadata"]
    policy = report["policy_published"]
    summary = {
        "org_name": clean(meta["org_name"]),
        "email": clean(meta["email"]),
        "report_id": clean(meta["report_id"]),
        "begin": meta["date_range"]["begin"],
        "end": meta["date_range"]["end"],
        "error": [clean(e) for e in meta["error"] if clean(e)],
        "record": [],
    }
    for key in ("domain", "adkim", "aspf", "p", "sp", "np", "pct", "fo",
                "testing", "discovery_method"):
        summary[key] = clean(policy[key])
    for record in report["record"]:
        row = record["row"]
        evaluated = row["policy_evaluated"]
        ids = record["identifiers"]
        auth = record["auth_results"]
        summary["record"].append({
            "source_ip": address(clean(row["source_ip"])),
            "count": row["count"],
            "disposition": clean(evaluated["disposition"]),
            "dkim": clean(evaluated["dkim"]),
            "spf": clean(evaluated["spf"]),
            "reason": [(clean(r["type"]), clean(r["comment"]))
                       for r in evaluated["reason"]],
            "header_from": clean(ids["header_from"]),
            "envelope_from": clean(ids["envelope_from"]),
            "envelope_to": clean(ids["envelope_to"]),
            "auth_dkim": [(clean(d["domain"]), clean(d["selector"]),
                           clean(d["result"]), clean(d["human_result"]))
                          for d in auth["dkim"]],
            "auth_spf": [(clean(s["domain"]), clean(s["scope"]),
                          clean(s["result"])) for s in auth["spf"]],
        })
    return summary


def assert_same_report(report, expected, unknown, where, records=None):
    """sealpost's report equals Python's reading of it.  records, when
    given, is how many of Python's records a truncated report keeps."""
    got = sealpost_summary(report)
    want = dict(expected)
    namespace = want.pop("namespace")
    if namespace == "urn:ietf:params:xml:ns:dmarc-2.0":
        assert report["format"] == 2, where
    elif not namespace:
        assert report["format"] in (1, 2), where
    if records is not None:
        want["record"] = want["record"][:records]
    assert len(got["record"]) == len(want["record"]), where
    for index, (mine, theirs) in enumerate(zip(got["record"],
                                               want["record"])):
        assert mine == theirs, f"{where}: record {index}"
    if want["org_name"] is None and want["email"]:
        # A report must name its sender: the domain of the email address
        # stands in for a missing org_name, and a note says so.
        want["org_name"] = want["email"].rsplit("@", 1)[-1].rstrip(">")
        assert any("org_name" in note for note in report["notes"]), where
    for key in want:
        if key != "record":
            assert got[key] == want[key], f"{where}: {key}"
    if unknown:
        assert "unknown_values" in report["flags"], (where, unknown)


def corpus_files():
    base = PARSEDMARC
    files = sorted((base / "aggregate").iterdir()) + \
        sorted((base / "aggregate_invalid").iterdir()) + \
        sorted((base / "extract_report").iterdir()) + [base / "empty.xml"]
    return [f for f in files if f.is_file()]


CORPUS_FILES = corpus_files()


def corpus_id(path):
    return str(path.relative_to(PARSEDMARC))


# ---------------------------------------------------------------------------
# 1. The parsedmarc samples


def test_the_corpus_is_there():
    names = {p.name for p in CORPUS_FILES}
    for name in ("invalid_xml.xml", "invalid_utf_8.xml", "empty.xml",
                 "nice-input.xml.gz", "nice-input.xml.zip",
                 "mimecast-weird-gzip.eml", "twilight.eml"):
        assert name in names
    assert len(list(MAIL_AUTH.glob("*.json"))) == 10


@pytest.mark.parametrize("path", CORPUS_FILES, ids=corpus_id)
def test_parsedmarc_sample(path):
    data = path.read_bytes()
    _, entries, stderr, _ = parse(path)
    # Every file gives at least one line: what it held, or why not.
    assert entries, (path, stderr)
    for entry in entries:
        assert entry["file"] == str(path)
    if data[:2] == b"\x1f\x8b" or is_xml(data):
        assert [e["part"] for e in entries] == [""]
    elif data[:4] == b"PK\x03\x04":
        assert [e["part"] for e in entries] == \
            [name for name, _ in payloads(data)]
    elif data:
        assert all(e["part"] for e in entries), entries

    unmatched = [e for e in entries if e["status"] == "read"]
    for part, xml in payloads(data):
        parsed = python_report(xml)
        if parsed is None:
            # Not well formed, yet read: what was mended is said.
            for entry in entries:
                if entry["status"] == "read" and entry["part"] == part:
                    assert entry["report"]["notes"], entry
            continue
        expected, unknown = parsed
        candidates = [e for e in unmatched
                      if clean(e["report"]["report_metadata"]["report_id"])
                      == expected["report_id"]]
        assert candidates, (f"{path} ({part}): Python reads report "
                            f"{expected['report_id']!r}, sealpost did not",
                            entries)
        entry = candidates[0]
        unmatched.remove(entry)
        report = entry["report"]
        assert_same_report(report, expected, unknown, f"{path} ({part})")
        # Well-formed XML needs no repair; only unknown tokens are flagged.
        for flag in ("repaired_markup", "repaired_bytes", "truncated"):
            assert flag not in report["flags"], (path, report["notes"])
        if not unknown:
            assert "unknown_values" not in report["flags"], report["notes"]


def test_empty_file_is_refused_as_empty():
    reason = refused_one(PARSEDMARC / "empty.xml")
    assert "empty" in reason.lower(), reason


def test_raw_less_than_in_values_is_repaired():
    path = PARSEDMARC / "aggregate" / "invalid_xml.xml"
    data = path.read_bytes()
    assert python_report(data) is None  # not well formed as it stands
    expected, unknown = python_report(repair_markup(data))
    report = read_one(path)
    assert "repaired_markup" in report["flags"], report
    assert report["notes"], report
    assert report["record"][0]["identifiers"]["header_from"] == "bad<xml.net"
    assert_same_report(report, expected, unknown, str(path))


def test_bytes_not_utf8_are_repaired():
    path = PARSEDMARC / "aggregate" / "invalid_utf_8.xml"
    data = path.read_bytes()
    try:
        data.decode("utf-8")
        decodes = True
    except UnicodeDecodeError:
        decodes = False
    report = read_one(path)
    if decodes:
        return
    assert "repaired_bytes" in report["flags"], report
    assert report["notes"], report
    # Everything but the damaged value is as Python reads it with the bad
    # bytes replaced.
    mended = data.decode("utf-8", errors="replace").encode("utf-8")
    expected, unknown = python_report(mended)
    damaged = {i for i, r in enumerate(expected["record"])
               if "\ufffd" in (r["header_from"] or "")}
    assert damaged
    for index in damaged:
        got = report["record"][index]["identifiers"]["header_from"]
        want = expected["record"][index]["header_from"]
        assert got.startswith(want.split("\ufffd")[0]), got
        got.encode("utf-8")  # valid UTF-8 in the output
        expected["record"][index]["header_from"] = clean(got)
    assert_same_report(report, expected, unknown, str(path))


def test_upper_case_tokens_are_lower_cased():
    path = PARSEDMARC / "aggregate_invalid" / \
        "report_with_upper_cased_pass.xml"
    report = read_one(path)
    row = report["record"][0]["row"]["policy_evaluated"]
    assert (row["disposition"], row["dkim"], row["spf"]) == \
        ("none", "pass", "pass")
    assert report["record"][0]["auth_results"]["dkim"][0]["result"] == "pass"
    assert "unknown_values" not in report["flags"]


# ---------------------------------------------------------------------------
# 2. The mail-auth reports against their expected parse


def json_token(value):
    """mail-auth's spelling of a token ("Pass", "MailFrom", "Relaxed",
    "Unspecified") in the schema's ("pass", "mfrom", "r", None)."""
    if value is None or value == "Unspecified":
        return None
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", value).lower()
    return {"relaxed": "r", "strict": "s", "mail_from": "mfrom",
            "perm_error": "permerror", "temp_error": "temperror",
            "soft_fail": "softfail"}.get(snake, snake)


def blank(value):
    """mail-auth writes "" for an absent string."""
    return value or None


MAIL_AUTH_FILES = sorted(p for p in MAIL_AUTH.iterdir()
                         if p.suffix in (".xml", ".eml"))


@pytest.mark.parametrize("path", MAIL_AUTH_FILES, ids=lambda p: p.name)
def test_mail_auth_report(path):
    want = json.loads(path.with_suffix(".json").read_text())
    code, entries, stderr, _ = parse(path)
    # A report mail whose body is text or HTML is still one good report.
    assert code == 0, (entries, stderr)
    read = [e for e in entries if e["status"] == "read"]
    assert len(read) == 1, entries
    report = read[0]["report"]

    meta, want_meta = report["report_metadata"], want["report_metadata"]
    assert meta["org_name"] == want_meta["org_name"]
    assert meta["report_id"] == want_meta["report_id"]
    assert meta["email"] == want_meta["email"]
    assert meta["date_range"] == want_meta["date_range"]

    policy, want_policy = report["policy_published"], want["policy_published"]
    assert policy["domain"] == want_policy["domain"]
    for key in ("p", "sp", "np", "adkim", "aspf", "discovery_method"):
        if key in want_policy:
            assert policy[key] == json_token(want_policy[key]), key
    assert blank(policy["fo"]) == want_policy["fo"]
    if "pct" in want_policy:
        assert policy["pct"] == want_policy["pct"]
    # mail-auth keeps no pct; the XML says what it is.
    reports = [x for _, x in payloads(path.read_bytes())
               if xml_root(x) is not None]
    assert len(reports) == 1
    root = xml_root(reports[0])
    assert policy["pct"] == number(root, "policy_published/pct")

    assert len(report["record"]) == len(want["record"])
    for index, (got, exp) in enumerate(zip(report["record"], want["record"])):
        where = f"{path.name} record {index}"
        row, exp_row = got["row"], exp["row"]
        assert address(row["source_ip"]) == address(exp_row["source_ip"]), \
            where
        assert row["count"] == exp_row["count"], where
        for key in ("disposition", "dkim", "spf"):
            assert row["policy_evaluated"][key] == \
                json_token(exp_row["policy_evaluated"][key]), (where, key)
        ids, exp_ids = got["identifiers"], exp["identifiers"]
        assert ids["header_from"] == exp_ids["header_from"], where
        if exp_ids["envelope_from"]:
            assert ids["envelope_from"] == exp_ids["envelope_from"], where
        if exp_ids["envelope_to"]:
            assert ids["envelope_to"] == exp_ids["envelope_to"], where
        dkim = [(d["domain"], blank(d["selector"]), d["result"])
                for d in got["auth_results"]["dkim"]]
        assert dkim == [(d["domain"], blank(d["selector"]),
                         json_token(d["result"]))
                        for d in exp["auth_results"]["dkim"]], where
        spf = [(s["domain"], s["scope"], s["result"])
               for s in got["auth_results"]["spf"]]
        assert spf == [(s["domain"], json_token(s["scope"]),
                        json_token(s["result"]))
                       for s in exp["auth_results"]["spf"]], where

    # And all of it as Python reads the XML.
    expected, unknown = python_report(reports[0])
    assert_same_report(report, expected, unknown, path.name)


# ---------------------------------------------------------------------------
# 3. The cases from public bug reports


NOT_XML = re.compile(r"not (an? )?XML|no XML|not an aggregate report", re.I)


def test_br017_gzip_of_a_word_is_not_a_report():
    case = CASES / "BR-017"
    assert gzip.decompress((case / "unused.xml.gz").read_bytes()) == \
        b"unused"
    reason = refused_one(case / "unused.xml.gz")
    assert NOT_XML.search(reason), reason

    code, entries, stderr, _ = parse(case / "report-email.eml")
    assert code == 1
    refused = [e for e in entries if e["status"] == "refused"]
    assert not [e for e in entries if e["status"] == "read"], entries
    assert len(refused) == 1, entries
    assert NOT_XML.search(refused[0]["reason"]), refused
    assert refused[0]["part"].endswith(".xml.gz"), refused


def test_br017_control_report_is_read():
    path = CASES / "BR-017" / "control-valid.xml.gz"
    report = read_one(path)
    expected, unknown = python_report(gzip.decompress(path.read_bytes()))
    assert_same_report(report, expected, unknown, str(path))
    assert len(report["record"]) == 1
    row = report["record"][0]
    assert row["row"]["count"] == 3
    assert row["row"]["source_ip"] == "192.0.2.10"
    assert row["identifiers"]["header_from"] == "example.com"


@pytest.mark.parametrize("name", ["bomb-64MiB.xml.gz", "bomb-64MiB.zip"])
def test_br019_bomb_is_refused_within_memory(name):
    path = CASES / "BR-019" / name
    # The bomb is what it says: far past the cap once inflated.
    inflated = sum(len(xml) for _, xml in payloads(path.read_bytes()))
    assert inflated > 4 * 16 * MIB - MIB
    code, entries, stderr, usage = parse(path)
    assert code == 1
    assert len(entries) == 1, entries
    assert entries[0]["status"] == "refused", entries
    assert LIMIT_WORDS.search(entries[0]["reason"]), entries[0]
    # The cap is 16 MiB; the bomb is 64 MiB.
    assert usage.peak < 60 * MIB, usage
    assert usage.cpu < 10, usage


@pytest.mark.parametrize("name", ["entity-expansion.xml",
                                  "external-entity.xml"])
def test_br019_doctype_is_refused(name):
    path = CASES / "BR-019" / name
    code, entries, stderr, usage = parse(path)
    assert code == 1
    assert len(entries) == 1, entries
    assert entries[0]["status"] == "refused", entries
    assert "DOCTYPE" in entries[0]["reason"], entries[0]
    assert usage.cpu < 1.0, usage
    assert usage.peak < 60 * MIB, usage
    hostname = pathlib.Path("/etc/hostname")
    if hostname.exists() and hostname.read_text().strip():
        secret = hostname.read_text().strip().encode()
        assert secret not in json.dumps(entries).encode()
        assert secret not in stderr


def test_br020_upper_case_tokens():
    path = CASES / "BR-020" / "upper-case-values.xml"
    report = read_one(path)
    expected, unknown = python_report(path.read_bytes())
    assert_same_report(report, expected, unknown, str(path))
    record = report["record"][0]
    evaluated = record["row"]["policy_evaluated"]
    assert evaluated["disposition"] == "none"
    assert evaluated["dkim"] == "pass"
    assert evaluated["spf"] == "fail"
    assert [d["result"] for d in record["auth_results"]["dkim"]] == ["pass"]
    assert [s["result"] for s in record["auth_results"]["spf"]] == ["fail"]
    assert "unknown_values" not in report["flags"]


def test_br022_both_dkim_results_kept():
    path = CASES / "BR-022" / "dual-signature-record.xml"
    report = read_one(path)
    expected, unknown = python_report(path.read_bytes())
    assert_same_report(report, expected, unknown, str(path))
    record = report["record"][0]
    assert record["row"]["count"] == 3
    assert record["row"]["policy_evaluated"]["dkim"] == "pass"
    dkim = {d["selector"]: d for d in record["auth_results"]["dkim"]}
    assert set(dkim) == {"ed1", "rsa1"}
    assert dkim["ed1"]["result"] == "permerror"
    assert dkim["ed1"]["human_result"] == \
        "unsupported algorithm ed25519-sha256"
    assert dkim["rsa1"]["result"] == "pass"


# ---------------------------------------------------------------------------
# 4. dmarc import


def import_json(data_dir, *paths):
    """`dmarc import --json`: (exit status, entries)."""
    code, stdout, stderr, _ = run("--data-dir", data_dir, "dmarc", "import",
                                  *paths, "--json")
    assert code in (0, 1), (code, stderr)
    entries = [json.loads(line) for line in stdout.decode().splitlines()
               if line.strip()]
    for entry in entries:
        assert entry["status"] in ("imported", "duplicate", "refused"), entry
        assert isinstance(entry["file"], str) and \
            isinstance(entry["part"], str), entry
        if entry["status"] == "refused":
            assert entry["reason"].strip(), entry
        if entry["status"] == "imported":
            assert isinstance(entry["records"], int), entry
            assert isinstance(entry["messages"], int), entry
    refused = any(e["status"] == "refused" for e in entries)
    assert code == (1 if refused else 0), (code, entries, stderr)
    return code, entries


def stored(data_dir):
    """(reports, records) in the store."""
    db = sqlite3.connect(f"file:{data_dir / 'sealpost.db'}?mode=ro",
                         uri=True)
    try:
        return tuple(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                     for table in ("dmarc_reports", "dmarc_records"))
    finally:
        db.close()


def tally(entries):
    return {status: sum(e["status"] == status for e in entries)
            for status in ("imported", "duplicate", "refused")}


def test_import_stores_the_good_and_refuses_the_bomb(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    inbox = tmp_path / "inbox"
    (inbox / "nested").mkdir(parents=True)
    good = inbox / "nested" / "report.bin"
    source = CASES / "BR-017" / "control-valid.xml.gz"
    good.write_bytes(source.read_bytes())
    bomb = inbox / "bomb"
    bomb.write_bytes((CASES / "BR-019" / "bomb-64MiB.xml.gz").read_bytes())
    expected, _ = python_report(gzip.decompress(source.read_bytes()))

    code, entries = import_json(data_dir, inbox)
    assert code == 1
    by_file = {e["file"]: e for e in entries}
    assert len(entries) == 2 and len(by_file) == 2, entries
    imported = next(e for e in entries if e["status"] == "imported")
    refused = next(e for e in entries if e["status"] == "refused")
    assert pathlib.Path(imported["file"]).name == good.name
    assert pathlib.Path(refused["file"]).name == bomb.name
    assert LIMIT_WORDS.search(refused["reason"]), refused
    assert imported["org_name"] == expected["org_name"]
    assert imported["report_id"] == expected["report_id"]
    assert imported["records"] == len(expected["record"])
    assert imported["messages"] == sum(r["count"]
                                       for r in expected["record"])
    assert stored(data_dir) == (1, len(expected["record"]))

    # The same report again is a duplicate and stores nothing.
    code, entries = import_json(data_dir, good)
    assert code == 0
    assert [e["status"] for e in entries] == ["duplicate"], entries
    assert stored(data_dir) == (1, len(expected["record"]))


def summary_line(stdout):
    last = stdout.decode().strip().splitlines()[-1]
    match = re.fullmatch(r"(\d+) imported \((\d+) records, (\d+) messages\),"
                         r" (\d+) duplicates?, (\d+) refused", last.strip())
    assert match, last
    return tuple(map(int, match.groups()))


def test_import_a_whole_directory(tmp_path):
    directory = PARSEDMARC / "aggregate"
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    _, parsed, _, _ = parse(*files)
    read = [e for e in parsed if e["status"] == "read"]
    refused = [e for e in parsed if e["status"] == "refused"]
    distinct = {(e["report"]["report_metadata"]["org_name"],
                 e["report"]["report_metadata"]["report_id"]) for e in read}

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    code, entries = import_json(tmp_path / "a", directory)
    counts = tally(entries)
    assert len(entries) == len(parsed)
    assert counts["imported"] + counts["duplicate"] == len(read)
    assert counts["refused"] == len(refused)
    assert counts["imported"] == len(distinct)
    assert code == (1 if refused else 0)
    imported = [e for e in entries if e["status"] == "imported"]
    records = sum(e["records"] for e in imported)
    messages = sum(e["messages"] for e in imported)
    assert stored(tmp_path / "a") == (counts["imported"], records)

    # The readable form says the same in its last line.
    code, stdout, stderr, _ = run("--data-dir", tmp_path / "b", "dmarc",
                                  "import", directory)
    assert code == (1 if refused else 0), stderr
    # One line per payload (notes indented under it), then the totals.
    lines = [line for line in stdout.decode().strip().splitlines()
             if not line[:1].isspace()]
    assert len(lines) == len(parsed) + 1, lines
    assert summary_line(stdout) == (counts["imported"], records, messages,
                                    counts["duplicate"], counts["refused"])
    # And a second time, every report is a duplicate.
    code, stdout, stderr, _ = run("--data-dir", tmp_path / "b", "dmarc",
                                  "import", directory)
    assert summary_line(stdout) == (0, 0, 0, len(read), counts["refused"])
    assert stored(tmp_path / "b") == (counts["imported"], records)


# ---------------------------------------------------------------------------
# 5. Hostile inputs


NICE = PARSEDMARC / "extract_report" / "nice-input.xml"


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, -4, -1])
def test_truncated_gzip(tmp_path, keep):
    data = NICE.read_bytes()
    packed = gzip.compress(data, mtime=0)
    cut = int(len(packed) * keep) if keep > 0 else len(packed) + keep
    path = tmp_path / "cut.xml.gz"
    path.write_bytes(packed[:cut])
    expected, unknown = python_report(data)
    code, entries, stderr, _ = parse(path)
    assert len(entries) == 1, entries
    entry = entries[0]
    if entry["status"] == "read":
        report = entry["report"]
        if len(report["record"]) < len(expected["record"]):
            assert "truncated" in report["flags"], report
        assert_same_report(report, expected, unknown, str(path),
                           records=len(report["record"]))


def lying_zip(path, payload, declared):
    """A one-member zip whose headers state declared as the member's
    uncompressed size."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED,
                         compresslevel=1) as archive:
        archive.writestr("report.xml", payload)
    data = bytearray(path.read_bytes())
    assert data[:4] == b"PK\x03\x04"
    assert int.from_bytes(data[22:26], "little") == len(payload)
    data[22:26] = declared.to_bytes(4, "little")
    central = data.index(b"PK\x01\x02")
    assert int.from_bytes(data[central + 24:central + 28], "little") == \
        len(payload)
    data[central + 24:central + 28] = declared.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def poorly_compressible_report():
    """A valid report past 16 MiB whose bulk (random text in a comment)
    compresses poorly, so that only the size cap, not the ratio, can stop
    it."""
    head, tail = NICE.read_bytes().split(b"<feedback>", 1)
    filler = base64.b64encode(os.urandom(13 * MIB))  # about 17.3 MiB
    payload = head + b"<feedback>\n<!-- " + filler + b" -->\n" + tail
    assert len(payload) > 16 * MIB
    return payload


SIZE_CAP = re.compile(r"16 ?MiB|16777216")


def test_zip_member_that_lies_about_its_size(tmp_path):
    payload = poorly_compressible_report()
    path = tmp_path / "liar.zip"
    lying_zip(path, payload, 2000)
    assert path.stat().st_size * 200 > len(payload)
    code, entries, stderr, usage = parse(path)
    assert code == 1
    assert len(entries) == 1, entries
    assert entries[0]["status"] == "refused", entries
    assert SIZE_CAP.search(entries[0]["reason"]), entries[0]


def test_gzip_past_the_size_cap(tmp_path):
    payload = poorly_compressible_report()
    path = tmp_path / "big.xml.gz"
    path.write_bytes(gzip.compress(payload, compresslevel=1, mtime=0))
    assert path.stat().st_size * 200 > len(payload)
    code, entries, stderr, usage = parse(path)
    assert code == 1
    assert len(entries) == 1, entries
    assert entries[0]["status"] == "refused", entries
    assert SIZE_CAP.search(entries[0]["reason"]), entries[0]


def test_report_cut_after_second_record(tmp_path):
    data = NICE.read_bytes()
    ends = [m.end() for m in re.finditer(rb"</record>", data)]
    assert len(ends) > 2
    path = tmp_path / "cut.xml"
    path.write_bytes(data[:ends[1]])
    expected, unknown = python_report(data)
    report = read_one(path)
    assert "truncated" in report["flags"], report
    assert len(report["record"]) == 2
    assert_same_report(report, expected, unknown, str(path), records=2)


def test_mismatched_close_tag_is_refused_with_its_line(tmp_path):
    data = NICE.read_bytes()
    second = [m.start() for m in re.finditer(rb"<record>", data)][1]
    bad = data.index(b"</header_from>", second)
    broken = data[:bad] + b"</header_frm>" + \
        data[bad + len(b"</header_from>"):]
    line = broken[:bad].count(b"\n") + 1
    assert python_report(broken) is None
    path = tmp_path / "broken.xml"
    path.write_bytes(broken)
    reason = refused_one(path)
    assert re.search(rf"\bline {line}\b", reason), (line, reason)


# ---------------------------------------------------------------------------
# Well-formed variations that any reader of XML, gzip, zip and MIME must
# take; each is read exactly as Python reads it.


BASE = CASES / "BR-022" / "dual-signature-record.xml"


def streamed_zip(payload):
    """A zip written to a pipe: sizes only in a data descriptor after the
    member, zeros in its local header."""
    class Pipe(io.RawIOBase):
        def __init__(self):
            self.data = bytearray()

        def writable(self):
            return True

        def write(self, chunk):
            self.data += chunk
            return len(chunk)

    pipe = Pipe()
    with zipfile.ZipFile(pipe, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("report.xml", "w") as member:
            member.write(payload)
    data = bytes(pipe.data)
    assert int.from_bytes(data[6:8], "little") & 0x08
    assert data[18:26] == bytes(8)
    return data


def gzip_with_header_fields(payload):
    """A gzip member with FEXTRA, FNAME and FCOMMENT set."""
    plain = gzip.compress(payload, mtime=0)
    header = bytearray(plain[:10])
    header[3] = 0x04 | 0x08 | 0x10
    return bytes(header) + b"\x04\x00abcd" + b"report.xml\x00" + \
        b"a comment\x00" + plain[10:]


def mail(*parts):
    """A report mail with the given (headers, body) parts."""
    text = b"From: reports@receiver.example.org\r\nTo: rua@example.com\r\n" \
        b"Subject: Report Domain: example.com\r\nMIME-Version: 1.0\r\n" \
        b"Content-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n"
    for headers, body in parts:
        text += b"--b0\r\n" + headers + b"\r\n\r\n" + body + b"\r\n"
    return text + b"--b0--\r\n"


def variants():
    xml = BASE.read_bytes()
    latin = xml.replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"') \
        .replace(b"<org_name>receiver.example.org",
                 "<org_name>Soci\xe9t\xe9 G\xe9n\xe9rale".encode("latin-1"))
    escapes = xml.replace(
        b"<org_name>receiver.example.org</org_name>",
        b"<org_name><![CDATA[A&B <receiver>]]></org_name>").replace(
        b"<report_id>dual-sig-0001</report_id>",
        b"<report_id>dual&#x2D;sig&amp;0001<!-- x --></report_id>").replace(
        b"<count>3</count>", b"<count><?pi x?>3</count>")
    prefixed = re.sub(rb"<(/?)([a-z_]+)>", rb"<\1d:\2>", xml).replace(
        b"<d:feedback>",
        b'<d:feedback xmlns:d="urn:ietf:params:xml:ns:dmarc-2.0">')
    spaced = xml.replace(b"<dkim>pass</dkim>", b"<dkim>\n   PASS \n</dkim>")
    forwarded = b"From: reports@receiver.example.org\r\nMIME-Version: 1.0" \
        b"\r\nContent-Type: application/gzip; name=\"r.xml.gz\"\r\n" \
        b"Content-Transfer-Encoding: base64\r\n\r\n" + \
        base64.encodebytes(gzip.compress(xml, mtime=0))
    return {
        "declared-latin-1": (latin, latin),
        "cdata-references-comments": (escapes, escapes),
        "namespace-prefix": (prefixed, prefixed),
        "spaces-around-tokens": (spaced, spaced),
        "bom": (b"\xef\xbb\xbf" + xml, xml),
        "zip-data-descriptor": (streamed_zip(xml), xml),
        "gzip-header-fields": (gzip_with_header_fields(xml), xml),
        "gzip-two-members": (gzip.compress(xml[:500], mtime=0) +
                             gzip.compress(xml[500:], mtime=0), xml),
        "mail-forwarded-rfc822": (mail(
            (b"Content-Type: text/plain", b"Forwarded report."),
            (b"Content-Type: message/rfc822", forwarded)), xml),
        "mail-quoted-printable-xml": (mail(
            (b"Content-Type: text/html", b"<html><body>Report</body></html>"),
            (b"Content-Type: text/xml; name=r.xml\r\n"
             b"Content-Disposition: attachment; filename=r.xml\r\n"
             b"Content-Transfer-Encoding: quoted-printable",
             quopri.encodestring(xml))), xml),
    }


VARIANTS = variants()


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_well_formed_variant(tmp_path, name):
    data, xml = VARIANTS[name]
    expected, unknown = python_report(xml)
    path = tmp_path / "input"
    path.write_bytes(data)
    code, entries, stderr, _ = parse(path)
    assert code == 0, (entries, stderr)
    assert len(entries) == 1, entries
    report = entries[0]["report"]
    assert_same_report(report, expected, unknown, name)
    assert not report["flags"], report["notes"]


@pytest.mark.parametrize("prefix", [b"\r\n", b"  \n\t",
                                    b"\xef\xbb\xbf\r\n"],
                         ids=["crlf", "spaces", "bom-crlf"])
def test_space_before_the_xml(tmp_path, prefix):
    """Blank lines or a BOM and blank lines before the document, as some
    generators write them: the payload is XML all the same."""
    xml = BASE.read_bytes()
    expected, unknown = python_report(xml)
    for name, data in (("bare.xml", prefix + xml),
                       ("packed.gz", gzip.compress(prefix + xml, mtime=0))):
        path = tmp_path / name
        path.write_bytes(data)
        entry = parse_one(path)
        assert entry["status"] == "read", entry
        assert_same_report(entry["report"], expected, unknown, name)


@pytest.mark.parametrize("args", [
    ("dmarc", "parse"),
    ("dmarc", "parse", "--no-such-option", str(BASE)),
    ("dmarc", "import"),
], ids=["parse-nothing", "parse-bad-option", "import-nothing"])
def test_usage_errors(tmp_path, args):
    code, stdout, stderr, _ = run("--data-dir", tmp_path, *args)
    assert code == 2, (stdout, stderr)
    assert b"usage" in stderr.lower()
    assert stdout == b""
