"""Traffic from many clients, and what it did: the populations ``connect_many`` accepts and the
accounting it returns.

A ``Clients`` population is what a load balancer sees on the wire: distinct client addresses, or
many clients behind one NAT address (an office, a mobile carrier's CGNAT), the case that turns
ClientIP session affinity into a hotspot, since affinity keys on the source address alone.

``Traffic`` is what ``Cluster.connect_many`` returns: a Counter over backend pods (the stable API,
shared/API.md) that also keeps, per batch, who sent, where it entered, which pod answered and
which source address that pod saw (the SNAT story), as rows a plot can use directly.
"""
from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass

# RFC 2544's benchmarking range: 131,072 addresses that are never routed on the Internet
CLIENT_SUBNET = "198.18.0.0/15"
# the public address of a NAT the clients sit behind: TEST-NET-2 (RFC 5737)
NAT_ADDRESS = "198.51.100.7"


@dataclass(frozen=True)
class Clients:
    """``n`` external clients: ``addresses[i]`` is client i's source address on the wire (all the
    same behind a NAT)."""
    addresses: tuple[str, ...]
    behind_nat: bool = False

    def __len__(self) -> int:
        return len(self.addresses)

    def shares(self, n: int) -> Counter:
        """``n`` connections spread round robin over the clients: connections per source address."""
        m = len(self.addresses)
        out: Counter = Counter()
        for i, address in enumerate(self.addresses):
            k = n // m + (1 if i < n % m else 0)
            if k:
                out[address] += k
        return out


def clients(n: int = 100, behind_nat: bool = False, subnet: str = CLIENT_SUBNET,
            nat_address: str = NAT_ADDRESS) -> Clients:
    """A population of ``n`` external clients: consecutive addresses of ``subnet``, or all behind
    one NAT whose public address is ``nat_address``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: Invalid value: {n!r}: must be a positive integer")
    if behind_nat:
        try:
            address = str(ipaddress.IPv4Address(nat_address))
        except ValueError:
            raise ValueError(f"nat_address: {nat_address!r} is not an IPv4 address") from None
        return Clients((address,) * n, behind_nat=True)
    try:
        net = ipaddress.IPv4Network(subnet, strict=False)
    except ValueError:
        raise ValueError(f"subnet: {subnet!r} is not an IPv4 CIDR such as {CLIENT_SUBNET}") from None
    if net.num_addresses - 2 < n:
        raise ValueError(f"n: Invalid value: {n}: subnet {subnet} holds only {max(net.num_addresses - 2, 0)} "
                         "client addresses")
    first = int(net.network_address) + 1
    return Clients(tuple(str(ipaddress.IPv4Address(first + i)) for i in range(n)))


@dataclass
class Flow:
    """One batch's share: ``connections`` from ``client`` entering at ``entry_node`` that reached
    ``pod`` (or ended as ``outcome``), which saw them come from ``source_ip``."""
    client: str
    entry_node: str | None
    outcome: str                 # "delivered" | "rejected" | "dropped" | "left the cluster"
    pod: str | None
    node: str | None             # the pod's node
    source_ip: str | None        # the client address as the pod saw it
    connections: int


class Traffic(Counter):
    """A Counter over backend pods ("namespace/name", plus "rejected", "dropped", "host"), with the
    flows behind the counts. ``hold=True`` batches stay open until ``close()``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.flows: list[Flow] = []
        self.held = False
        self._close = None

    def add(self, flow: Flow) -> None:
        self.flows.append(flow)
        self[flow.pod if flow.outcome == "delivered" and flow.pod else
             ("host" if flow.outcome == "delivered" else flow.outcome)] += flow.connections

    def rows(self) -> list[dict]:
        """One dict per flow (client, entry_node, outcome, pod, node, source_ip, connections)."""
        return [dict(f.__dict__) for f in self.flows]

    def sources(self) -> Counter:
        """Connections per (pod, source address the pod saw)."""
        out: Counter = Counter()
        for f in self.flows:
            if f.pod:
                out[(f.pod, f.source_ip)] += f.connections
        return out

    def client_ip_preserved(self) -> float:
        """The fraction of delivered connections whose pod saw the client's own address."""
        got = [f for f in self.flows if f.pod]
        total = sum(f.connections for f in got)
        return sum(f.connections for f in got if f.source_ip == f.client) / total if total else 0.0

    def by_node(self) -> Counter:
        """Delivered connections per backend node."""
        out: Counter = Counter()
        for f in self.flows:
            if f.pod:
                out[f.node] += f.connections
        return out

    def by_entry_node(self) -> Counter:
        """Connections per node they entered the cluster at (external clients only)."""
        out: Counter = Counter()
        for f in self.flows:
            if f.entry_node:
                out[f.entry_node] += f.connections
        return out

    def close(self) -> None:
        """Close a held batch (the streams end; IPVS moves them from ActiveConn to InActConn)."""
        if not self.held:
            raise ValueError("close: this batch was not opened with hold=True")
        self._close()
        self.held = False
