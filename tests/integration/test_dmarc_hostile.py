"""Hostile aggregate report input, made here: limits that say what they
left out, and names from senders made safe.

- a zip of more than 1,000 reports: 1,000 are read, and one refusal says
  the rest is not;
- a report forwarded more than 8 messages deep: refused, saying so;
- a mail of thousands of MIME parts: refused before it is parsed;
- attachment names with terminal escapes: shown with '?' in place of
  the control bytes, the JSON still whole;
- 40,000 records in one report: read whole;
- a second report after the first in one file: the first is read, with
  a note that the rest was not;
- counts at 2^63-1 in several records: the summary stays at 2^63-1
  instead of wrapping negative.
"""
import gzip
import io
import json
import subprocess
import zipfile

from conftest import SEALPOST

INT64_MAX = 2 ** 63 - 1


def report(report_id, records=((b"192.0.2.1", 1),)):
    rows = b"".join(
        b"<record><row><source_ip>" + ip + b"</source_ip><count>" +
        str(count).encode() + b"</count><policy_evaluated><disposition>none"
        b"</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated>"
        b"</row><identifiers><header_from>example.com</header_from>"
        b"</identifiers></record>" for ip, count in records)
    return (b"<feedback><report_metadata><org_name>rx.example</org_name>"
            b"<report_id>" + report_id.encode() + b"</report_id><date_range>"
            b"<begin>1700000000</begin><end>1700086399</end></date_range>"
            b"</report_metadata><policy_published><domain>example.com"
            b"</domain><p>none</p></policy_published>" + rows +
            b"</feedback>")


def parse(path):
    done = subprocess.run([SEALPOST, "dmarc", "parse", "--json", str(path)],
                          capture_output=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    assert b"ERROR: AddressSanitizer" not in done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def mail(attachment, name=b"r.xml.gz"):
    return (b"From: r@rx.example\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
            b"Content-Type: application/gzip\r\nContent-Disposition: "
            b"attachment; filename=\"" + name + b"\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" +
            __import__("base64").encodebytes(attachment).replace(
                b"\n", b"\r\n") + b"--b--\r\n")


def test_a_zip_past_the_cap_says_the_rest_is_not_read(tmp_path):
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for n in range(1005):
            archive.writestr(f"r{n}.xml", report(f"z{n}"))
    path = tmp_path / "many.zip"
    path.write_bytes(data.getvalue())
    lines = parse(path)
    assert sum(line["status"] == "read" for line in lines) == 1000
    (refusal,) = [line for line in lines if line["status"] == "refused"]
    assert "more than 1000" in refusal["reason"]


def test_deep_forwarding_and_many_parts_are_refused(tmp_path):
    message = mail(gzip.compress(report("deep")))
    for _ in range(9):
        message = (b"From: f@rx.example\r\nMIME-Version: 1.0\r\n"
                   b"Content-Type: message/rfc822\r\n\r\n" + message)
    path = tmp_path / "deep.eml"
    path.write_bytes(message)
    (line,) = parse(path)
    assert line["status"] == "refused"
    assert "forwarded more than 8" in line["reason"]

    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
                     for _ in range(5000))
    path = tmp_path / "parts.eml"
    path.write_bytes(b"From: r@rx.example\r\nMIME-Version: 1.0\r\n"
                     b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
                     parts + b"--b--\r\n")
    (line,) = parse(path)
    assert line["status"] == "refused"
    assert "MIME boundaries" in line["reason"]


def test_names_from_senders_are_made_safe(tmp_path):
    path = tmp_path / "escape.eml"
    path.write_bytes(mail(gzip.compress(report("esc")),
                          b"\x1b]0;title\x07\x1b[2J\xff.xml.gz"))
    (line,) = parse(path)
    assert line["status"] == "read"
    assert "\x1b" not in line["part"] and "\x07" not in line["part"]
    assert line["part"].startswith("?]0;title??[2J"), line["part"]
    assert line["part"].endswith(".xml.gz"), line["part"]


def test_many_records_and_huge_counts(tmp_path):
    rows = [(f"192.0.{n // 250}.{n % 250}".encode(), 1)
            for n in range(40000)]
    path = tmp_path / "big.xml"
    path.write_bytes(report("big", rows))
    (line,) = parse(path)
    assert len(line["report"]["record"]) == 40000

    path = tmp_path / "counts.xml"
    path.write_bytes(report("counts", [(b"192.0.2.1", INT64_MAX),
                                       (b"192.0.2.1", INT64_MAX)]))
    data = tmp_path / "data"
    done = subprocess.run([SEALPOST, "--data-dir", str(data), "dmarc",
                           "import", str(path)], capture_output=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([SEALPOST, "--data-dir", str(data), "dmarc",
                           "summary", "--json"], capture_output=True,
                          timeout=60)
    (domain,) = json.loads(done.stdout)["domains"]
    assert domain["messages"] == INT64_MAX
    assert domain["sources"][0]["messages"] == INT64_MAX


def test_a_second_report_in_one_file_is_noted(tmp_path):
    path = tmp_path / "two.xml"
    path.write_bytes(report("first") + b"\n" + report("second"))
    (line,) = parse(path)
    assert line["report"]["report_metadata"]["report_id"] == "first"
    assert any("not read" in note for note in line["report"]["notes"])

    path = tmp_path / "one.xml"
    path.write_bytes(report("only") + b"\n\n")
    (line,) = parse(path)
    assert line["report"]["notes"] == []
