"""POST /api/v1/transmissions: messages built from content and
recipients, as SparkPost's API takes them, delivered to a receiver the
test starts.

- One transmission to three recipients, with substitution (escaped in
  HTML, plain in text, nested names, #if and #each), a shared attachment,
  an inline image, each recipient's own attachment, names and a subject
  outside ASCII, campaign and metadata: each message parses back with
  Python's email package to the structure asked for, its files byte for
  byte, and passes dkimpy; the events carry the transmission, the
  campaign and each recipient's metadata; unknown names are warnings.
- A whole message given as email_rfc822 is rendered and sent as it is.
- Substitution data that would break a field onto a new line makes a
  generation_failure for that recipient alone.
- Bad requests get a JSON error naming the field, and nothing is queued.
"""
import base64
import email
import email.policy
import json
import os

import dkim

from dnsserver import free_port
from receiver import Receiver
from smtpd import Sealpostd
from test_delivery import wait_for
from test_events import api, events
from test_smtp_signing import dnsfunc, records

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
    "DwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def start(tmp_path, port):
    server = Sealpostd(tmp_path, f"delivery_smarthost = 127.0.0.1:{port}\n"
                       "dkim_domains = example.com\n")
    server.sealpost("dkim", "keygen", "example.com", "--selector", "tx1",
                    "--ed25519")
    server.sealpost("dkim", "activate", "example.com", "tx1")
    return server


def sender_key(server):
    return server.sealpost("apikey", "create", "--name", "app", "--scope",
                           "send").stdout.decode().strip()


def parts(message):
    """{content type: [parts]} of a parsed message, leaves only."""
    found = {}
    for part in message.walk():
        if not part.is_multipart():
            found.setdefault(part.get_content_type(), []).append(part)
    return found


def test_transmission_with_substitution_files_and_metadata(tmp_path):
    port = free_port()
    statement = os.urandom(50 * 1024)
    with Receiver("127.0.0.1", port) as receiver:
        server = start(tmp_path, port)
        with server:
            key = sender_key(server)
            people = [("Zoë Ärger", "zoe@example.org", "gold"),
                      ("Tom <& Jerry>", "tom@example.org", ""),
                      ("Ann", "ann@example.org", "")]
            body = {
                "campaign_id": "statements-2026-11",
                "metadata": {"batch": "nov", "region": "eu"},
                "substitution_data": {"bank": "Öko Bank",
                                      "items": [{"what": "fee", "eur": 2}]},
                "recipients": [
                    {"address": {"email": address, "name": name},
                     "substitution_data": {"name": name, "tier": tier,
                                           "account": {"no": f"AC{n}"}},
                     "metadata": {"customer": str(n), "region": "de"},
                     "attachments": [{
                         "name": f"statement-{n}.txt",
                         "type": "text/plain",
                         "data": base64.b64encode(
                             f"own file of {address}".encode()).decode()}]}
                    for n, (name, address, tier) in enumerate(people)],
                "content": {
                    "from": {"email": "bank@example.com",
                             "name": "{{bank}} Kundenservice"},
                    "subject": "Ihr Kontoauszug, {{name}} — {{account.no}}",
                    "reply_to": "help@example.com",
                    "headers": {"X-Statement": "{{account.no}}"},
                    "text": "Dear {{name}},\n{{#if tier}}Tier: {{tier}}\n"
                            "{{/if}}{{#each items}}{{what}}={{eur}};"
                            "{{/each}}\nUnknown: [{{nobody}}]\n",
                    "html": "<p>Dear {{name}}</p><p>{{{bank}}}</p>"
                            "<img src=\"cid:logo.png\">",
                    "attachments": [{
                        "name": "statement.pdf", "type": "application/pdf",
                        "data": base64.b64encode(statement).decode()}],
                    "inline_images": [{
                        "name": "logo.png", "type": "image/png",
                        "data": base64.b64encode(PNG).decode()}],
                },
            }
            status, answer = api(server, "/api/v1/transmissions", key,
                                 "POST", body)
            assert status == 200, answer
            results = answer["results"]
            assert results["total_accepted_recipients"] == 3
            assert results["total_rejected_recipients"] == 0
            assert [w["message"] for w in answer["warnings"]] == [
                "substitution variable nobody had no value"]

            got = receiver.wait(3)
            assert len(got) == 3, server.log()
            lookup = dnsfunc(records(server, "example.com"))
            by_rcpt = {}
            for arrival in got:
                raw = arrival["data"]
                assert dkim.verify(raw, dnsfunc=lookup), raw[:400]
                assert b"\n" not in raw.replace(b"\r\n", b"")
                assert max(len(line) for line in raw.split(b"\r\n")) <= 998
                by_rcpt[arrival["rcpts"][0]] = email.message_from_bytes(
                    raw, policy=email.policy.default)

            for n, (name, address, tier) in enumerate(people):
                message = by_rcpt[address]
                assert message["To"].addresses[0].display_name == name
                assert message["To"].addresses[0].addr_spec == address
                assert message["From"].addresses[0].display_name == \
                    "Öko Bank Kundenservice"
                assert str(message["Subject"]) == \
                    f"Ihr Kontoauszug, {name} — AC{n}"
                assert str(message["Reply-To"]) == "help@example.com"
                assert str(message["X-Statement"]) == f"AC{n}"
                assert message.get_content_type() == "multipart/mixed"
                found = parts(message)
                text = found["text/plain"][0].get_content()
                text = text.replace("\r\n", "\n")  # canonical form: CRLF
                assert text.startswith(f"Dear {name},\n")
                assert ("Tier: gold" in text) == (tier == "gold")
                assert "fee=2;" in text and "Unknown: []" in text
                html = found["text/html"][0].get_content()
                assert "Öko Bank" in html
                assert ("&lt;&amp; Jerry&gt;" in html) == ("<" in name)
                (pdf,) = found["application/pdf"]
                assert pdf.get_filename() == "statement.pdf"
                assert pdf.get_content() == statement
                (logo,) = found["image/png"]
                assert logo["Content-ID"].strip("<>") == "logo.png"
                assert logo.get_content() == PNG
                own = [p for p in found["text/plain"][1:]
                       if p.get_filename() == f"statement-{n}.txt"]
                assert own and own[0].get_content() == \
                    f"own file of {address}"
                related = [p for p in message.walk()
                           if p.get_content_type() == "multipart/related"]
                assert related, "inline images go with the html"

            # The events: the transmission, campaign and metadata.
            found = wait_for(lambda: (lambda e: e if len(e) >= 6 else None)(
                [e for e in events(server)
                 if e["type"] in ("injection", "delivery")]), 20)
            assert found, server.log()
            for event in found:
                n = [p[1] for p in people].index(event["rcpt_to"])
                assert event["transmission_id"] == results["id"]
                assert event["campaign_id"] == "statements-2026-11"
                assert event["metadata"] == {"batch": "nov",
                                             "region": "de",
                                             "customer": str(n)}
                assert event["subject"].startswith("Ihr Kontoauszug")
                if event["type"] == "injection":
                    assert event["identity"] == "app"
                    assert event["dkim_signatures"] == [
                        {"domain": "example.com", "selector": "tx1"}]


def test_whole_message_and_refusals(tmp_path):
    port = free_port()
    with Receiver("127.0.0.1", port) as receiver:
        server = start(tmp_path, port)
        with server:
            key = sender_key(server)
            reader = server.sealpost("apikey", "create", "--name", "r",
                                     "--scope", "read").stdout.decode()
            good = {"recipients": [{"address": "x@example.org"}],
                    "content": {"from": "bank@example.com", "subject": "s",
                                "text": "t"}}

            whole = {"recipients": [{"address": "w@example.org",
                                     "substitution_data": {"who": "Wes"}}],
                     "content": {"email_rfc822":
                                 "From: bank@example.com\nTo: "
                                 "w@example.org\nSubject: Hi {{who}}\n\n"
                                 "Hello {{who}}.\n"}}
            status, answer = api(server, "/api/v1/transmissions", key,
                                 "POST", whole)
            assert status == 200, answer
            (got,) = receiver.wait(1)
            assert b"Subject: Hi Wes\r\n" in got["data"]
            assert got["data"].endswith(b"\r\nHello Wes.\r\n")

            # Substitution data may not add fields: that recipient's
            # message is not made (generation_failure), the others go.
            split = {"recipients": [
                {"address": "ok@example.org",
                 "substitution_data": {"who": "Kim"}},
                {"address": "evil@example.org",
                 "substitution_data": {"who": "Kim\r\nBcc: x@example.net"}}],
                "content": {"from": "bank@example.com",
                            "subject": "Hi {{who}}", "text": "t"}}
            status, answer = api(server, "/api/v1/transmissions", key,
                                 "POST", split)
            assert status == 200, answer
            assert answer["results"]["total_accepted_recipients"] == 1
            assert answer["results"]["total_rejected_recipients"] == 1
            assert len(receiver.wait(2)) == 2
            assert receiver.messages[1]["rcpts"] == ["ok@example.org"]
            failed = wait_for(lambda: events(server, "--type",
                                             "generation_failure"), 10)
            assert [e["rcpt_to"] for e in failed] == ["evil@example.org"]
            assert "line break" in failed[0]["raw_reason"]
            assert failed[0]["transmission_id"] == answer["results"]["id"]

            def without(path):
                body = json.loads(json.dumps(good))
                *outer, last = path
                node = body
                for step in outer:
                    node = node[step]
                del node[last]
                return body

            def change(path, value):
                body = json.loads(json.dumps(good))
                *outer, last = path
                node = body
                for step in outer:
                    node = node[step]
                node[last] = value
                return body

            huge = base64.b64encode(b"\0" * (26 * 1024 * 1024)).decode()
            for body, want, words in (
                    (b"{not json", 400, "line 1"),
                    (b"[1, 2]", 422, "the body"),
                    (without(["recipients"]), 422, "recipients"),
                    (change(["recipients"], []), 422, "recipients"),
                    (change(["recipients"], "x@example.org"), 422,
                     "recipients"),
                    (change(["recipients"], [{"address": "not an address"}]),
                     422, "recipients[0].address"),
                    (change(["recipients"], [{"address": {"name": "n"}}]),
                     422, "recipients[0].address.email"),
                    (without(["content", "from"]), 422, "content.from"),
                    (change(["content", "from"], "nobody"), 422,
                     "content.from"),
                    (change(["content", "subject"], 7), 422,
                     "content.subject"),
                    (without(["content", "text"]), 422, "content.text"),
                    (change(["content", "headers"], {"From": "x"}), 422,
                     "content.headers.From"),
                    (change(["content", "text"], "{{#if a}}x"), 422,
                     "content.text"),
                    (change(["content", "attachments"],
                            [{"name": "a", "type": "text/plain",
                              "data": "!!!"}]), 422,
                     "content.attachments[0].data"),
                    (change(["content", "attachments"],
                            [{"name": "big", "type": "application/zip",
                              "data": huge}]), 422,
                     "content.attachments"),
                    (change(["metadata"], "x"), 422, "metadata"),
                    (change(["campaign_id"], "c" * 65), 422, "campaign_id"),
                    (change(["content", "template_id"], "t1"), 422,
                     "content.template_id")):
                status, answer = api(server, "/api/v1/transmissions", key,
                                     "POST", body)
                assert status == want, (body if len(str(body)) < 300 else
                                        words, answer)
                error = answer["errors"][0]
                assert words in error.get("description", "") + \
                    error["message"], answer
                assert error["code"]

            status, answer = api(server, "/api/v1/transmissions", None,
                                 "POST", good)
            assert status == 401
            status, answer = api(server, "/api/v1/transmissions",
                                 reader.strip(), "POST", good)
            assert status == 403 and "send" in answer["errors"][0]["message"]
            assert server.queue() == []
            assert len(receiver.messages) == 2
