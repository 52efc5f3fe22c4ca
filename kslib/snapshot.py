"""Your own cluster in the model: a ``kubectl get nodes,pods,services,endpointslices -A -o yaml`` dump
loaded into a ``kslib.Cluster``, and a real node's ``iptables-save`` traced through the engine.

``load(source)`` reads the dump (a path, YAML/JSON text, a list of object dicts, or ``"sample"``, the
small kubeadm cluster shipped in ``kslib/data/sample_cluster.yaml``). The dump records most of a
cluster's settings where the real cluster keeps them: the API server's ``--service-cluster-ip-range``
and ``--service-node-port-range`` (its static pod's command line), the controller manager's
``--cluster-cidr``, kube-dns's ClusterIP (what kubeadm gives kubelets as clusterDNS), and the cluster
domain in kubeadm's ``--service-account-issuer=https://kubernetes.default.svc.<domain>``. Where a dump
lacks them (a managed cluster hides its control-plane pods), a stated fallback is used. What was read
from where is ``cluster.snapshot`` (a ``Snapshot``; ``print(cluster.snapshot)``).

The dump's nodes, pods, ClusterIPs and nodePorts are kept as they are. Its EndpointSlices are not
trusted: kube-proxy reads slices, but the EndpointSlice controller writes them from each Service's
selector and its pods' readiness, and the model's controller does exactly that again. Where its
result differs from the dump's slices (``Snapshot.slice_differences``), the dump was not one
consistent moment (kubectl lists each resource type separately), or something other than the
controller wrote them. Slices of Services without a selector are kept as given: no controller
manages them.

``NodeDump(cluster, node, text)`` puts one node's real ``iptables-save`` in place of the model's rules
for that node (the other nodes keep the model's) and traces connections through it: the same
``Connection`` as ``cluster.connect``, whose steps quote the dump's own lines. ``compare_rules`` sets
the model's rendering of the node beside the dump, chain by chain.
"""
from __future__ import annotations

import copy
import datetime as dt
import inspect
import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .api import manifest
from .api.endpointslice import CONTROLLER_NAME, MANAGED_BY_LABEL, EndpointSlice
from .api.errors import Path as FieldPath, ValidationError, invalid
from .api.server import EPOCH
from .cluster import Cluster
from .controllers.endpointslice import wants_slices
from .dataplane import entry as E
from .dataplane.codes import FROM_WIRE
from .dataplane.network import ClusterNetwork, ip_int
from .dataplane.rules import BUILTIN_CHAINS, IptablesSaveError, Rule, meaning, parse
from .dataplane.trace import Connection

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "sample_cluster.yaml"
SAMPLE_NODE = "worker-1"
SAMPLE_NODE_DUMP = DATA / "sample_node_iptables_save.txt"
KUBECTL = "kubectl get nodes,pods,services,endpointslices -A -o yaml > cluster.yaml"

# defaults a dump may not record: kubeadm's service subnet and the model's pod and node networks
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
DEFAULT_NODE_CIDR = "192.168.0.0/24"
DEFAULT_NODE_PORT_RANGE = "30000-32767"
DEFAULT_DOMAIN = "cluster.local"
ISSUER = re.compile(r"^https://kubernetes\.default\.svc\.([a-z0-9.-]+?)\.?$")
_TS = "%Y-%m-%dT%H:%M:%SZ"


class SnapshotError(ValueError):
    """A dump that cannot be a cluster (no nodes, not a dump at all): says what is missing."""


# ---- what load() found -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One Cluster setting: its value and where it came from (``source``). ``recorded`` is True when
    the dump records it, False for a fallback or a value you passed."""
    name: str
    value: object
    source: str
    recorded: bool

    def __str__(self) -> str:
        return f"{self.name:16} {str(self.value):16} {self.source}"


@dataclass(frozen=True)
class SliceDifference:
    """One way the dump's EndpointSlices differ from what the EndpointSlice controller computes from
    the Service's selector and its pods: ``field`` is "endpoint" (an address in one and not the other),
    "ready", "serving", "terminating", "nodeName", "zone", "hostname" or "ports"."""
    service: str          # "namespace/name"
    address: str
    field: str
    dump: object
    recomputed: object

    def __str__(self) -> str:
        if self.field == "endpoint":
            where = "only in the dump's slices" if self.dump else "only in the recomputed slices"
            return f"{self.service} {self.address}: {where}"
        return f"{self.service} {self.address}: {self.field}: dump {self.dump}, recomputed {self.recomputed}"


@dataclass
class Snapshot:
    """What ``load`` read and inferred: ``settings`` (name -> Setting), ``counts`` (objects per kind),
    ``taken_at`` (the newest timestamp in the dump, the best guess of when it was taken),
    ``slice_differences``, ``kept_slices`` (slices kept as given: no controller recomputes them),
    and ``started_pods`` (pods the dump shows without an address, which the model's scheduler and
    kubelet placed and started)."""
    source: str
    settings: dict[str, Setting]
    counts: Counter
    taken_at: str | None
    compared_services: list[str] = field(default_factory=list)
    slice_differences: list[SliceDifference] = field(default_factory=list)
    kept_slices: list[str] = field(default_factory=list)
    started_pods: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def report(self) -> str:
        kinds = ", ".join(f"{self.counts[k]} {k.lower()}s" for k in ("Node", "Pod", "Service", "EndpointSlice"))
        out = [f"Loaded {self.source}: {kinds}" + (f" (newest timestamp {self.taken_at})" if self.taken_at else "")]
        out.append("Settings (value, where it came from):")
        out += ["  " + str(s) for s in self.settings.values()]
        n = len(self.compared_services)
        if self.slice_differences:
            out.append(f"EndpointSlices: the controller's recomputation differs from the dump in "
                       f"{len(self.slice_differences)} place(s):")
            out += ["  " + str(d) for d in self.slice_differences]
        else:
            out.append(f"EndpointSlices: the controller's recomputation agrees with the dump for all {n} Services "
                       "with a selector (and the API server's own default/kubernetes slice)")
        if self.kept_slices:
            out.append("Kept as given (no controller writes them): " + ", ".join(self.kept_slices))
        if self.started_pods:
            out.append("Pods the model placed or started (the dump shows them without an address): "
                       + ", ".join(self.started_pods))
        out += ["Warning: " + w for w in self.warnings]
        return "\n".join(out)

    __str__ = report


# ---- reading the dump -----------------------------------------------------------------------------------
def read(source) -> list[dict]:
    """The objects of a dump as dicts: ``source`` is ``"sample"``, a path, YAML or JSON text, a dict
    or a list of dicts (kslib.ManifestError for text that is not YAML/JSON, naming the line)."""
    return [copy.deepcopy(d) for d, _ in manifest.read_manifests(SAMPLE if source == "sample" else source)]


def _name(source) -> str:
    if isinstance(source, str) and source == "sample":
        return f"the sample ({SAMPLE.name})"
    if isinstance(source, Path):
        return str(source)
    if isinstance(source, str) and "\n" not in source and not source.lstrip().startswith(("{", "[")):
        try:
            if Path(source).exists():
                return source
        except OSError:
            pass
    return "the given objects" if isinstance(source, (list, dict)) else "the given text"


def _key(d: dict) -> str:
    md = d.get("metadata") if isinstance(d.get("metadata"), dict) else {}
    name = str(md.get("name", ""))
    return name if d.get("kind") == "Node" else f"{md.get('namespace') or 'default'}/{name}"


def _flags(pod: dict):
    """(path, flag, value) for every ``--flag=value`` or ``--flag value`` in the pod's containers'
    command and args, e.g. ("spec.containers[0].command[12]", "--cluster-cidr", "10.244.0.0/16")."""
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    for i, c in enumerate(spec.get("containers") or []):
        if not isinstance(c, dict):
            continue
        for key in ("command", "args"):
            words = c.get(key) or []
            if not isinstance(words, list):
                continue
            for j, w in enumerate(words):
                if not isinstance(w, str) or not w.startswith("--"):
                    continue
                path = f"spec.containers[{i}].{key}[{j}]"
                if "=" in w:
                    flag, value = w.split("=", 1)
                elif j + 1 < len(words) and isinstance(words[j + 1], str) and not words[j + 1].startswith("--"):
                    flag, value = w, words[j + 1]
                else:
                    continue
                yield path, flag, value


def _control_plane_pod(objs: list[dict], component: str) -> dict | None:
    """The kube-system static pod of a control-plane component (kubeadm labels it component=<name>)."""
    for d in objs:
        md = d.get("metadata") if isinstance(d.get("metadata"), dict) else {}
        labels = md.get("labels") if isinstance(md.get("labels"), dict) else {}
        if d.get("kind") == "Pod" and md.get("namespace") == "kube-system" and (
                labels.get("component") == component or str(md.get("name", "")).startswith(component + "-")):
            return d
    return None


def _flag(objs, component: str, flag: str):
    """(value, "namespace/pod flag", path, pod) of a control-plane flag, or None."""
    pod = _control_plane_pod(objs, component)
    if pod is None:
        return None
    for path, f, value in _flags(pod):
        if f == flag:
            return value, f"{_key(pod)} {flag}", path, pod
    return None


def _cidr_flag(found, what: str) -> tuple[str, str] | None:
    """The IPv4 CIDR of a --*-cidr / --*-range flag (a dual-stack value lists IPv4 and IPv6)."""
    if found is None:
        return None
    value, where, path, pod = found
    for part in value.split(","):
        try:
            net = ipaddress.ip_network(part.strip(), strict=False)
        except ValueError:
            raise ValidationError("Pod", pod["metadata"].get("name", ""), [invalid(
                FieldPath(path), f"{where.split()[-1]}={value}", f"{what}: {part.strip()!r} is not a CIDR "
                "such as 10.96.0.0/12")]) from None
        if net.version == 4:
            note = " (its IPv4 part: kslib models single-stack IPv4)" if "," in value else ""
            return str(net), f"from {where}{note}"
    raise ValidationError("Pod", pod["metadata"].get("name", ""), [invalid(
        FieldPath(path), f"{where.split()[-1]}={value}", f"{what}: no IPv4 range (kslib models IPv4 clusters)")])


def _holding(addresses: list[str], default: str, widest: int, what: str) -> tuple[str, str]:
    """``default`` when it holds every address, else the smallest network that does (its prefix no
    longer than ``widest``)."""
    nets = [ipaddress.ip_network(a, strict=False) for a in addresses]
    nets = [n for n in nets if n.version == 4]
    if not nets or all(n.subnet_of(ipaddress.ip_network(default)) for n in nets):
        return default, f"fallback: not in the dump; {default} holds every {what}" if nets else \
            f"fallback: not in the dump and no {what} to go by; the default"
    prefix = min([widest] + [n.prefixlen for n in nets])
    while prefix > 0:
        sup = nets[0].supernet(new_prefix=prefix)
        if all(n.subnet_of(sup) for n in nets):
            break
        prefix -= 1
    sup = nets[0].supernet(new_prefix=prefix)
    return str(sup), f"fallback: not in the dump; the smallest network (/{widest} or wider) holding every {what}"


def infer_settings(objs: list[dict]) -> dict[str, Setting]:
    """Cluster settings read from the dump where the real cluster records them, else a stated
    fallback (see the module docstring)."""
    out: dict[str, Setting] = {}
    cluster_ips = [str(d.get("spec", {}).get("clusterIP")) for d in objs if d.get("kind") == "Service"
                   and isinstance(d.get("spec"), dict) and d["spec"].get("clusterIP") not in (None, "", "None")]
    got = _cidr_flag(_flag(objs, "kube-apiserver", "--service-cluster-ip-range"), "--service-cluster-ip-range")
    if got:
        out["service_cidr"] = Setting("service_cidr", got[0], got[1], True)
    else:
        v, why = _holding(_ipv4(cluster_ips), DEFAULT_SERVICE_CIDR, 24, "ClusterIP")
        out["service_cidr"] = Setting("service_cidr", v, why, False)
    pod_cidrs = [str(d.get("spec", {}).get("podCIDR")) for d in objs if d.get("kind") == "Node"
                 and isinstance(d.get("spec"), dict) and d["spec"].get("podCIDR")]
    got = _cidr_flag(_flag(objs, "kube-controller-manager", "--cluster-cidr"), "--cluster-cidr")
    if got:
        out["cluster_cidr"] = Setting("cluster_cidr", got[0], got[1], True)
    else:
        v, why = _holding(_cidrs(pod_cidrs), DEFAULT_CLUSTER_CIDR, 16, "node's podCIDR")
        out["cluster_cidr"] = Setting("cluster_cidr", v, why, False)
    node_ips = [a.get("address") for d in objs if d.get("kind") == "Node"
                for a in ((d.get("status") or {}).get("addresses") or []) if isinstance(a, dict)
                and a.get("type") == "InternalIP"]
    v, why = _holding(_ipv4(node_ips), DEFAULT_NODE_CIDR, 24, "node's InternalIP")
    out["node_cidr"] = Setting("node_cidr", v, why.replace("fallback: not in the dump; ", "from the nodes: ")
                               if "smallest" in why else why, False)
    dns = next((d for d in objs if d.get("kind") == "Service" and _key(d) == "kube-system/kube-dns"), None)
    dns_ip = (dns.get("spec") or {}).get("clusterIP") if dns else None
    if dns_ip and E.is_ipv4(dns_ip):
        out["cluster_dns"] = Setting("cluster_dns", dns_ip, "from kube-system/kube-dns's ClusterIP (kubeadm's "
                                     "clusterDNS)", True)
    else:
        net = ipaddress.ip_network(out["service_cidr"].value)
        out["cluster_dns"] = Setting("cluster_dns", str(net[10]), "fallback: no kube-dns Service; the 10th address "
                                     "of the service CIDR, as kubeadm picks it", False)
    found = _flag(objs, "kube-apiserver", "--service-account-issuer")
    m = ISSUER.match(found[0]) if found else None
    if m:
        out["cluster_domain"] = Setting("cluster_domain", m.group(1), f"from {found[1]} (kubeadm's "
                                        "https://kubernetes.default.svc.<domain>)", True)
    else:
        out["cluster_domain"] = Setting("cluster_domain", DEFAULT_DOMAIN, "fallback: not in the dump (the kubelets' "
                                        "clusterDomain); the default", False)
    found = _flag(objs, "kube-apiserver", "--service-node-port-range")
    if found:
        lo, sep, hi = found[0].partition("-")
        if not (sep and lo.isdigit() and hi.isdigit()):
            name = found[3]["metadata"].get("name", "")
            raise ValidationError("Pod", name, [invalid(FieldPath(found[2]), f"--service-node-port-range={found[0]}",
                                                        "must be a port range such as 30000-32767")])
        out["node_port_range"] = Setting("node_port_range", found[0], f"from {found[1]}", True)
    else:
        out["node_port_range"] = Setting("node_port_range", DEFAULT_NODE_PORT_RANGE,
                                         "fallback: not in the dump; the API server's default", False)
    found = _flag(objs, "kube-controller-manager", "--max-endpoints-per-slice")
    if found and found[0].isdigit():
        out["max_endpoints_per_slice"] = Setting("max_endpoints_per_slice", int(found[0]), f"from {found[1]}", True)
    return out


def _ipv4(values) -> list[str]:
    return [str(v) for v in values if E.is_ipv4(v)]


def _cidrs(values) -> list[str]:
    out = []
    for v in values:
        try:
            ipaddress.IPv4Network(v, strict=False)
            out.append(v)
        except ValueError:
            pass
    return out


def _seconds(ts) -> float | None:
    """A timestamp as seconds on the model's cluster clock (0 = kslib's epoch, 2026-01-01)."""
    if not isinstance(ts, str):
        return None
    try:
        when = dt.datetime.strptime(ts[:19] + "Z", _TS).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None
    return (when - EPOCH).total_seconds()


def taken_at(objs: list[dict]) -> str | None:
    """The newest creationTimestamp or condition time in the dump: when it was taken, at the earliest
    (deletionTimestamps are left out: they lie in the future, when the grace period ends)."""
    stamps = []
    for d in objs:
        md = d.get("metadata") if isinstance(d.get("metadata"), dict) else {}
        stamps.append(md.get("creationTimestamp"))
        for c in ((d.get("status") or {}).get("conditions") or []) if isinstance(d.get("status"), dict) else []:
            if isinstance(c, dict):
                stamps += [c.get("lastHeartbeatTime"), c.get("lastTransitionTime")]
    stamps = [s[:19] + "Z" for s in stamps if isinstance(s, str) and _seconds(s) is not None]
    return max(stamps) if stamps else None


# ---- loading ---------------------------------------------------------------------------------------------
_CLUSTER_ARGS = set(inspect.signature(Cluster.__init__).parameters) - {"self", "mode", "nodes", "zones"}


def load(source, mode: str = "iptables", **options) -> Cluster:
    """A ``kslib.Cluster`` built from a ``kubectl get nodes,pods,services,endpointslices -A -o yaml``
    dump (``"sample"`` for the shipped one). ``options`` are ``kslib.Cluster``'s (``seed``,
    ``proxy_options``, ``cluster_domain``...) and win over what the dump records. What was inferred,
    and how the dump's EndpointSlices compare with the controller's, is ``cluster.snapshot``."""
    unknown = sorted(set(options) - _CLUSTER_ARGS)
    if unknown:
        raise ValueError(f"load: {unknown[0]}: not an option (kslib.Cluster's options: "
                         f"{', '.join(sorted(_CLUSTER_ARGS))})")
    objs = read(source)
    counts = Counter(d.get("kind") for d in objs)
    if not counts["Node"]:
        raise SnapshotError(f"{_name(source)} holds no Node: a cluster dump lists its nodes first "
                            f"({KUBECTL}); found " + (", ".join(f"{n} {k}" for k, n in counts.items()) or "nothing"))
    settings = infer_settings(objs)
    for name, value in options.items():
        if name in settings or name in ("cluster_dns", "cluster_domain"):
            settings[name] = Setting(name, value, "given to load()", False)
    args = {name: s.value for name, s in settings.items()}
    args.update(options)
    args.setdefault("seed", 0)
    cluster = Cluster(mode=mode, **args)
    cluster.apply(objs)
    when = taken_at(objs)
    _finish_terminating(cluster, objs)
    if when is not None and _seconds(when) > cluster.clock:
        cluster.advance(_seconds(when) - cluster.clock)       # ages read as they did when the dump was taken
    snap = Snapshot(_name(source), settings, counts, when)
    snap.compared_services, snap.slice_differences, snap.kept_slices = compare_slices(cluster, objs)
    snap.started_pods = _started(cluster, objs)
    snap.warnings = _addressing(cluster, objs)
    cluster.snapshot = snap
    return cluster


def _finish_terminating(cluster: Cluster, objs: list[dict]) -> None:
    """A terminating pod's deletionTimestamp is when its grace period ends: give the model's pod that
    deadline on the cluster clock, so ``advance`` removes it then (a dump's pods carry none)."""
    changed = []
    for d in objs:
        if d.get("kind") != "Pod":
            continue
        at = _seconds((d.get("metadata") or {}).get("deletionTimestamp"))
        pod = cluster.api.get("Pod", _key(d))
        if at is not None and pod is not None and pod.deletion_deadline is None:
            new = copy.deepcopy(pod)
            new.deletion_deadline = at
            changed.append(new)
    if changed:
        with cluster.api.transaction():
            for p in changed:
                cluster.api.write(p)
        cluster.advance(0)


def _started(cluster: Cluster, objs: list[dict]) -> list[str]:
    out = []
    for d in objs:
        if d.get("kind") == "Pod" and not (d.get("status") or {}).get("podIP"):
            pod = cluster.api.get("Pod", _key(d))
            if pod is not None and pod.pod_ip:
                out.append(f"{pod.key} on {pod.node_name} at {pod.pod_ip}")
    return out


def _addressing(cluster: Cluster, objs: list[dict]) -> list[str]:
    """What the model cannot route as the dump's cluster does: nodes without a podCIDR (the model
    gives them one) and pods whose address lies outside their node's podCIDR (a CNI with its own IPAM,
    such as Calico's blocks or Cilium's cluster-pool). The model routes pod addresses by podCIDR."""
    out = []
    for d in objs:
        if d.get("kind") == "Node" and not (d.get("spec") or {}).get("podCIDR"):
            node = cluster.api.get("Node", _key(d))
            out.append(f"node {_key(d)} has no spec.podCIDR in the dump; the model gave it {node.pod_cidr}")
    outside = []
    for p in cluster.pods:
        node = cluster.api.get("Node", p.node_name) if p.node_name else None
        if p.pod_ip and node is not None and not p.host_network and node.pod_cidr and \
                ipaddress.ip_address(p.pod_ip) not in ipaddress.ip_network(node.pod_cidr, strict=False):
            outside.append(f"{p.key} ({p.pod_ip} on {node.name}, podCIDR {node.pod_cidr})")
    if outside:
        out.append(f"{len(outside)} pod(s) have addresses outside their node's podCIDR, as with a CNI that does its "
                   "own IPAM; the model routes pod addresses by podCIDR and treats these as outside the cluster: "
                   + ", ".join(outside[:5]) + (" ..." if len(outside) > 5 else ""))
    return out


# ---- the dump's slices against the controller's ------------------------------------------------------------
def _endpoint_view(slices) -> dict[str, dict]:
    out = {}
    for s in slices:
        ports = tuple(sorted((p.name or "", p.protocol, p.port) for p in s.ports))
        for e in s.endpoints:
            for a in e.addresses:
                out[a] = {"ready": e.conditions.is_ready, "serving": e.conditions.is_serving,
                          "terminating": e.conditions.is_terminating, "nodeName": e.node_name, "zone": e.zone,
                          "hostname": e.hostname, "ports": ports}
    return out


def compare_slices(cluster: Cluster, objs: list[dict]):
    """(Services compared, SliceDifferences, slices kept as given) between the dump's EndpointSlices
    and the cluster's, which the EndpointSlice controller (and, for default/kubernetes, the API
    server) recomputed. Conditions are compared as the API reads them (an unset ready means ready)."""
    given = [EndpointSlice.from_dict(d) for d in objs if d.get("kind") == "EndpointSlice"]
    compared, diffs = [], []
    for svc in cluster.services:
        if not (wants_slices(svc) or svc.key == "default/kubernetes"):
            continue
        mine = lambda s: s.service_name == svc.name and s.namespace == svc.namespace and (  # noqa: E731
            s.managed_by_controller or svc.key == "default/kubernetes")
        dump = _endpoint_view(s for s in given if mine(s))
        model = _endpoint_view(s for s in cluster.endpoint_slices(svc.name, svc.namespace) if mine(s))
        compared.append(svc.key)
        for addr in sorted(set(dump) | set(model), key=ip_int):
            if addr not in model or addr not in dump:
                diffs.append(SliceDifference(svc.key, addr, "endpoint", addr in dump, addr in model))
                continue
            for f in ("ready", "serving", "terminating", "nodeName", "zone", "hostname", "ports"):
                if dump[addr][f] != model[addr][f]:
                    diffs.append(SliceDifference(svc.key, addr, f, dump[addr][f], model[addr][f]))
    kept = [f"{s.key} (managed by {s.metadata.labels.get(MANAGED_BY_LABEL) or 'nobody'}; Service "
            f"{s.service_name or '?'} has no selector)" for s in given
            if s.metadata.labels.get(MANAGED_BY_LABEL) != CONTROLLER_NAME and s.key != "default/kubernetes"]
    return [k for k in compared if k != "default/kubernetes"], diffs, kept


def set_pod_ready(objs: list[dict], pod: str, ready: bool = True) -> list[dict]:
    """A copy of the dump's objects in which pod "namespace/name" reports Ready (or not), as the
    kubelet writes it when a readiness probe passes: the Ready and ContainersReady conditions and each
    container's ``ready``. The dump's EndpointSlices are left as they were."""
    out = copy.deepcopy(objs)
    for d in out:
        if d.get("kind") == "Pod" and _key(d) == pod:
            status = d.setdefault("status", {})
            for c in status.get("conditions") or []:
                if c.get("type") in ("Ready", "ContainersReady"):
                    c["status"] = "True" if ready else "False"
                    c.pop("reason", None)
                    c.pop("message", None)
            for c in status.get("containerStatuses") or []:
                c["ready"] = bool(ready)
            return out
    raise KeyError(f'pod "{pod}" is not in the dump (give "namespace/name")')


def managed_view(objs: list[dict]) -> list[dict]:
    """The dump as a managed cluster (EKS, GKE, AKS) shows it: its control plane runs outside the
    cluster, so no kube-system pod labelled ``tier: control-plane`` is listed (and no flag with it)."""
    return [copy.deepcopy(d) for d in objs if not (
        d.get("kind") == "Pod" and (d.get("metadata") or {}).get("namespace") == "kube-system"
        and ((d.get("metadata") or {}).get("labels") or {}).get("tier") == "control-plane")]


# ---- tables ----------------------------------------------------------------------------------------------------
def get_nodes(cluster: Cluster) -> str:
    """``kubectl get nodes -o custom-columns=NAME:...,STATUS,ROLES,INTERNAL-IP,POD-CIDR,ZONE``."""
    rows = [["NAME", "STATUS", "ROLES", "INTERNAL-IP", "POD-CIDR", "ZONE"]]
    for n in cluster.nodes:
        rows.append([n.name, "Ready" if n.ready else "NotReady", "control-plane" if n.is_control_plane else "<none>",
                     n.internal_ip, n.pod_cidr, n.zone or "<none>"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)


# ---- three layers -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layers:
    """One Service seen at the three layers: the Service (selector and VIP), the EndpointSlice
    controller (selector -> pod IPs), kube-proxy on ``node`` (slices -> that node's rules)."""
    service: str
    selector: dict
    cluster_ip: str
    ports: list[str]                  # "port -> targetPort/protocol"
    selected_pods: list[str]          # pods whose labels match the selector, with readiness
    endpoints: list[str]              # "ip:port ready/serving/terminating (pod)"
    node: str
    rules: list[str]                  # the node's rules that name the Service

    def text(self) -> str:
        out = [f"1. Service {self.service}: selector {self.selector}, ClusterIP {self.cluster_ip}, "
               f"ports {', '.join(self.ports)}",
               "2. EndpointSlice controller: the selector matches " + str(len(self.selected_pods)) + " pod(s):"]
        out += ["     " + p for p in self.selected_pods]
        out.append("   and writes these endpoints:")
        out += ["     " + e for e in self.endpoints]
        out.append(f"3. kube-proxy on {self.node}: {len(self.rules)} rules name the Service:")
        out += ["     " + r for r in self.rules]
        return "\n".join(out)


def layers(cluster: Cluster, service: str, node: str) -> Layers:
    """The three layers of ``service`` ("namespace/name") on ``node``, in the cluster's current mode
    (rules: the lines of ``cluster.render(node)`` that mention the Service)."""
    ns, _, name = service.partition("/")
    svc = cluster.get("svc", name, ns) if name else None
    if svc is None:
        raise KeyError(f'service "{service}" not found (give "namespace/name")')
    cluster._node(node)
    pods = [p for p in cluster.list("Pod", svc.namespace)
            if svc.selector and all(p.metadata.labels.get(k) == v for k, v in svc.selector.items())]
    selected = [f"{p.name} {p.pod_ip or '<none>'} on {p.node_name or '<none>'}: "
                f"{'Terminating' if p.terminating else ('Ready' if p.ready else 'not Ready')}" for p in pods]
    eps = []
    for s in cluster.endpoint_slices(svc.name, svc.namespace):
        ports = ",".join(str(p.port) for p in s.ports) or "<unset>"
        for e in s.endpoints:
            c = e.conditions
            pod = e.pod.split("/", 1)[1] if e.pod else "no pod"
            eps.append(f"{e.addresses[0]}:{ports} ready={str(c.is_ready).lower()} serving={str(c.is_serving).lower()} "
                       f"terminating={str(c.is_terminating).lower()} ({pod}, slice {s.name})")
    ports = [f"{p.port} -> {p.target_port}/{p.protocol}" for p in svc.ports]
    mention = f"{svc.namespace}/{svc.name}"
    rules = [line for line in cluster.render(node).splitlines() if mention + ":" in line or mention + '"' in line
             or mention + " " in line or line.endswith(mention)]
    return Layers(svc.key, dict(svc.selector or {}), svc.cluster_ip, ports, selected, eps, node, rules)


# ---- a real node's iptables-save ------------------------------------------------------------------------------------
class NodeDump:
    """``node``'s real ``iptables-save`` (``text``) in place of the model's rules for that node; the
    other nodes, the pods and the routes are the cluster's. ``connect`` traces a connection that
    starts on that node: from one of its pods, from the node itself, or from an outside address
    entering the cluster there. Unsupported lines raise IptablesSaveError naming the line and token."""

    def __init__(self, cluster: Cluster, node: str, text: str, source: str | None = None):
        if not isinstance(text, str) or not text.strip():
            raise IptablesSaveError(1, "", "empty text: paste the output of `iptables-save` run on the node",
                                    source or f"{node} iptables-save")
        cluster._node(node)
        self.cluster, self.node, self.text = cluster, node, text
        self.source = source or f"{node} iptables-save"
        self.ruleset = parse(text, source=self.source)
        for r in self.ruleset.rules():
            for m in r.matches:
                if m.kind == "set":
                    # the dump brings no ipsets (ipset list is another command); iptables-restore
                    # would answer "Set ... doesn't exist." too
                    raise IptablesSaveError(r.line_no, m.args[0], f"Set {m.args[0]} doesn't exist: a pasted "
                                            "iptables-save brings no ipsets", self.source)
        self._lines = {r.text: r.line_no for r in self.ruleset.rules()}
        self._net: ClusterNetwork | None = None
        self._version = None

    def _network(self) -> ClusterNetwork:
        c = self.cluster
        version = (c.syncs, len(c.events), c.mode)
        if self._net is None or version != self._version:
            specs, pods = c._hosts()
            rules = {n.name: c.proxiers[n.name].dataplane() for n in c.nodes if n.name != self.node}
            rules[self.node] = self.text
            if self._net is None:
                self._net = ClusterNetwork(c.seed, c.service_cidr)
            self._net.load(specs, pods, rules, now=c.clock)
            self._version = version
        return self._net

    def connect(self, src, dst, port=None, protocol: str = "TCP") -> Connection:
        """One connection from ``src`` (a pod on this node, this node, or an outside IPv4 address) to
        ``dst:port``, traced through this node's dump; ``dst`` may be a name the source resolves."""
        c = self.cluster
        protocol, port = E.check_protocol(protocol), E.check_port(port)
        entry = E.source(c, src)
        if entry.kind != FROM_WIRE and entry.node != self.node:
            raise ValueError(f"src: {entry.label} is on {entry.node}, but the dump holds {self.node}'s rules: trace "
                             f"from a pod on {self.node}, from {self.node} itself, or from an outside address "
                             f"(which then enters the cluster at {self.node})")
        dst = E.destination(dst, lambda name: c._address(name, entry))
        net = self._network()
        conn = Connection(entry.label, dst, port, protocol)
        return net.connect(conn, net.node_index(self.node), entry.kind, ip_int(entry.src_ip), ip_int(dst), c.clock)

    def model_connect(self, src, dst, port=None, protocol: str = "TCP") -> Connection:
        """The same connection through the model's own rules (an outside client enters at this node)."""
        via = self.node if E.is_ipv4(src) and E.source(self.cluster, src).kind == FROM_WIRE else None
        return self.cluster.connect(src, dst, port, protocol, via=via)

    def quoted(self, conn: Connection) -> list[tuple[int, str]]:
        """(line number, line) of every dump line the trace quotes, in trace order."""
        out = []
        for s in conn.trace:
            if s.node == self.node and s.rule in self._lines:
                out.append((self._lines[s.rule], s.rule))
        return out

    def compare(self) -> list["ChainComparison"]:
        """``compare_rules`` of the model's rendering of this node (iptables mode) and the dump."""
        if self.cluster.mode != "iptables":
            raise ValueError(f"compare: the cluster is in {self.cluster.mode} mode; an iptables-save dump compares "
                             "with iptables mode's rules (cluster.set_mode('iptables') first)")
        return compare_rules(self.cluster.render(self.node), self.text, self.source)


def node_rules(cluster: Cluster, node: str, mode: str) -> str:
    """``node``'s dataplane in ``mode`` (the cluster switches to it, as ``set_mode`` does): what
    ``iptables-save``, ``ipvsadm -Ln``, ``nft list ruleset`` or Cilium's map dump prints there. An
    unknown node or mode is a ValueError and changes nothing."""
    if not isinstance(node, str) or cluster.api.get("Node", node) is None:
        raise ValueError(f'node: "{node}" not found; nodes: {", ".join(n.name for n in cluster.nodes)}')
    cluster.set_mode(mode)
    return cluster.render(node)


@dataclass
class Traced:
    """A connection traced through a node's dump, and the dump lines its trace quotes."""
    conn: Connection
    quoted: list[tuple[int, str]]

    def text(self) -> str:
        out = [repr(self.conn), "Steps:"] + [f"  {s}" for s in self.conn.trace]
        out.append(f"Lines of the dump the trace quotes ({len(self.quoted)}):")
        out += [f"  line {n:>4}: {line}" for n, line in self.quoted]
        return "\n".join(out)


def trace_text(cluster: Cluster, node: str, text: str, src, dst, port, protocol: str = "TCP") -> Traced:
    """Trace one connection through ``text``, an ``iptables-save`` of ``node``: IptablesSaveError for a
    line the engine cannot run, ValueError for a bad source, destination or port."""
    dump = NodeDump(cluster, node, text, source="pasted iptables-save")
    conn = dump.connect(src, dst, port, protocol)
    return Traced(conn, dump.quoted(conn))


# ---- the model's rules beside the dump's ---------------------------------------------------------------
OWNERS = (("KUBE-KUBELET-CANARY", "kubelet"), ("KUBE-IPTABLES-HINT", "kubelet"),
          ("KUBE-FIREWALL", "kubelet and kube-proxy"), ("KUBE-PROXY-CANARY", "kube-proxy (its flush monitor)"),
          ("KUBE-", "kube-proxy"), ("FLANNEL", "flannel (CNI)"), ("CNI-", "CNI plugins (portmap, bridge)"),
          ("cali-", "Calico (CNI)"), ("CILIUM", "Cilium"), ("WEAVE", "Weave (CNI)"), ("KUBE-ROUTER", "kube-router"),
          ("DOCKER", "Docker"))


def owner(chain: str) -> str:
    """Who writes a chain, by the name real components give theirs."""
    for prefix, who in OWNERS:
        if chain.startswith(prefix):
            return who
    return "another program"


@dataclass(frozen=True)
class ChainComparison:
    """One chain of the model's rendering and of the dump: ``status`` is "same", "same rules, other
    order", "differs", "only in the dump" or "only in the model"; ``only_dump``/``only_model`` hold the
    rules (as written on each side) that the other side lacks."""
    table: str
    chain: str
    status: str
    owner: str
    only_dump: tuple[str, ...] = ()
    only_model: tuple[str, ...] = ()

    def __str__(self) -> str:
        out = [f"{self.table:7} {self.chain:28} {self.status:24} ({self.owner})"]
        out += [f"          dump only:  {r}" for r in self.only_dump]
        out += [f"          model only: {r}" for r in self.only_model]
        return "\n".join(out)


def compare_rules(model_text: str, dump_text: str, source: str = "<dump>") -> list[ChainComparison]:
    """Chain by chain, table by table: do the model's rules and the dump's mean the same?"""
    model, dump = parse(model_text, source="model"), parse(dump_text, source=source)
    out = []
    for table in [t for t in ("raw", "mangle", "filter", "nat") if t in model.tables or t in dump.tables]:
        names = list(dict.fromkeys(list(dump.tables.get(table, {})) + list(model.tables.get(table, {}))))
        builtin = [n for n in BUILTIN_CHAINS[table] if n in names]
        for name in builtin + sorted(n for n in names if n not in builtin):
            m, d = model.chain(table, name), dump.chain(table, name)
            who = "built-in" if name in BUILTIN_CHAINS[table] else owner(name)
            if (m is None or d is None) and who == "built-in" and not (m or d).rules:
                continue            # an empty built-in chain of a table only one side prints
            if m is None or d is None:
                out.append(ChainComparison(table, name, "only in the dump" if m is None else "only in the model",
                                           who, tuple(r.text for r in (d.rules if d else ())),
                                           tuple(r.text for r in (m.rules if m else ()))))
                continue
            mm, dm = [meaning(r) for r in m.rules], [meaning(r) for r in d.rules]
            if mm == dm:
                status = "same"
            elif Counter(mm) == Counter(dm):
                status = "same rules, other order"
            else:
                status = "differs"
            out.append(ChainComparison(table, name, status, who, _unmatched(d.rules, dm, mm),
                                       _unmatched(m.rules, mm, dm)))
    return out


def _unmatched(rules: list[Rule], mine: list, theirs: list) -> tuple[str, ...]:
    """The texts of ``rules`` whose meaning the other side lacks (counting repeats)."""
    left = Counter(mine) - Counter(theirs)
    out = []
    for r, k in zip(rules, mine):
        if left[k] > 0:
            left[k] -= 1
            out.append(r.text)
    return tuple(out)


def comparison_counts(rows: list[ChainComparison]) -> Counter:
    """How many chains fall in each status."""
    return Counter(r.status for r in rows)


# ---- agreement ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Agreement:
    """A probe run ``n`` times through the model and through the dump: what each delivered to
    (outcome, pod or endpoint, source IP the backend saw), as Counters."""
    probe: tuple
    model: Counter
    dump: Counter

    @property
    def agree(self) -> bool:
        return set(self.model) == set(self.dump)

    def __str__(self) -> str:
        src, dst, port, proto = self.probe
        fmt = lambda c: ", ".join(f"{o}:{w} from {s}" if w else o for (o, w, s) in sorted(c, key=str))  # noqa: E731
        return (f"{src} -> {dst}:{port}/{proto}: {'agree' if self.agree else 'DIFFER'}\n"
                f"    model: {fmt(self.model)}\n    dump:  {fmt(self.dump)}")


def _fate(conn: Connection) -> tuple:
    return (conn.outcome, conn.pod or conn.endpoint, conn.source_ip)


def agreement(dump: NodeDump, probes, n: int = 24) -> list[Agreement]:
    """Each probe ``(src, dst, port, protocol)`` as ``n`` new connections through the model's rules and
    through the dump; random picks (the statistic module) are compared as the set of fates seen."""
    out = []
    for probe in probes:
        src, dst, port, proto = probe
        model = Counter(_fate(dump.model_connect(src, dst, port, proto)) for _ in range(n))
        real = Counter(_fate(dump.connect(src, dst, port, proto)) for _ in range(n))
        out.append(Agreement(tuple(probe), model, real))
    return out


__all__ = ["Agreement", "ChainComparison", "KUBECTL", "Layers", "NodeDump", "SAMPLE", "SAMPLE_NODE", "SAMPLE_NODE_DUMP",
           "IptablesSaveError", "SliceDifference", "Setting", "Snapshot", "SnapshotError", "agreement", "compare_rules",
           "compare_slices", "comparison_counts", "get_nodes", "infer_settings", "layers", "load", "managed_view",
           "node_rules", "owner", "read", "set_pod_ready", "taken_at", "trace_text", "Traced"]
