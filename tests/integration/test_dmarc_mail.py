"""DMARC aggregate reports by mail: sealpostd stores the mail sent to
dmarc_report_addresses as reports and never relays it.

sealpostd runs with smtp_require_auth = yes and one report address.
Over SMTP, with Python's smtplib:

- report mails from the corpus, sent without AUTH as other mail servers
  send them, are answered 250 once stored; "dmarc summary" then shows
  each report, and the queue stays empty;
- the same report again is taken (250) and counted as a duplicate;
- a mail whose attachment is no report (a gzip of the word "unused") is
  taken too, and kept with its reason and its bytes in the store's bucket
  of invalid reports, so the sender does not retry it for days;
- without AUTH, any other recipient is refused with 530;
- a report address and another recipient in one message: the second is
  told 452 to come again separately;
- an authenticated client may send to the report address too.
"""
import email
import json
import re
import smtplib
import sqlite3

import pytest

from conftest import CASES, DATA
from smtpd import Sealpostd

ADDRESS = "dmarc-rua@example.com"
REPORTS = DATA / "corpus" / "dmarc" / "mail-auth"


@pytest.fixture
def server(tmp_path):
    server = Sealpostd(tmp_path, "smtp_require_auth = yes\n"
                       f"dmarc_report_addresses = {ADDRESS}\n")
    with server:
        yield server


def send(server, message, recipients=(ADDRESS,), login=None):
    """Send message (its lines ended with CRLF, as a mail server sends
    them; the files end them with LF); the reply to DATA as (code,
    text)."""
    message = re.sub(rb"\r?\n", b"\r\n", message)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as smtp:
        smtp.ehlo("mx.receiver.example")
        if login is not None:
            smtp.login("app", login)
        smtp.mail("noreply-dmarc@receiver.example")
        for recipient in recipients:
            code, text = smtp.rcpt(recipient)
            assert code == 250, (recipient, code, text)
        return smtp.data(message)


def summary(server):
    done = server.sealpost("dmarc", "summary", "--json", check=False)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)["domains"]


def report_id(eml):
    """The report id the corpus's expected parse gives for eml."""
    expected = json.loads(eml.with_suffix(".json").read_text())
    return expected["report_metadata"]["report_id"]


def test_report_mail_is_stored_not_relayed(server):
    mails = sorted(REPORTS.glob("*.eml"))
    assert len(mails) >= 3

    for eml in mails:
        code, text = send(server, eml.read_bytes())
        assert code == 250, text
        assert b"1 report read" in text, text

    stored = {}
    for domain in summary(server):
        stored[domain["domain"]] = domain["reports"]
    expected = {}
    for eml in mails:
        parsed = json.loads(eml.with_suffix(".json").read_text())
        name = parsed["policy_published"]["domain"].lower()
        expected[name] = expected.get(name, 0) + 1
    assert stored == expected
    assert server.queue() == []
    assert "dmarc_mail queue_id=" in server.log()

    # The same report once more: taken, and a duplicate.
    code, text = send(server, mails[0].read_bytes())
    assert code == 250 and b"1 duplicate" in text, text
    assert {d["domain"]: d["reports"] for d in summary(server)} == expected


def test_mail_without_a_report_is_kept_as_invalid(server):
    mail = (CASES / "BR-017" / "report-email.eml").read_bytes()

    code, text = send(server, mail)
    assert code == 250, text
    assert b"0 reports read" in text and b"1 refused" in text, text
    server.stop()

    with sqlite3.connect(server.data_dir / "sealpost.db") as db:
        rows = db.execute("SELECT source, reason, size, content "
                          "FROM dmarc_refused").fetchall()
    assert len(rows) == 1
    source, reason, size, content = rows[0]
    assert "not XML" in reason and "unused" in reason, reason
    assert "noreply-dmarc@receiver.example" in source, source
    kept = email.message_from_bytes(content)
    assert kept["Message-ID"] == "<unused-0001@receiver.example.org>"
    assert size == len(content) and b"\r\n" in content


def test_other_recipients_need_auth(server):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as smtp:
        smtp.ehlo("mx.receiver.example")
        assert smtp.mail("someone@receiver.example")[0] == 250
        code, text = smtp.rcpt("customer@example.org")
        assert code == 530, text
        assert smtp.rcpt(ADDRESS.upper())[0] == 250


def test_report_address_takes_mail_of_its_own(server):
    key = server.apikey("app")
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as smtp:
        smtp.ehlo("app.example")
        smtp.login("app", key)
        assert smtp.mail("app@example.com")[0] == 250
        assert smtp.rcpt(ADDRESS)[0] == 250
        code, text = smtp.rcpt("customer@example.org")
        assert code == 452 and b"separately" in text, text

    # Alone, an authenticated client's report mail is stored as well.
    eml = sorted(REPORTS.glob("*.eml"))[0]
    code, text = send(server, eml.read_bytes(), login=key)
    assert code == 250 and b"1 report read" in text, text
    assert server.queue() == []
