"""Node: a machine of the cluster, with its InternalIP, podCIDR, zone, allocatable CPU and taints."""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import Path, invalid
from .meta import Named, ObjectMeta, Reader

ZONE_LABEL = "topology.kubernetes.io/zone"
CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")


def parse_cpu(q) -> int:
    """A CPU quantity ("4", "3500m", 2) in millicores."""
    s = str(q).strip()
    if s.endswith("m"):
        return int(float(s[:-1]))
    return int(round(float(s) * 1000))


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
                   taints=[t for t in r.get(spec, "taints", list, sp, []) or [] if isinstance(t, dict)])
        for i, a in enumerate(r.items(status, "addresses", st)):
            if isinstance(a, dict) and a.get("type") == "InternalIP" and not node.internal_ip:
                node.internal_ip = str(a.get("address", ""))
            if isinstance(a, dict) and a.get("type") == "Hostname":
                node.hostname = str(a.get("address", ""))
        alloc = r.obj(status, "allocatable", st)
        if "cpu" in alloc:
            try:
                node.allocatable_cpu_m = parse_cpu(alloc["cpu"])
            except ValueError:
                r.errors.append(invalid(st.child("allocatable").key("cpu"), alloc["cpu"],
                                        "must be a CPU quantity such as 4 or 3500m"))
        for c in r.items(status, "conditions", st):
            if isinstance(c, dict) and c.get("type") == "Ready":
                node.ready = str(c.get("status")) == "True"
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
