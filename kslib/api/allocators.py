"""The API server's allocators: ClusterIPs from the service CIDR, NodePorts (and
healthCheckNodePorts) from the node-port range, and the node IPAM's pod addresses.

Static/dynamic bands (KEP-3070 ServiceIPStaticSubrange, KEP-3668 ServiceNodePortStaticSubrange):
dynamic allocation starts at a random point of the upper band and scans forward, wrapping; only
when the upper band is full does it use the lower (static) band, which is thereby left to users
who ask for a specific value (pkg/registry/core/service/allocator/bitmap.go,
randomScanStrategyWithOffset; ipallocator/bitmap.go and portallocator/allocator.go,
calculateRangeOffset).
"""
from __future__ import annotations

import ipaddress
import random


class RangeFull(Exception):
    pass


class NotInRange(Exception):
    pass


class AlreadyAllocated(Exception):
    pass


class BitmapAllocator:
    """Offsets 0..size-1 of a range, a static band of ``offset`` values at the bottom."""

    def __init__(self, size: int, offset: int):
        self.size, self.offset = size, offset
        self.used: set[int] = set()

    def allocate(self, i: int) -> None:
        if not 0 <= i < self.size:
            raise NotInRange(i)
        if i in self.used:
            raise AlreadyAllocated(i)
        self.used.add(i)

    def allocate_next(self, rng: random.Random) -> int:
        if len(self.used) >= self.size:
            raise RangeFull()
        upper = self.size - self.offset
        start = rng.randrange(upper) if upper > 0 else 0
        for k in range(upper):
            at = self.offset + (start + k) % upper
            if at not in self.used:
                self.used.add(at)
                return at
        start = rng.randrange(self.offset)
        for k in range(self.offset):
            at = (start + k) % self.offset
            if at not in self.used:
                self.used.add(at)
                return at
        raise RangeFull()

    def release(self, i: int) -> None:
        self.used.discard(i)


def _band(size: int, lo: int, step: int, hi: int) -> int:
    """min(max(lo, size/step), hi), and 0 for ranges of ``lo`` or fewer values."""
    if size <= lo:
        return 0
    return min(max(lo, size // step), hi)


class ServiceIPAllocator:
    """ClusterIPs from the service CIDR. Offset 0 is the network address + 1; the network and
    (IPv4) broadcast addresses are never handed out (ipallocator/bitmap.go NewAllocatorCIDRRange)."""

    def __init__(self, cidr: str):
        self.net = ipaddress.ip_network(cidr, strict=False)
        total = self.net.num_addresses
        usable = max(0, total - 2) if self.net.version == 4 else min(total - 1, 65536)
        self.base = int(self.net.network_address) + 1
        self.bitmap = BitmapAllocator(usable, _band(total, 16, 16, 256))

    def __contains__(self, ip: str) -> bool:
        try:
            return 0 <= int(ipaddress.ip_address(ip)) - self.base < self.bitmap.size
        except ValueError:
            return False

    def allocate(self, ip: str) -> None:
        a = ipaddress.ip_address(ip)
        if a not in self.net or not 0 <= int(a) - self.base < self.bitmap.size:
            raise NotInRange(ip)
        self.bitmap.allocate(int(a) - self.base)

    def allocate_next(self, rng: random.Random) -> str:
        return str(ipaddress.ip_address(self.base + self.bitmap.allocate_next(rng)))

    def release(self, ip: str) -> None:
        if ip in self:
            self.bitmap.release(int(ipaddress.ip_address(ip)) - self.base)

    def indexed(self, i: int) -> str:
        """GetIndexedIP: the i-th address of the range (1 = the kubernetes Service)."""
        return str(self.net.network_address + i)

    @property
    def static_band(self) -> tuple[str, str]:
        """First and last address of the static (lower) band."""
        if not self.bitmap.offset:
            return ("", "")
        return (str(ipaddress.ip_address(self.base)),
                str(ipaddress.ip_address(self.base + self.bitmap.offset - 1)))


class NodePortAllocator:
    def __init__(self, base: int = 30000, size: int = 2768):
        self.base, self.size = base, size
        self.bitmap = BitmapAllocator(size, _band(size, 16, 32, 128))

    @property
    def range_text(self) -> str:
        return f"{self.base}-{self.base + self.size - 1}"

    def allocate(self, port: int) -> None:
        if not self.base <= port < self.base + self.size:
            raise NotInRange(port)
        self.bitmap.allocate(port - self.base)

    def allocate_next(self, rng: random.Random) -> int:
        return self.base + self.bitmap.allocate_next(rng)

    def release(self, port: int) -> None:
        if self.base <= port < self.base + self.size:
            self.bitmap.release(port - self.base)

    def in_use(self, port: int) -> bool:
        return (port - self.base) in self.bitmap.used


class PodIPAllocator:
    """host-local IPAM on one node's podCIDR: .1 is the node's bridge/gateway, pods get .2 upward,
    and the next allocation continues after the last one handed out (round robin), so a
    re-created pod usually gets a new address (containernetworking/plugins host-local)."""

    def __init__(self, cidr: str):
        self.net = ipaddress.ip_network(cidr, strict=False)
        self.first = int(self.net.network_address) + 2
        self.last = int(self.net.broadcast_address) - 1
        self.used: set[int] = set()
        self.cursor = self.first - 1

    def reserve(self, ip: str) -> None:
        self.used.add(int(ipaddress.ip_address(ip)))

    def allocate_next(self) -> str:
        span = self.last - self.first + 1
        for k in range(1, span + 1):
            at = self.first + (self.cursor - self.first + k) % span
            if at not in self.used:
                self.used.add(at)
                self.cursor = at
                return str(ipaddress.ip_address(at))
        raise RangeFull()

    def release(self, ip: str) -> None:
        self.used.discard(int(ipaddress.ip_address(ip)))
