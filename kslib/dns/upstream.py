"""The DNS outside the cluster: the resolver in the node's resolv.conf, which CoreDNS forwards
every name outside its zones to (kubeadm's Corefile: ``forward . /etc/resolv.conf``) and which
nodes and ``dnsPolicy: Default`` pods ask directly. Modelled as a small record store that a
lesson fills in; names it does not hold answer NXDOMAIN.

>>> up = Upstream()
>>> up.add("api.example.com", "203.0.113.10")
>>> up.add("www.example.com", "api.example.com")        # a name: a CNAME
>>> up.query("www.example.com.", "A").data
['api.example.com.', '203.0.113.10']
"""
from __future__ import annotations

from collections import Counter

from ..api.errors import invalid
from . import names
from .message import NOERROR, NXDOMAIN, Answer, Record

DEFAULT_TTL = 300
MAX_CNAME_CHAIN = 8       # CNAME links followed in one reply, as CoreDNS does (backend_lookup.go: > 7 stops)


class Upstream:
    """Records by name. ``add(name, *values)``: an IPv4 value is an A record, IPv6 AAAA, a name a
    CNAME. ``requests`` counts the queries it received, by rcode."""

    def __init__(self):
        self._records: dict[str, list[Record]] = {}
        self.requests: Counter = Counter()

    def add(self, name: str, *values: str, ttl: int = DEFAULT_TTL) -> None:
        owner = names.fqdn(names.check(name, "name"))
        if not values:
            raise ValueError(str(invalid("values", [], "give at least one IP address or a CNAME target")))
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
            raise ValueError(str(invalid("ttl", ttl, "must be a non-negative integer (seconds)")))
        new = []
        for i, v in enumerate(values):
            if isinstance(v, str) and names.is_ip(v):
                new.append(Record(owner, names.address_type(v), ttl, v))
            else:
                new.append(Record(owner, "CNAME", ttl, names.fqdn(names.check(v, f"values[{i}]"))))
        have = self._records.get(owner, []) + new
        if any(r.type == "CNAME" for r in have) and len(have) > 1:    # RFC 1034 3.6.2
            raise ValueError(str(invalid("values", list(values), f"{owner} would hold a CNAME and other records: "
                                                                   "a CNAME must be the only record of its name")))
        self._records[owner] = have

    def remove(self, name: str) -> None:
        owner = names.fqdn(names.check(name, "name"))
        if self._records.pop(owner, None) is None:
            raise KeyError(f"the upstream DNS holds no records for {owner}")

    @property
    def records(self) -> list[Record]:
        return [r for owner in sorted(self._records) for r in self._records[owner]]

    def query(self, qname: str, qtype: str) -> Answer:
        """The reply to one question; a CNAME is followed within the store (RFC 1034 4.3.2)."""
        reply = Answer(qname, qtype, NOERROR, server="upstream")
        name = qname
        for _ in range(MAX_CNAME_CHAIN + 1):
            here = self._records.get(name)
            if here is None:
                # a name with records only below it (example.com above api.example.com) exists: NODATA
                if not any(owner.endswith("." + name) for owner in self._records):
                    reply.rcode = NXDOMAIN       # RFC 6604: the rcode speaks for the last name of the chain
                break
            if here[0].type == "CNAME" and qtype != "CNAME":
                reply.answer.append(here[0])
                name = here[0].data
                continue
            reply.answer += [r for r in here if r.type == qtype]
            break
        self.requests[reply.rcode] += 1
        return reply
