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
- The official SparkPost client for Node.js (npm "sparkpost") sends a
  transmission by changing only its origin and key.
- "sealpost send" sends a template to a CSV file of recipients, or a
  transmission from a file.
- Python's email package and mailparser (npm) read the messages of every
  shape (non-ASCII names and subjects, long lines, html only, text only,
  20 attachments, inline images, each recipient's own files) back to
  what was asked for.
"""
import base64
import email
import email.policy
import hashlib
import json
import os
import socket
import subprocess
import time

import dkim

from conftest import SEALPOST, node_clients
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
                    (b"[1, 2]", 400, "not an object"),
                    (b'{"a": "\\u0000"}', 400, "NUL"),
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
                     "content.template_id"),
                    (change(["content", "attachments"],
                            [{"name": "a", "type": "text/plain; charset=x",
                              "data": "YQ=="}]), 422,
                     "content.attachments[0].type"),
                    (change(["content", "from"], "bank@[127.0.0.1]"), 422,
                     "address literal"),
                    (change(["campaign_id"], "a\r\nb"), 422, "campaign_id"),
                    (change(["recipients"], [{"address": {
                        "email": "x@example.org", "name": "a\r\nBcc: y"}}]),
                     422, "recipients[0].address.name"),
                    (change(["recipients"], [{
                        "address": "x@example.org",
                        "substitution_data": {"a": list(range(10))}}]) |
                     {"content": {"from": "bank@example.com",
                                  "subject": "s",
                                  "text": "{{#each a}}" * 16 + "x" +
                                          "{{/each}}" * 16}},
                     422, "steps"),
                    (change(["recipients"], [{
                        "address": "x@example.org",
                        "substitution_data": {"a": list(range(30)),
                                              "x": "y" * 1000000}}]) |
                     {"content": {"from": "bank@example.com",
                                  "subject": "s",
                                  "text": "{{#each a}}{{x}}{{/each}}"}},
                     422, "over 26214400 octets")):
                status, answer = api(server, "/api/v1/transmissions", key,
                                     "POST", body)
                assert status == want, (body if len(str(body)) < 300 else
                                        words, answer)
                error = answer["errors"][0]
                assert words in error.get("description", "") + \
                    error["message"], answer
                assert error["code"]

            # A body declared too large is refused before it is sent.
            with socket.create_connection(("127.0.0.1", server.http_port),
                                          timeout=10) as raw:
                raw.sendall(b"POST /api/v1/transmissions HTTP/1.1\r\n"
                            b"Host: x\r\nAuthorization: " + key.encode() +
                            b"\r\nContent-Length: 99999999999\r\n"
                            b"Expect: 100-continue\r\n\r\n")
                head = raw.recv(4096)
            assert head.startswith(b"HTTP/1.1 413"), head

            status, answer = api(server, "/api/v1/transmissions", None,
                                 "POST", good)
            assert status == 401
            status, answer = api(server, "/api/v1/transmissions",
                                 reader.strip(), "POST", good)
            assert status == 403 and "send" in answer["errors"][0]["message"]
            assert server.queue() == []
            assert len(receiver.messages) == 2


SPARKPOST_SCRIPT = r"""
const SparkPost = require('sparkpost');
const [key, origin, file] = process.argv.slice(1);
const client = new SparkPost(key, {origin: origin});
const fs = require('fs');
client.transmissions.send({
  campaign_id: 'node-client',
  metadata: {source: 'npm'},
  substitution_data: {product: 'Gold account'},
  recipients: [{address: {email: 'node@example.org', name: 'Nora Node'},
                substitution_data: {first: 'Nora'},
                metadata: {customer: 'n-1'}}],
  content: {
    from: {email: 'bank@example.com', name: 'Bank'},
    subject: 'Welcome {{first}}',
    text: 'Hi {{first}}, your {{product}} is open.',
    html: '<b>Hi {{first}}</b>',
    attachments: [{name: 'terms.bin', type: 'application/octet-stream',
                   data: fs.readFileSync(file).toString('base64')}]
  }
}).then(data => { console.log(JSON.stringify(data)); })
  .catch(err => { console.error(err); process.exit(1); });
"""

MAILPARSER_SCRIPT = r"""
const {simpleParser} = require('mailparser');
const crypto = require('crypto');
const fs = require('fs');
(async () => {
  const out = [];
  for (const file of process.argv.slice(1)) {
    const m = await simpleParser(fs.readFileSync(file));
    out.push({
      from: m.from.value[0], to: m.to.value[0], subject: m.subject,
      text: m.text || null, html: m.html || null,
      attachments: m.attachments.map(a => ({
        filename: a.filename, type: a.contentType, size: a.size,
        sha256: crypto.createHash('sha256').update(a.content)
                      .digest('hex'),
        cid: a.cid || null, related: !!a.related}))});
  }
  console.log(JSON.stringify(out));
})().catch(err => { console.error(err); process.exit(1); });
"""


def node(script, *args, cwd):
    done = subprocess.run(["node", "-e", script, *map(str, args)], cwd=cwd,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def test_official_sparkpost_client_sends_unchanged(tmp_path):
    clients = node_clients()
    port = free_port()
    terms = os.urandom(20000)
    (tmp_path / "terms.bin").write_bytes(terms)
    with Receiver("127.0.0.1", port) as receiver:
        server = start(tmp_path, port)
        with server:
            key = sender_key(server)
            answer = node(SPARKPOST_SCRIPT, key,
                          f"http://127.0.0.1:{server.http_port}",
                          tmp_path / "terms.bin", cwd=clients)
            results = answer["results"]
            assert results["total_accepted_recipients"] == 1, answer
            (got,) = receiver.wait(1)
            raw = got["data"]
            assert dkim.verify(raw, dnsfunc=dnsfunc(
                records(server, "example.com")))
            message = email.message_from_bytes(raw,
                                               policy=email.policy.default)
            found = parts(message)
            assert found["text/plain"][0].get_content() == \
                "Hi Nora, your Gold account is open."
            assert found["text/html"][0].get_content() == "<b>Hi Nora</b>"
            (file,) = found["application/octet-stream"]
            assert file.get_filename() == "terms.bin"
            assert file.get_content() == terms

            found = wait_for(lambda: (lambda e: e if len(e) >= 2 else None)(
                [e for e in events(server, "--campaign", "node-client")
                 if e["type"] in ("injection", "delivery")]), 20)
            assert found, server.log()
            for event in found:
                assert event["metadata"] == {"source": "npm",
                                             "customer": "n-1"}
                assert event["transmission_id"] == results["id"]


def shapes():
    """(name, transmission, what each message must parse back to)."""
    long_word = "x" * 5000
    files = [(f"f{n:02}.bin", os.urandom(1000 + 731 * n)) for n in range(20)]
    images = [("a.png", PNG), ("b.png", PNG + b"\0")]

    def files_json(pairs, kind="application/octet-stream"):
        return [{"name": name, "type": kind,
                 "data": base64.b64encode(data).decode()}
                for name, data in pairs]

    def one(content, to="s@example.org", **more):
        content = dict({"from": {"email": "bank@example.com",
                                 "name": "Bank"}}, **content)
        return dict({"recipients": [{"address": to}],
                     "content": content}, **more)

    return [
        ("non-ascii", one({"from": {"email": "bank@example.com",
                                    "name": "Zoë Ärger-Ñandú"},
                           "subject": "Übersicht — ✓ 月次明細",
                           "text": "Grüße, 日本語のテキスト\n"}),
         dict(from_name="Zoë Ärger-Ñandú", subject="Übersicht — ✓ 月次明細",
              text="Grüße, 日本語のテキスト\n", html=None, files=[])),
        ("long lines", one({"subject": "long", "text": long_word,
                            "html": f"<p>{long_word}</p>"}),
         dict(from_name="Bank", subject="long", text=long_word,
              html=f"<p>{long_word}</p>", files=[])),
        ("html only", one({"subject": "h", "html": "<p>only html</p>"}),
         dict(from_name="Bank", subject="h", text=None,
              html="<p>only html</p>", files=[])),
        ("text only", one({"subject": "t", "text": "only text"}),
         dict(from_name="Bank", subject="t", text="only text", html=None,
              files=[])),
        ("20 attachments", one({"subject": "many", "text": "see files",
                                "attachments": files_json(files)}),
         dict(from_name="Bank", subject="many", text="see files", html=None,
              files=[(n, d, None) for n, d in files])),
        ("inline images", one({
            "subject": "img", "text": "t",
            "html": '<img src="cid:a.png"><img src="cid:b.png">',
            "inline_images": files_json(images, "image/png")}),
         dict(from_name="Bank", subject="img", text="t",
              html='<img src="cid:a.png"><img src="cid:b.png">',
              files=[(n, d, n) for n, d in images])),
        ("own attachments", {
            "recipients": [
                {"address": "p1@example.org", "attachments": files_json(
                    [("p1.txt", b"for p1 only")], "text/plain")},
                {"address": "p2@example.org", "attachments": files_json(
                    [("p2.txt", b"for p2 only")], "text/plain")}],
            "content": {"from": {"email": "bank@example.com",
                                 "name": "Bank"},
                        "subject": "own", "text": "yours",
                        "attachments": files_json([("common.pdf",
                                                    b"%PDF-1.4 common")],
                                                  "application/pdf")}},
         dict(from_name="Bank", subject="own", text="yours", html=None,
              files=[("common.pdf", b"%PDF-1.4 common", None),
                     ("{rcpt}.txt", None, None)])),
    ]


def test_messages_parse_back_in_every_shape(tmp_path):
    """Python's email package and mailparser (npm) both read each
    generated message back to the structure that was asked for."""
    clients = node_clients()
    port = free_port()
    with Receiver("127.0.0.1", port) as receiver:
        server = start(tmp_path, port)
        with server:
            key = sender_key(server)
            wanted = {}
            for name, body, want in shapes():
                status, answer = api(server, "/api/v1/transmissions", key,
                                     "POST", body)
                assert status == 200, (name, answer)
                for rcpt in body["recipients"]:
                    wanted[rcpt["address"] + "|" + body["content"]
                           ["subject"]] = (name, want)
            got = receiver.wait(8)
            assert len(got) == 8, server.log()

        paths, keys = [], []
        for n, arrival in enumerate(got):
            raw = arrival["data"]
            assert max(len(line) for line in raw.split(b"\r\n")) <= 998
            assert b"\n" not in raw.replace(b"\r\n", b"")
            path = tmp_path / f"m{n}.eml"
            path.write_bytes(raw)
            paths.append(path)
            message = email.message_from_bytes(raw,
                                               policy=email.policy.default)
            keys.append(arrival["rcpts"][0] + "|" + str(message["Subject"]))
        parsed_js = node(MAILPARSER_SCRIPT, *paths, cwd=clients)

        for key, path, js in zip(keys, paths, parsed_js):
            name, want = wanted[key]
            rcpt = key.split("|")[0]
            files = [(f.replace("{rcpt}", rcpt.split("@")[0]),
                      data if data is not None else
                      f"for {rcpt.split('@')[0]} only".encode(), cid)
                     for f, data, cid in want["files"]]

            # Python's email package.
            message = email.message_from_bytes(path.read_bytes(),
                                               policy=email.policy.default)
            assert message["From"].addresses[0].display_name == \
                want["from_name"], name
            assert str(message["Subject"]) == want["subject"], name
            bodies = [p for p in message.walk() if not p.is_multipart() and
                      p.get_content_disposition() is None]
            # A body that is the whole message ends with its own line
            # break; in a multipart one that belongs to the boundary.
            texts = [p.get_content().replace("\r\n", "\n").rstrip("\n")
                     for p in bodies if p.get_content_type() == "text/plain"]
            htmls = [p.get_content().replace("\r\n", "\n").rstrip("\n")
                     for p in bodies if p.get_content_type() == "text/html"]
            assert texts == ([want["text"].rstrip("\n")] if want["text"]
                             else []), name
            assert htmls == ([want["html"]] if want["html"] else []), name
            attached = [(p.get_filename(), p.get_payload(decode=True),
                         p["Content-ID"].strip("<>") if p["Content-ID"]
                         else None)
                        for p in message.walk() if not p.is_multipart() and
                        p.get_content_disposition() is not None]
            assert attached == files, name
            if want["text"] and want["html"]:
                assert any(p.get_content_type() == "multipart/alternative"
                           for p in message.walk()), name

            # mailparser.
            assert js["from"]["name"] == want["from_name"], name
            assert js["subject"] == want["subject"], name
            assert js["to"]["address"] == rcpt, name
            if want["text"]:
                assert js["text"].replace("\r\n", "\n").rstrip("\n") == \
                    want["text"].rstrip("\n"), name
            if want["html"]:
                # mailparser puts each related image into the html as a
                # data: address in place of its cid: one.
                html = want["html"]
                for f, data, cid in files:
                    if cid:
                        html = html.replace(
                            f"cid:{cid}", "data:image/png;base64," +
                            base64.b64encode(data).decode())
                assert js["html"].rstrip("\r\n") == html, name
            assert [(a["filename"], a["sha256"], a["cid"])
                    for a in js["attachments"]] == [
                (f, hashlib.sha256(d).hexdigest(), cid)
                for f, d, cid in files], name
            assert all(a["related"] == (a["cid"] is not None)
                       for a in js["attachments"]), name


def test_stored_templates(tmp_path):
    """/api/v1/templates stores content that a transmission then names by
    content.template_id; content is checked as a transmission's is."""
    port = free_port()
    with Receiver("127.0.0.1", port) as receiver:
        server = start(tmp_path, port)
        with server:
            key = sender_key(server)
            admin = server.sealpost("apikey", "create", "--name", "t",
                                    "--scope", "templates").stdout.decode()
            admin = admin.strip()
            content = {"from": "bank@example.com",
                       "subject": "Statement for {{name}}",
                       "html": "<p>Hello {{name}}</p>"}
            status, answer = api(server, "/api/v1/templates", admin, "POST",
                                 {"name": "Monthly Statement!",
                                  "description": "the big one",
                                  "content": content})
            assert status == 200, answer
            assert answer["results"]["id"] == "monthly-statement"

            status, answer = api(server, "/api/v1/templates", admin)
            (listed,) = answer["results"]
            assert listed["id"] == "monthly-statement"
            assert listed["description"] == "the big one"
            assert "content" not in listed
            status, answer = api(server,
                                 "/api/v1/templates/monthly-statement",
                                 admin)
            assert status == 200 and answer["results"]["content"] == content

            changed = dict(content, text="Hello {{name}} (text)")
            status, answer = api(server,
                                 "/api/v1/templates/monthly-statement",
                                 admin, "PUT", {"content": changed})
            assert status == 200, answer
            status, answer = api(server,
                                 "/api/v1/templates/monthly-statement",
                                 admin)
            assert answer["results"]["content"] == changed
            assert answer["results"]["name"] == "Monthly Statement!"

            status, answer = api(server, "/api/v1/transmissions", key,
                                 "POST", {
                                     "recipients": [{
                                         "address": "t@example.org",
                                         "substitution_data": {
                                             "name": "Tia"}}],
                                     "content": {"template_id":
                                                 "monthly-statement"}})
            assert status == 200, answer
            (got,) = receiver.wait(1)
            message = email.message_from_bytes(got["data"],
                                               policy=email.policy.default)
            assert str(message["Subject"]) == "Statement for Tia"
            found = parts(message)
            assert found["text/plain"][0].get_content() == "Hello Tia (text)"

            for path, method, key_used, body, want, words in (
                    ("/api/v1/templates", "POST", admin,
                     {"name": "x", "content": {"from": "bank@example.com",
                                               "subject": "s"}}, 422,
                     "content.text or content.html"),
                    ("/api/v1/templates", "POST", admin,
                     {"name": "x", "content": dict(content,
                                                  html="{{#if a}}")},
                     422, "content.html"),
                    ("/api/v1/templates", "POST", admin,
                     {"content": content}, 422, "name"),
                    ("/api/v1/templates", "POST", admin,
                     {"id": "Bad Id", "name": "x", "content": content}, 422,
                     "id"),
                    ("/api/v1/templates", "POST", admin,
                     {"id": "monthly-statement", "name": "again",
                      "content": content}, 409, "exists"),
                    ("/api/v1/templates/nothing", "PUT", admin,
                     {"name": "y"}, 404, "no template"),
                    ("/api/v1/templates", "GET", key, None, 403,
                     "templates scope"),
                    ("/api/v1/transmissions", "POST", key,
                     {"recipients": ["a@example.org"],
                      "content": {"template_id": "nothing"}}, 422,
                     "content.template_id")):
                status, answer = api(server, path, key_used, method, body)
                assert status == want, (path, method, body, answer)
                error = answer["errors"][0]
                assert words in error.get("description", "") + \
                    error["message"], answer

            status, answer = api(server,
                                 "/api/v1/templates/monthly-statement",
                                 admin, "DELETE")
            assert status == 204
            status, answer = api(server,
                                 "/api/v1/templates/monthly-statement",
                                 admin)
            assert status == 404


def test_send_command(tmp_path):
    """"sealpost send": a template to a CSV file of recipients in
    batches, or a transmission from a file; bad input is a usage error,
    an API out of reach a runtime one."""
    port = free_port()
    with Receiver("127.0.0.1", port) as receiver:
        server = start(tmp_path, port)
        with server:
            key = sender_key(server)
            content = {"from": "bank@example.com",
                       "subject": "Balance {{balance}}",
                       "text": "Dear {{name}}: {{note}}"}
            status, _ = api(server, "/api/v1/templates", key_all(server),
                            "POST", {"id": "balance", "name": "Balance",
                                     "content": content})
            assert status == 200
            (tmp_path / "list.csv").write_bytes(
                b'email,name,balance,note\r\n'
                b'a1@example.org,Ann,10,plain\r\n'
                b'a2@example.org,"Lee, Bo",20,"says ""hi"""\r\n'
                b'a3@example.org,Cy,30,"two\nlines"\n'
                b'\n'
                b'a4@example.org,Di,40,last\n')
            env = dict(os.environ, SEALPOST_API_KEY=key)
            done = subprocess.run(
                [SEALPOST, "--config", server.config_path, "send",
                 "--template", "balance", "--recipients",
                 tmp_path / "list.csv", "--batch", "3",
                 "--campaign", "csv-run"],
                env=env, capture_output=True, timeout=60)
            assert done.returncode == 0, done.stderr.decode()
            lines = done.stdout.decode().splitlines()
            assert len(lines) == 2 and all(
                l.startswith("transmission ") for l in lines), lines
            assert b"sent 4 of 4" in done.stderr
            got = {m["rcpts"][0]: email.message_from_bytes(
                m["data"], policy=email.policy.default)
                for m in receiver.wait(4)}
            assert len(got) == 4, server.log()
            lee = got["a2@example.org"]
            assert str(lee["Subject"]) == "Balance 20"
            assert str(lee["To"]) == '"Lee, Bo" <a2@example.org>'
            assert lee.get_content().rstrip("\r\n") == \
                'Dear Lee, Bo: says "hi"'
            assert "two\r\nlines" in got["a3@example.org"].get_content()
            assert wait_for(lambda: len(events(
                server, "--campaign", "csv-run", "--type", "injection"))
                == 4, 10)

            (tmp_path / "one.json").write_text(json.dumps({
                "recipients": ["f@example.org"],
                "content": {"from": "bank@example.com", "subject": "file",
                            "text": "from a file"}}))
            done = subprocess.run(
                [SEALPOST, "--config", server.config_path, "send", "--file",
                 tmp_path / "one.json"], env=env, capture_output=True,
                timeout=60)
            assert done.returncode == 0, done.stderr.decode()
            assert len(receiver.wait(5)) == 5

            (tmp_path / "bad.csv").write_text('email\n"open@example.org\n')
            (tmp_path / "nomail.csv").write_text("name\nx\n")
            for args, environment, want, words in (
                    (["--template", "balance", "--recipients",
                      tmp_path / "bad.csv"], env, 2, "not closed"),
                    (["--template", "balance", "--recipients",
                      tmp_path / "nomail.csv"], env, 2, "email"),
                    (["--file", tmp_path / "one.json"],
                     dict(os.environ, SEALPOST_API_KEY=""), 2,
                     "SEALPOST_API_KEY"),
                    (["--template", "nothing", "--recipients",
                      tmp_path / "list.csv"], env, 3, "template_id"),
                    (["--template", "balance"], env, 2, "--recipients")):
                done = subprocess.run(
                    [SEALPOST, "--config", server.config_path, "send",
                     *map(str, args)], env=environment,
                    capture_output=True, timeout=60)
                assert done.returncode == want, (args, done.stderr)
                assert words in done.stderr.decode(), done.stderr
            done = subprocess.run(
                [SEALPOST, "--api", "http://127.0.0.1:1", "send", "--file",
                 tmp_path / "one.json"], env=env, capture_output=True,
                timeout=60)
            assert done.returncode == 3 and b"127.0.0.1:1" in done.stderr
            assert len(receiver.messages) == 5


def key_all(server):
    """A key that may send and manage templates."""
    return server.sealpost("apikey", "create", "--name", "all", "--scope",
                           "send", "--scope",
                           "templates").stdout.decode().strip()


def test_start_time_holds_delivery_until_then(tmp_path):
    """options.start_time: the messages are stored at once, delivered
    from that time on; a time that is not one, or past the queue's
    lifetime, is refused."""
    port = free_port()
    with Receiver("127.0.0.1", port) as receiver:
        server = start(tmp_path, port)
        with server:
            key = sender_key(server)
            at = time.time() + 4
            when = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(at))
            body = {"recipients": ["later@example.org"],
                    "options": {"start_time": when, "open_tracking": True},
                    "content": {"from": "bank@example.com", "subject": "s",
                                "text": "t"}}
            status, answer = api(server, "/api/v1/transmissions", key,
                                 "POST", body)
            assert status == 200, answer
            (entry,) = server.queue()
            assert receiver.wait(1, timeout=2) == []
            (got,) = receiver.wait(1, timeout=20)
            assert got["time"] and time.time() >= int(at), server.log()
            assert wait_for(lambda: server.queue() == [], 10)

            for start_time in ("tomorrow", "2026-12-05T08:00:00",
                               "2999-01-01T00:00:00Z"):
                body["options"]["start_time"] = start_time
                status, answer = api(server, "/api/v1/transmissions", key,
                                     "POST", body)
                assert status == 422, (start_time, answer)
                assert "options.start_time" in \
                    answer["errors"][0]["description"]
            assert server.queue() == []
