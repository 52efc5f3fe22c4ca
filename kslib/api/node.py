"""Node: a machine of the cluster, with its InternalIP, podCIDR, zone, allocatable CPU and taints."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from .errors import Path, invalid
from .meta import Named, ObjectMeta, Reader

ZONE_LABEL = "topology.kubernetes.io/zone"
CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
_CPU = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")


def parse_cpu(q) -> int:
    """A CPU quantity ("4", "3500m", "1e3", 2) in millicores; ValueError for anything else (a
    non-negative decimal number with an optional exponent or m: the forms of resource.Quantity a
    node's CPU takes)."""
    if isinstance(q, bool) or not isinstance(q, (str, int, float)):
        raise ValueError("not a quantity")
    s = str(q).strip() if not isinstance(q, int) or q.bit_length() < 64 else "too large"
    number, milli = (s[:-1], True) if s.endswith("m") else (s, False)
    value = float(number) if _CPU.fullmatch(number) else math.nan
    if not 0 <= value < 1e15:
        raise ValueError("not a CPU quantity")
    return int(value) if milli else int(round(value * 1000))


@dataclass
class Node(Named):
    metadata: ObjectMeta
    internal_ip: str = ""
    pod_cidr: str = ""
    allocatable_cpu_m: int = 4000
    ready: bool = True
    hostname: str = ""
    taints: list[dict] = field(default_factory=list)

    kind = "Node"

    @property
    def zone(self) -> str | None:
        return self.metadata.labels.get(ZONE_LABEL)

    @property
    def is_control_plane(self) -> bool:
        return any(k in self.metadata.labels for k in CONTROL_PLANE_LABELS)

    @classmethod
    def from_dict(cls, d: dict) -> "Node":
        name = (d.get("metadata") or {}).get("name", "") if isinstance(d.get("metadata"), dict) else ""
        r = Reader("Node", name)
        meta = ObjectMeta.read(r, d, namespaced=False)
        spec = r.obj(d, "spec", Path(""))
        status = r.obj(d, "status", Path(""))
        sp, st = Path("spec"), Path("status")
        node = cls(metadata=meta, pod_cidr=r.get(spec, "podCIDR", str, sp, ""),
                   taints=[_taint(r, t, tp) for tp, t in r.objects(spec, "taints", sp)])
        for ap, a in r.objects(status, "addresses", st):
            kind, address = r.get(a, "type", str, ap), r.get(a, "address", str, ap, "")
            if kind == "InternalIP" and not node.internal_ip:
                node.internal_ip = address
            if kind == "Hostname":
                node.hostname = address
        alloc = r.obj(status, "allocatable", st)
        if "cpu" in alloc:
            try:
                node.allocatable_cpu_m = parse_cpu(alloc["cpu"])
            except ValueError:
                r.errors.append(invalid(st.child("allocatable").key("cpu"), alloc["cpu"],
                                        "must be a CPU quantity such as 4 or 3500m"))
        for cp, c in r.objects(status, "conditions", st):
            if r.get(c, "type", str, cp) == "Ready":
                node.ready = r.get(c, "status", str, cp) == "True"
        r.done()
        return node

    def to_dict(self) -> dict:
        addresses = [{"type": "InternalIP", "address": self.internal_ip},
                     {"type": "Hostname", "address": self.hostname or self.name}]
        spec = {"podCIDR": self.pod_cidr, "podCIDRs": [self.pod_cidr]} if self.pod_cidr else {}
        if self.taints:
            spec["taints"] = [dict(t) for t in self.taints]
        cpu = f"{self.allocatable_cpu_m // 1000}" if self.allocatable_cpu_m % 1000 == 0 \
            else f"{self.allocatable_cpu_m}m"
        return {
            "apiVersion": "v1", "kind": "Node", "metadata": self.metadata.to_dict(), "spec": spec,
            "status": {
                "addresses": addresses,
                "allocatable": {"cpu": cpu},
                "conditions": [{"type": "Ready", "status": "True" if self.ready else "False"}],
            },
        }


def _taint(r: Reader, t: dict, tp: Path) -> dict:
    r.check(t, tp, str, "key", "value", "effect", "timeAdded")
    return t
