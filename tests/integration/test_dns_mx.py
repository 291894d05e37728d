"""A domain's mail exchangers through sealpost's resolver: "sealpost dns mx".

A real DNS server (dnsmasq on a free loopback port, owning example.org)
serves MX records; sealpost's resolver (libunbound forwarding to it) must
give the hosts in order of preference, the domain itself when it has no
MX but exists (RFC 5321 5.1), "no mail" for a null MX (RFC 7505), and
NXDOMAIN for a name that does not exist.
"""
from conftest import sealpost
from dnsserver import Dnsmasq

MX = [
    ("two.example.org", "mx2.two.example.org", 20),
    ("two.example.org", "mx1.two.example.org", 10),
    ("two.example.org", "mx0.two.example.org", 5),
    ("nomail.example.org", ".", 0),
]
RECORDS = {"plain.example.org": "v=spf1 -all"}


def mx(server, domain):
    return sealpost("dns", "mx", domain, "--resolver",
                    f"127.0.0.1@{server.port}")


def test_exchangers_null_mx_implicit_and_missing():
    with Dnsmasq(RECORDS, local_zones=["example.org"], mx=MX) as server:
        done = mx(server, "two.example.org")
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode().splitlines() == [
            "5 mx0.two.example.org", "10 mx1.two.example.org",
            "20 mx2.two.example.org"]

        done = mx(server, "plain.example.org")
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode().strip() == \
            "0 plain.example.org (no MX: the domain itself)"

        done = mx(server, "nomail.example.org")
        assert done.returncode == 1
        assert b"takes no mail (null MX" in done.stdout

        done = mx(server, "missing.example.org")
        assert done.returncode == 1
        assert b"NXDOMAIN" in done.stderr

        assert mx(server, "not a domain").returncode == 2
