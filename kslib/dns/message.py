"""A DNS reply as ``dig`` shows it: the rcode, and the answer, authority and additional sections
of resource records (RFC 1035 section 4)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

NOERROR, NXDOMAIN = "NOERROR", "NXDOMAIN"


class SRV(NamedTuple):
    priority: int
    weight: int
    port: int
    target: str


@dataclass(frozen=True)
class Record:
    """One resource record. ``data`` is the RDATA in presentation form, as dig's last column:
    an IP for A/AAAA, ``priority weight port target`` for SRV, the target for CNAME/PTR/NS,
    the quoted text for TXT, ``mname rname serial refresh retry expire minimum`` for SOA.
    Names are fully qualified (trailing dot)."""
    name: str
    type: str
    ttl: int
    data: str

    @property
    def srv(self) -> SRV:
        if self.type != "SRV":
            raise ValueError(f"{self.type} record {self.name} is not an SRV record")
        priority, weight, port, target = self.data.split()
        return SRV(int(priority), int(weight), int(port), target)

    def __str__(self) -> str:
        return f"{self.name}\t{self.ttl}\tIN\t{self.type}\t{self.data}"


@dataclass
class Answer:
    """The reply to one question (``qname``, ``qtype``). NODATA is rcode NOERROR with an empty
    answer section; negative replies from CoreDNS carry the zone's SOA in ``authority``.
    ``server`` says who answered: "coredns" (its kubernetes plugin) or "upstream"."""
    qname: str
    qtype: str
    rcode: str
    answer: list[Record] = field(default_factory=list)
    authority: list[Record] = field(default_factory=list)
    additional: list[Record] = field(default_factory=list)
    server: str = "coredns"

    @property
    def nodata(self) -> bool:
        return self.rcode == NOERROR and not self.answer

    @property
    def status(self) -> str:
        """NOERROR, NXDOMAIN, or NODATA (a name that exists without records of that type)."""
        return "NODATA" if self.nodata else self.rcode

    @property
    def data(self) -> list[str]:
        return [r.data for r in self.answer]

    def __str__(self) -> str:
        lines = [f";; ->>HEADER<<- status: {self.rcode}  (from {self.server})",
                 ";; QUESTION SECTION:", f";{self.qname}\t\tIN\t{self.qtype}"]
        for title, records in (("ANSWER", self.answer), ("AUTHORITY", self.authority),
                               ("ADDITIONAL", self.additional)):
            if records:
                lines += ["", f";; {title} SECTION:"] + [str(r) for r in records]
        return "\n".join(lines)
