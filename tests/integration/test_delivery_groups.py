"""Destinations that group domains: every domain whose MX host a rule's
"mx:" pattern matches shares one queue and one set of limits with the
others, and so does every domain a "shared" rule covers by name.

dnsmasq serves the MX records; aiosmtpd receivers on loopback addresses
count connections.  With one connection allowed for the group, mail for
three domains of one provider arrives over a single connection at a
time, several domains in one session; a domain with its own MX is not
held by the group's limit.
"""
from dnsserver import Dnsmasq, free_port
from receiver import Receiver
from smtpd import Sealpostd
from test_delivery import deliveries, submit_many, wait_empty

PROVIDER, OTHER, NAMED = "127.0.0.2", "127.0.0.3", "127.0.0.4"
GROUPED = ["a.example", "b.example", "c.example"]


def test_mx_and_shared_rules_group_domains(tmp_path):
    port = free_port()
    mx = [(d, f"in{n}.mx.provider.example", 10) for n, d in enumerate(GROUPED)]
    mx.append(("own.example", "mail.own.example", 10))
    hosts = [(f"in{n}.mx.provider.example", PROVIDER) for n in range(3)]
    hosts.append(("mail.own.example", OTHER))
    rules = ("mx:*.mx.provider.example connections=1 messages=1000; "
             "*.named.example shared connections=1 messages=1000")
    routes = " ".join(f"{d}.named.example=[{NAMED}]:{port}" for d in "xyz")
    zones = GROUPED + ["own.example", "provider.example"]

    with Dnsmasq({"ready.example": "ok"}, local_zones=zones, mx=mx,
                 hosts=hosts) as dns, \
            Receiver(PROVIDER, port) as provider, \
            Receiver(OTHER, port) as other, \
            Receiver(NAMED, port) as named:
        server = Sealpostd(
            tmp_path, f"resolver = {dns.server()}\n"
            f"delivery_port = {port}\n"
            f"delivery_rules = {rules}\n"
            f"delivery_routes = {routes}\n"
            "delivery_connections_per_destination = 4\n")
        with server:
            grouped = submit_many(
                server, "s@example.com",
                lambda n: [f"u{n}@{GROUPED[n % 3]}"], 30)
            own = submit_many(server, "s@example.com",
                              lambda n: [f"v{n}@own.example"], 10)
            by_name = submit_many(
                server, "s@example.com",
                lambda n: [f"w{n}@{'xyz'[n % 3]}.named.example"], 12)
            assert len(provider.wait(len(grouped), 60)) == 30, server.log()
            assert len(other.wait(len(own), 60)) == 10, server.log()
            assert len(named.wait(len(by_name), 60)) == 12, server.log()
            assert wait_empty(server), server.log()

    # One connection at a time for the provider's three domains, and
    # sessions that carried more than one of them.
    assert provider.most_at_once == 1, provider.most_at_once
    domains_per_session = {}
    for m in provider.messages:
        domains_per_session.setdefault(m["session"], set()).add(
            m["rcpts"][0].split("@")[1])
    assert max(len(d) for d in domains_per_session.values()) > 1

    lines = deliveries(server, "delivered")
    assert all("dest=mx:*.mx.provider.example" in l
               for l in lines if "@a.example" in l or "@c.example" in l)
    assert all("dest=own.example" in l for l in lines if "@own.example" in l)

    assert named.most_at_once == 1
    assert all("dest=*.named.example" in l
               for l in lines if ".named.example>" in l)
