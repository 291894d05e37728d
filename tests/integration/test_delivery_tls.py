"""Delivery's TLS policies and source addresses, against aiosmtpd
receivers that offer STARTTLS with certificates made here by openssl
(a throw-away authority, made for each run and never kept).

- tls=verify delivers to a certificate the configured authority issued
  for the host: by an address route ([127.0.0.2]) and by an MX host name
  served by dnsmasq; the log says tls=verified and the receiver saw TLS;
- tls=verify defers, with OpenSSL's reason, a self-signed certificate and
  a certificate for another name, and nothing reaches those receivers;
- tls=encrypt defers a receiver that offers no STARTTLS (5.7.10);
- tls=may (the default) goes on in plaintext when the handshake fails;
- source= addresses are taken in turn: the receiver sees both.
"""
import re
import ssl
import subprocess
import time

from dnsserver import Dnsmasq, free_port
from receiver import Receiver
from smtpd import Sealpostd
from test_delivery import deliveries, submit, wait_for

GOOD, SELF, PLAIN, PICKY = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
SOURCES = ("127.0.0.9", "127.0.0.10")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   capture_output=True)


def make_certificates(top):
    """A test authority, a server certificate it issued for
    mx.tls.example and 127.0.0.2, and a self-signed one for 127.0.0.3."""
    top.mkdir()
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=sealpost test authority (throw-away)",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=top)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-subj", "/CN=mx.tls.example", "-keyout", "good.key",
            "-out", "good.csr", cwd=top)
    (top / "good.ext").write_text(
        "subjectAltName = DNS:mx.tls.example, IP:127.0.0.2\n")
    openssl("x509", "-req", "-in", "good.csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-CAcreateserial", "-days", "2", "-extfile",
            "good.ext", "-out", "good.pem", cwd=top)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.3", "-addext", "subjectAltName=IP:127.0.0.3",
            "-keyout", "self.key", "-out", "self.pem", cwd=top)
    return top


def server_context(top, name, client_certificate=False):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(top / f"{name}.pem", top / f"{name}.key")
    if client_certificate:
        # A handshake sealpost cannot finish: it has no certificate.
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(top / "ca.pem")
    return context


def rcpt_domains(receiver):
    return {r.split("@")[1] for m in receiver.messages for r in m["rcpts"]}


def test_tls_policies_and_source_addresses(tmp_path):
    certs = make_certificates(tmp_path / "certs")
    port = free_port()
    rules = ("verify.example tls=verify; name.example tls=verify; "
             "wrong.example tls=verify; self.example tls=verify; "
             "enc.example tls=encrypt; "
             f"src.example messages=1 source={','.join(SOURCES)}")
    routes = (f"verify.example=[{GOOD}]:{port} self.example=[{SELF}]:{port} "
              f"enc.example=[{PLAIN}]:{port} may.example=[{PICKY}]:{port} "
              f"src.example=[{PLAIN}]:{port}")
    mx = [("name.example", "mx.tls.example", 10),
          ("wrong.example", "mx.wrong.example", 10)]
    hosts = [("mx.tls.example", GOOD), ("mx.wrong.example", GOOD)]

    with Dnsmasq({"ready.example": "ok"},
                 local_zones=["name.example", "wrong.example"],
                 mx=mx, hosts=hosts) as dns, \
            Receiver(GOOD, port, tls=server_context(certs, "good")) as good, \
            Receiver(SELF, port, tls=server_context(certs, "self")) as bad, \
            Receiver(PLAIN, port) as plain, \
            Receiver(PICKY, port, tls=server_context(
                certs, "good", client_certificate=True)) as picky:
        server = Sealpostd(
            tmp_path, f"resolver = {dns.server()}\n"
            f"delivery_port = {port}\n"
            f"delivery_routes = {routes}\n"
            f"delivery_rules = {rules}\n"
            f"delivery_tls_ca_file = {certs / 'ca.pem'}\n"
            "delivery_retry_schedule = 1s\n")
        with server:
            for n, domain in enumerate(["verify", "name", "wrong", "self",
                                        "enc", "may"]):
                submit(server, "a@example.com", [f"u@{domain}.example"], n)
            for n in range(4):
                submit(server, "a@example.com", [f"s{n}@src.example"], 10 + n)

            assert len(good.wait(2)) == 2, server.log()
            assert len(picky.wait(1)) == 1, server.log()
            assert len(plain.wait(4)) == 4, server.log()

            # The refused ones keep failing, each try after a second.
            def deferred_twice():
                lines = deliveries(server, "deferred")
                return all(sum(f"u@{d}.example" in l for l in lines) >= 2
                           for d in ("wrong", "self", "enc"))

            assert wait_for(deferred_twice, 30), server.log()
            time.sleep(0.5)  # anything wrongly sent would have arrived
            pending = {r["address"] for m in server.queue()
                       for r in m["deliveries"] if r["state"] == "pending"}
            log = server.log()

    assert rcpt_domains(good) == {"verify.example", "name.example"}
    assert all(m["tls"] for m in good.messages)
    for domain in ("verify", "name"):
        (line,) = [l for l in deliveries(server, "delivered")
                   if f"u@{domain}.example" in l]
        assert "tls=verified" in line, line

    assert bad.messages == [] and bad.arrivals == []
    assert pending == {"u@wrong.example", "u@self.example", "u@enc.example"}
    deferred = deliveries(server, "deferred")
    assert any("u@self.example" in l and "self-signed certificate" in l
               for l in deferred), log
    assert any("u@wrong.example" in l and "hostname mismatch" in l
               for l in deferred), log
    assert any("u@enc.example" in l and "5.7.10" in l for l in deferred), log
    assert "enc.example" not in rcpt_domains(plain)

    # Opportunistic TLS that fails goes on in plaintext.
    assert re.search(rf"connect dest=may.example relay={PICKY}:\d+ "
                     r"result=tls_failed .*next=plaintext", log), log
    assert picky.messages[0]["tls"] is False
    (line,) = [l for l in deliveries(server, "delivered") if "u@may" in l]
    assert "tls=no" in line

    # Source addresses in turn, one message per connection.
    peers = {m["peer"] for m in plain.messages
             if m["rcpts"][0].endswith("@src.example")}
    assert peers == set(SOURCES), peers
