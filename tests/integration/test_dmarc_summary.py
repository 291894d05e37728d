"""`sealpost dmarc summary`: what the stored aggregate reports say.

The parsedmarc and mail-auth sample reports and two cases (upper-case
tokens, a record with two DKIM results) are imported into a fresh data
directory with `dmarc import --json`.  Every expected value is then
computed here, independently of sealpost, by reading the stored payloads
with Python's gzip, zipfile, email and xml.etree modules:

- Import: every payload Python finds in the files is accounted for, in the
  order of the arguments with directories walked in name order; a report
  whose org_name and report_id were seen before is a duplicate, the first
  one wins.  Python reads the same org_name and report_id from each
  payload (a missing org_name is the domain of <email>).
- Per domain (the published domain, lower-cased): reports, first and
  last, messages, DMARC pass (policy_evaluated dkim or spf is pass),
  aligned DKIM and SPF pass, dispositions (none, pass, quarantine, reject,
  anything else "other"), receivers with their reports and messages,
  overrides by type and comment.
- Per source address: messages, the verdicts, dispositions, the SPF check
  (the MAIL FROM one when there are several) and its DKIM selectors; most
  messages first.
- Per DKIM selector (signing domain lower-cased, selector): messages, pass,
  results by result, and "unsupported": messages whose result for that
  selector is permerror, temperror, neutral or policy while another DKIM
  result of the same record passed.
- Ownership: with dmarc_own_sources naming a network and a key made with
  `dkim keygen` for one domain and selector, exactly the sources in the
  network and exactly that selector are "own"; the advice is ready for
  p=quarantine only when every own source passed aligned DKIM for all of
  its messages, and lists exactly the own sources that did not, and the
  foreign ones that failed DMARC.  Without own sources it is never ready.
- --since keeps the reports ending at that date or later; a domain
  argument keeps that domain; an unknown domain gives no domains and exit
  status 1.
- The readable output names each domain with one advice line, and --top 1
  says how many more sources a domain has.
- Two copies of one report made here, the second spelling a name
  otherwise (a domain in upper case, an IPv6 address with its zeros and
  upper-case digits): one domain, one selector, one source.
"""
import calendar
import collections
import ipaddress
import json
import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import CASES, DATA, SEALPOST
from dmarcfiles import address, local, payloads, repair_markup, text

DMARC = DATA / "corpus" / "dmarc"  # see tests/data/corpus/README.md
INPUTS = [DMARC / "parsedmarc" / "aggregate", DMARC / "mail-auth",
          CASES / "BR-020" / "upper-case-values.xml",
          CASES / "BR-022" / "dual-signature-record.xml"]

# Ownership: a network holding a corpus source, and a key for a corpus
# domain and selector (BR-022 signs example.com with selector rsa1).
OWN_NETWORK = "192.0.2.0/24"
OWN_KEY = ("example.com", "rsa1")

SANITIZER = re.compile(rb"AddressSanitizer|LeakSanitizer|UndefinedBehavior"
                       rb"Sanitizer|runtime error:|Segmentation fault")

# The schema's tokens (RFC 7489 appendix C and its dmarc-2.0 revision).
DISPOSITIONS = ("none", "pass", "quarantine", "reject")
DKIM_RESULTS = ("none", "pass", "fail", "policy", "neutral", "temperror",
                "permerror")
OVERRIDES = {"forwarded", "sampled_out", "trusted_forwarder",
             "mailing_list", "local_policy", "other", "policy_test_mode"}
UNJUDGED = {"permerror", "temperror", "neutral", "policy"}


# ---------------------------------------------------------------------------
# Running sealpost


def run(*args):
    """Run sealpost with no configuration from the environment; returns
    (exit status, stdout text, stderr text)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SEALPOST_CONFIG", "SEALPOST_DATA_DIR")}
    done = subprocess.run([SEALPOST, *map(str, args)], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=300)
    assert not SANITIZER.search(done.stderr), \
        done.stderr.decode(errors="replace")
    return done.returncode, done.stdout.decode(), \
        done.stderr.decode(errors="replace")


def summary_json(*args):
    """`dmarc summary --json`: (exit status, list of domains)."""
    code, stdout, stderr = run(*args, "--json")
    assert code in (0, 1), (code, stderr)
    domains = json.loads(stdout)["domains"]
    assert code == (0 if domains else 1), (code, stderr)
    return code, domains


# ---------------------------------------------------------------------------
# Python's own reading of the files
# (the layers, the markup and the report XML in dmarcfiles)


def feedback(data):
    """The <feedback> element of a report, namespaces dropped, found also
    inside a wrapper element; when the strict parse fails, broken markup
    and bytes that are not UTF-8 are mended.  None when it is no report
    or when data (a gzip cut short) could not be unpacked."""
    if data is None:
        return None
    data = data.lstrip(b"\xef\xbb\xbf").lstrip()
    if not data or b"<!DOCTYPE" in data:
        return None
    mended = repair_markup(
        data.decode("utf-8", errors="replace").encode("utf-8"))
    # A report in an element left open (an <xs:schema>) is the report.
    wrapped = re.search(rb"<feedback[\s>].*</feedback>", mended, re.S)
    for attempt in (data, mended, wrapped and wrapped.group(0)):
        try:
            root = ET.fromstring(attempt)
            break
        except (ET.ParseError, TypeError):
            continue
    else:
        return None
    for element in root.iter():
        element.tag = local(element.tag)
    return root if root.tag == "feedback" else root.find(".//feedback")


def token(value, allowed):
    """A schema token in lower case; other values as written."""
    if value is not None and value.lower() in allowed:
        return value.lower()
    return value


def read_report(data):
    """What the summary needs of a report payload, or None."""
    root = feedback(data)
    if root is None:
        return None
    meta = "report_metadata/"
    org_name = text(root, meta + "org_name")
    mail_address = text(root, meta + "email")
    if org_name is None and mail_address:
        # A report must name its sender: the domain of the address.
        org_name = mail_address.rsplit("@", 1)[-1].rstrip(">")
    report = {
        "org_name": org_name,
        "report_id": text(root, meta + "report_id"),
        "begin": int(text(root, meta + "date_range/begin")),
        "end": int(text(root, meta + "date_range/end")),
        "domain": text(root, "policy_published/domain").lower(),
        "records": [],
    }
    for record in root.findall("record"):
        evaluated = "row/policy_evaluated/"
        report["records"].append({
            "source_ip": address(text(record, "row/source_ip")),
            "count": int(text(record, "row/count")),
            "disposition": text(record, evaluated + "disposition"),
            "dkim": text(record, evaluated + "dkim"),
            "spf": text(record, evaluated + "spf"),
            "reasons": [(token(text(r, "type"), OVERRIDES) or "",
                         text(r, "comment") or "")
                        for r in record.findall(evaluated + "reason")],
            "auth_dkim": [((text(d, "domain") or "").lower(),
                           text(d, "selector"),
                           token(text(d, "result"), DKIM_RESULTS))
                          for d in record.findall("auth_results/dkim")],
            "auth_spf": [(text(s, "scope"), text(s, "result"))
                         for s in record.findall("auth_results/spf")],
        })
    return report


def is_pass(value):
    return value is not None and value.lower() == "pass"


def walk(path):
    """The files of path, directories walked in name order."""
    if not path.is_dir():
        return [path]
    found = []
    for child in sorted(path.iterdir(), key=lambda p: os.fsencode(p.name)):
        found += walk(child)
    return found


# ---------------------------------------------------------------------------
# The expected summary


def disposition_key(value):
    value = (value or "").lower()
    return value if value in DISPOSITIONS else "other"


def result_key(value):
    return value if value in DKIM_RESULTS else "other"


class Selectors:
    """Messages per DKIM selector, keyed by (domain, selector)."""

    def __init__(self, own_keys):
        self.own_keys = own_keys
        self.table = {}

    def add(self, record):
        count = record["count"]
        any_pass = any(result == "pass"
                       for _, _, result in record["auth_dkim"])
        for domain, selector, result in record["auth_dkim"]:
            entry = self.table.setdefault((domain, selector), {
                "own": (domain, selector) in self.own_keys,
                "messages": 0, "pass": 0, "unsupported": 0,
                "results": collections.Counter()})
            entry["messages"] += count
            entry["pass"] += count if result == "pass" else 0
            entry["unsupported"] += \
                count if any_pass and result in UNJUDGED else 0
            entry["results"][result_key(result)] += count


def spf_check(record):
    """The (scope, result) that stands for the record's SPF: the MAIL FROM
    one when there are several."""
    checks = record["auth_spf"]
    mfrom = [c for c in checks if (c[0] or "").lower() == "mfrom"]
    return (mfrom or checks or [None])[0]


def expected_summary(reports, own_network=None, own_keys=()):
    """{domain: what the summary of these reports holds}."""
    network = ipaddress.ip_network(own_network) if own_network else None
    domains = {}
    for report in reports:
        entry = domains.setdefault(report["domain"], {
            "reports": 0, "first": report["begin"], "last": report["end"],
            "messages": 0, "dmarc_pass": 0, "dkim_aligned_pass": 0,
            "spf_aligned_pass": 0, "dispositions": collections.Counter(),
            "reporters": {}, "sources": {},
            "selectors": Selectors(own_keys),
            "overrides": collections.Counter()})
        entry["reports"] += 1
        entry["first"] = min(entry["first"], report["begin"])
        entry["last"] = max(entry["last"], report["end"])
        reporter = entry["reporters"].setdefault(
            report["org_name"], {"reports": 0, "messages": 0})
        reporter["reports"] += 1
        for record in report["records"]:
            count = record["count"]
            ip = record["source_ip"]
            source = entry["sources"].setdefault(ip, {
                "own": network is not None and
                ipaddress.ip_address(ip) in network,
                "messages": 0, "dmarc_pass": 0, "dkim_aligned_pass": 0,
                "spf_aligned_pass": 0,
                "dispositions": collections.Counter(),
                "spf": {"messages": 0, "pass": 0},
                "selectors": Selectors(own_keys)})
            dkim, spf = is_pass(record["dkim"]), is_pass(record["spf"])
            reporter["messages"] += count
            for tally in (entry, source):
                tally["messages"] += count
                tally["dmarc_pass"] += count if dkim or spf else 0
                tally["dkim_aligned_pass"] += count if dkim else 0
                tally["spf_aligned_pass"] += count if spf else 0
                tally["dispositions"][
                    disposition_key(record["disposition"])] += count
                tally["selectors"].add(record)
            check = spf_check(record)
            if check is not None:
                source["spf"]["messages"] += count
                source["spf"]["pass"] += count if is_pass(check[1]) else 0
            for reason in record["reasons"]:
                entry["overrides"][reason] += count
    return domains


def expected_advice(domain):
    """The advice for one expected domain."""
    own_failing, foreign_failing = {}, {}
    for ip, source in domain["sources"].items():
        if source["own"]:
            failed = source["messages"] - source["dkim_aligned_pass"]
            if failed:
                own_failing[ip] = {"messages": source["messages"],
                                   "dkim_aligned_fail": failed}
        elif source["messages"] > source["dmarc_pass"]:
            foreign_failing[ip] = {
                "messages": source["messages"],
                "dmarc_fail": source["messages"] - source["dmarc_pass"]}
    own = [s for s in domain["sources"].values() if s["own"]]
    return {"quarantine_ready": bool(own) and not own_failing,
            "own_failing": own_failing, "foreign_failing": foreign_failing}


# ---------------------------------------------------------------------------
# Comparing


def keyed(items, key):
    """A list of JSON objects as a dict by key, which must be unique."""
    table = {}
    for item in items:
        name = key(item)
        assert name not in table, f"{name!r} listed twice: {items}"
        table[name] = item
    return table


def check_selectors(got, want, where):
    got = keyed(got, lambda s: (s["domain"], s["selector"]))
    assert set(got) == set(want.table), where
    for name, expected in want.table.items():
        mine = got[name]
        assert {k: mine[k] for k in ("own", "messages", "pass",
                                     "unsupported")} == \
            {k: expected[k] for k in ("own", "messages", "pass",
                                      "unsupported")}, (where, name)
        assert mine["results"] == dict(expected["results"]), (where, name)
        assert 0 <= mine["aligned_pass"] <= mine["pass"], (where, name)


def check_domain(got, want, where):
    """sealpost's summary of one domain equals the expected one."""
    for key in ("reports", "first", "last", "messages", "dmarc_pass",
                "dkim_aligned_pass", "spf_aligned_pass"):
        assert got[key] == want[key], (where, key)
    assert got["dispositions"] == dict(want["dispositions"]), where

    reporters = keyed(got["reporters"], lambda r: r["org_name"])
    assert {name: {"reports": r["reports"], "messages": r["messages"]}
            for name, r in reporters.items()} == want["reporters"], where

    sources = keyed(got["sources"], lambda s: address(s["ip"]))
    assert set(sources) == set(want["sources"]), where
    counts = [s["messages"] for s in got["sources"]]
    assert counts == sorted(counts, reverse=True), (where, "order")
    for ip, expected in want["sources"].items():
        mine = sources[ip]
        here = f"{where} source {ip}"
        for key in ("own", "messages", "dmarc_pass", "dkim_aligned_pass",
                    "spf_aligned_pass"):
            assert mine[key] == expected[key], (here, key)
        assert mine["dispositions"] == dict(expected["dispositions"]), here
        assert mine["spf"]["messages"] == expected["spf"]["messages"], here
        assert mine["spf"]["pass"] == expected["spf"]["pass"], here
        assert 0 <= mine["spf"]["aligned_pass"] <= mine["spf"]["pass"], here
        check_selectors(mine["selectors"], expected["selectors"], here)

    check_selectors(got["selectors"], want["selectors"], where)

    overrides = keyed(got["overrides"], lambda o: (o["type"], o["comment"]))
    assert {name: o["messages"] for name, o in overrides.items()} == \
        dict(want["overrides"]), where

    advice, expected = got["advice"], expected_advice(want)
    assert advice["quarantine_ready"] == expected["quarantine_ready"], where
    assert keyed(advice["own_failing"], lambda s: address(s["ip"])).keys() \
        == expected["own_failing"].keys(), where
    for item in advice["own_failing"]:
        assert {k: item[k] for k in ("messages", "dkim_aligned_fail")} == \
            expected["own_failing"][address(item["ip"])], where
    foreign = expected["foreign_failing"]
    assert advice["foreign_dmarc_fail"] == \
        sum(s["dmarc_fail"] for s in foreign.values()), where
    assert len(advice["foreign_failing"]) == min(20, len(foreign)), where
    for item in advice["foreign_failing"]:
        assert {k: item[k] for k in ("messages", "dmarc_fail")} == \
            foreign[address(item["ip"])], where


def check_summary(domains, want):
    names = [d["domain"] for d in domains]
    assert names == sorted(want), names
    for domain in domains:
        check_domain(domain, want[domain["domain"]], domain["domain"])


# ---------------------------------------------------------------------------
# The store


class Store:
    """A data directory holding the imported reports, a configuration
    with own sources, and what Python read of the stored reports."""

    def __init__(self, base):
        self.data_dir = base / "data"
        self.config = base / "sealpost.conf"
        self.config.write_text(f"data_dir = {self.data_dir}\n"
                               f"dmarc_own_sources = {OWN_NETWORK}\n")
        self.entries = []
        self.reports = []


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("summary"))
    code, stdout, stderr = run("--data-dir", store.data_dir, "dmarc",
                               "import", "--json", *INPUTS)
    assert code in (0, 1), (code, stderr)
    store.entries = [json.loads(line) for line in stdout.splitlines()
                     if line.strip()]
    code, stdout, stderr = run("--config", store.config, "dkim", "keygen",
                               OWN_KEY[0], "--selector", OWN_KEY[1],
                               "--rsa", "2048")
    assert code == 0, stderr

    # Python reads every payload of the same files, and takes the first
    # report of each org_name and report_id as the stored one.
    files = [f for path in INPUTS for f in walk(path)]
    seen = set()
    store.expected_statuses = []
    for path in files:
        for part, data in payloads(path.read_bytes()):
            report = read_report(data)
            if report is None:
                continue
            key = (report["org_name"], report["report_id"])
            status = "duplicate" if key in seen else "imported"
            seen.add(key)
            store.expected_statuses.append(
                (str(path), part, status, report["org_name"],
                 report["report_id"]))
            if status == "imported":
                store.reports.append(report)
    store.files = [str(f) for f in files]
    return store


def test_import_stores_each_report_once(store):
    # One line per payload, in the order of the files.
    order = [e["file"] for e in store.entries]
    assert set(order) == set(store.files)
    assert order == sorted(order, key=store.files.index)
    # What sealpost read is what Python reads, deduplicated the same way.
    read = [(e["file"], e["part"], e["status"], e["org_name"],
             e["report_id"])
            for e in store.entries if e["status"] != "refused"]
    assert read == store.expected_statuses
    assert any(s[2] == "duplicate" for s in read)
    assert any(e["status"] == "refused" for e in store.entries)


def test_summary_of_every_domain(store):
    code, domains = summary_json("--data-dir", store.data_dir, "dmarc",
                                 "summary")
    assert code == 0
    # No own sources without the configuration; the key makes its
    # selector own all the same.
    want = expected_summary(store.reports, own_keys={OWN_KEY})
    check_summary(domains, want)
    for domain in domains:
        assert domain["advice"]["quarantine_ready"] is False
        assert domain["advice"]["own_failing"] == []


def test_ownership_and_advice(store):
    code, domains = summary_json("--config", store.config, "dmarc",
                                 "summary")
    assert code == 0
    want = expected_summary(store.reports, OWN_NETWORK, {OWN_KEY})
    check_summary(domains, want)

    # The material gives both kinds of each, so the test means something.
    example = want[OWN_KEY[0]]
    owns = [s["own"] for s in example["sources"].values()]
    assert True in owns and False in owns
    assert example["selectors"].table[OWN_KEY]["own"]
    assert len(example["selectors"].table) > 1
    got = next(d for d in domains if d["domain"] == OWN_KEY[0])
    ready = all(s["dkim_aligned_pass"] == s["messages"]
                for s in example["sources"].values() if s["own"])
    assert got["advice"]["quarantine_ready"] is ready
    assert got["advice"]["reason"]


def since_date(store):
    """A date (YYYY-MM-DD) after the end of some stored reports and
    before the end of others."""
    ends = sorted({r["end"] for r in store.reports})
    middle = ends[len(ends) // 2]
    date = time.strftime("%Y-%m-%d", time.gmtime(middle + 86400))
    since = calendar.timegm(time.strptime(date, "%Y-%m-%d"))
    assert ends[0] < since <= ends[-1]
    return date, since


def test_since_keeps_reports_ending_then_or_later(store):
    date, since = since_date(store)
    kept = [r for r in store.reports if r["end"] >= since]
    assert 0 < len(kept) < len(store.reports)
    code, domains = summary_json("--data-dir", store.data_dir, "dmarc",
                                 "summary", "--since", date)
    assert code == 0
    check_summary(domains, expected_summary(kept, own_keys={OWN_KEY}))


def test_domain_argument_keeps_that_domain(store):
    name = OWN_KEY[0]
    code, domains = summary_json("--config", store.config, "dmarc",
                                 "summary", name)
    assert code == 0
    assert [d["domain"] for d in domains] == [name]
    want = expected_summary([r for r in store.reports
                             if r["domain"] == name],
                            OWN_NETWORK, {OWN_KEY})
    check_summary(domains, want)

    # With --since too.
    date, since = since_date(store)
    kept = [r for r in store.reports
            if r["domain"] == name and r["end"] >= since]
    code, domains = summary_json("--config", store.config, "dmarc",
                                 "summary", "--since", date, name)
    assert code == (0 if kept else 1)
    check_summary(domains, expected_summary(kept, OWN_NETWORK, {OWN_KEY}))


def test_unknown_domain_has_no_summary(store):
    assert "no-reports.example" not in {r["domain"] for r in store.reports}
    code, domains = summary_json("--data-dir", store.data_dir, "dmarc",
                                 "summary", "no-reports.example")
    assert code == 1
    assert domains == []


def blocks(stdout):
    """The readable summary split per domain: {domain: lines}."""
    found = {}
    current = None
    for line in stdout.splitlines():
        if line and not line[0].isspace():
            current = line.split(":", 1)[0]
            assert current not in found, current
            found[current] = []
        assert current is not None, line
        found[current].append(line)
    return found


def test_readable_summary(store):
    want = expected_summary(store.reports, OWN_NETWORK, {OWN_KEY})
    code, stdout, stderr = run("--config", store.config, "dmarc", "summary")
    assert code == 0, stderr
    found = blocks(stdout)
    assert sorted(found) == sorted(want)
    for name, lines in found.items():
        advice = [line for line in lines if line.strip().startswith("advice:")]
        assert len(advice) == 1, (name, lines)

    code, stdout, stderr = run("--config", store.config, "dmarc", "summary",
                               "--top", "1")
    assert code == 0, stderr
    found = blocks(stdout)
    assert sorted(found) == sorted(want)
    for name, lines in found.items():
        sources = len(want[name]["sources"])
        more = [line for line in lines if re.search(r"\band \d+ more\b",
                                                    line)]
        if sources > 1:
            assert len(more) == 1, (name, lines)
            assert re.search(rf"\band {sources - 1} more\b", more[0]), \
                (name, more)
        else:
            assert more == [], (name, lines)
        advice = [line for line in lines if line.strip().startswith("advice:")]
        assert len(advice) == 1, (name, lines)




BR022 = CASES / "BR-022" / "dual-signature-record.xml"


def summary_of_two(tmp_path, first, second):
    """Import two reports (XML text), check the summary against Python's
    reading and return what Python expects."""
    paths = [tmp_path / "first.xml", tmp_path / "second.xml"]
    for path, xml in zip(paths, (first, second)):
        path.write_text(xml)
    code, _, stderr = run("--data-dir", tmp_path / "data", "dmarc", "import",
                          *paths)
    assert code == 0, stderr
    want = expected_summary([read_report(p.read_bytes()) for p in paths])
    code, domains = summary_json("--data-dir", tmp_path / "data", "dmarc",
                                 "summary")
    assert code == 0
    check_summary(domains, want)
    return want


def test_names_in_another_case_are_one(tmp_path):
    """A published or signing domain in upper case, as another receiver
    may write it, is the same domain and the same selector."""
    first = BR022.read_text()
    second = first.replace("dual-sig-0001", "dual-sig-0002").replace(
        "<domain>example.com</domain>\n    <adkim>",
        "<domain>EXAMPLE.com</domain>\n    <adkim>").replace(
        "<domain>example.com</domain>\n        <selector>rsa1",
        "<domain>Example.COM</domain>\n        <selector>rsa1")
    assert "EXAMPLE.com" in second and "Example.COM" in second
    want = summary_of_two(tmp_path, first, second)
    assert list(want) == ["example.com"]
    assert set(want["example.com"]["selectors"].table) == \
        {("example.com", "ed1"), ("example.com", "rsa1")}


def test_ipv6_source_in_another_spelling_is_one(tmp_path):
    """The same IPv6 source address written with upper-case digits and
    its zeros spelled out is one source."""
    report = BR022.read_text()
    first = report.replace("192.0.2.10", "2001:db8::10")
    second = report.replace("dual-sig-0001", "dual-sig-0002").replace(
        "192.0.2.10", "2001:DB8:0:0::10")
    want = summary_of_two(tmp_path, first, second)
    assert list(want["example.com"]["sources"]) == ["2001:db8::10"]
