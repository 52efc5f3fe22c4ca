"""Lesson 11 (session affinity): the small pieces the notebook computes, so a test can reach them.

- ``web_cluster``: a Deployment of web servers behind a NodePort Service, with or without
  ``sessionAffinity: ClientIP``, and a client pod on node-1.
- ``try_timeout``: apply a Service with a given ``timeoutSeconds`` and return the API server's
  refusal (or None): a refused apply changes nothing.
- ``affinity_lines``: where each dataplane keeps affinity, read from what the node holds (the rendered
  ruleset, or for eBPF the map updates of the agent's last sync).
- ``sticky_rounds``: after each idle period, one new choice and whether the client's next
  connections kept to it.
- ``pod_load``: many clients, behind one NAT address or not, with affinity on or off, opening
  connections through a NodePort: connections per pod (the NAT hotspot).
"""
from __future__ import annotations

import re

import yaml
from collections import Counter
from dataclasses import dataclass

import kslib

NODE_PORT = 30080


def service_manifest(affinity: bool = True, timeout: int | None = None, name: str = "web",
                     node_port: int | None = NODE_PORT) -> dict:
    """A Service in front of app=web (NodePort ``node_port``, or ClusterIP when it is None);
    ``affinity`` sets ``sessionAffinity: ClientIP`` and ``timeout`` its
    ``sessionAffinityConfig.clientIP.timeoutSeconds`` (None: let the API server default it)."""
    port = {"port": 80, "targetPort": 8080}
    spec = {"type": "ClusterIP", "selector": {"app": "web"}, "ports": [port]}
    if node_port is not None:
        spec["type"], port["nodePort"] = "NodePort", node_port
    if affinity:
        spec["sessionAffinity"] = "ClientIP"
        if timeout is not None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": timeout}}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def web_cluster(mode: str = "iptables", replicas: int = 3, affinity: bool = True, timeout: int | None = None,
                seed: int = 0, nodes: int = 3) -> kslib.Cluster:
    """``nodes`` nodes, a Deployment ``web`` of ``replicas`` pods (port 8080), the NodePort Service
    ``web`` (port 80, nodePort 30080) and a pod ``client`` on node-1."""
    c = kslib.Cluster(mode=mode, nodes=nodes, seed=seed)
    c.apply([
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                                                        "ports": [{"containerPort": 8080}]}]}}}},
        service_manifest(affinity, timeout),
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
         "spec": {"nodeName": "node-1", "containers": [{"name": "curl", "image": "curlimages/curl"}]}},
    ])
    return c


def try_timeout(cluster: kslib.Cluster, timeout, name: str = "sticky") -> str | None:
    """Apply a ClusterIP Service ``name`` with ClientIP affinity and ``timeoutSeconds: timeout``: the
    API server's message if it refuses (the cluster is then unchanged), else None."""
    try:
        cluster.apply(service_manifest(True, timeout, name=name, node_port=None))
    except kslib.ValidationError as err:
        return str(err)
    return None


# what marks affinity in each mode's artifact
_AFFINITY = {
    "iptables": re.compile(r"-m recent "),
    "nftables": re.compile(r"affinity-|flags dynamic,timeout|timeout \d+s"),
    "ipvs": re.compile(r" persistent \d+"),
    "ebpf": re.compile(r"affinity"),
}


def affinity_lines(cluster: kslib.Cluster, node: str, service: str = "web") -> list[str]:
    """The lines of the node's dataplane that implement ClientIP affinity for ``service``: iptables
    ``-m recent`` rules, nftables affinity sets and the rules using them, the IPVS virtual server's
    ``persistent`` flag, or the eBPF map entries (``cilium_lb4_services_v2`` slot 0 with its
    ``affinity_timeout`` and ``cilium_lb_affinity_match``) from the agent's last full sync."""
    mode = cluster.mode
    svc = cluster.get("svc", service)
    if mode == "ebpf":
        cluster.set_mode("ebpf")                  # no-op when already in ebpf mode
        text = _full_ebpf_payload(cluster, node)
    else:
        text = cluster.render(node)
    out = []
    for line in text.splitlines():
        if not _AFFINITY[mode].search(line):
            continue
        if mode == "iptables" and f"{svc.namespace}/{svc.name}" not in line:
            continue
        if mode == "ipvs" and not line.lstrip().startswith(("TCP", "UDP", "SCTP")):
            continue
        if mode == "ebpf" and "rev_nat=" in line and not any(
                f"rev_nat={r}" in line for r in _ebpf_rev_nats(text, svc)):
            continue
        out.append(line.strip())
    return out


def _full_ebpf_payload(cluster, node: str) -> str:
    # the agent's last sync only sends what changed; find the newest sync of the node that wrote the
    # Service's frontend (the first sync after the Service was created always does)
    for rec in reversed(cluster.sync_log):
        if rec.node == node and rec.mode == "ebpf" and "affinity_timeout=" in rec.result.payload:
            return rec.result.payload
    return ""


def _ebpf_rev_nats(payload: str, svc) -> set[str]:
    # the rev-NAT ids of the Service's frontends: its ClusterIP and its NodePort entries
    ports = {f":{p.node_port}/" for p in svc.ports if p.node_port} | {f"{svc.cluster_ip}:{p.port}/" for p in svc.ports}
    return {m.group(1) for line in payload.splitlines() if "(0) value" in line and any(k in line for k in ports)
            for m in [re.search(r"rev_nat=(\d+)", line)] if m}


@dataclass(frozen=True)
class Round:
    """One idle period: the clock afterwards, the pod the next connection got, and whether the
    ``follow`` connections after it all went to the same pod."""
    clock: float
    pod: str
    kept: bool


def sticky_rounds(cluster: kslib.Cluster, src, dst: str, port: int, rounds: int, idle: float,
                  follow: int = 5, hold: bool = False) -> list[Round]:
    """``rounds`` times: let the cluster sit idle ``idle`` seconds, open one connection, then
    ``follow`` more; report the pod chosen and whether the followers kept to it. With ``hold`` the
    followers stay open (a stream) through the next idle period, and are closed after it."""
    out = []
    streams = None
    for _ in range(rounds):
        cluster.advance(idle)
        if streams is not None:
            streams.close()
        (pod,) = cluster.connect_many(src, dst, port, 1)
        after = cluster.connect_many(src, dst, port, follow, hold=hold)
        streams = after if hold else None
        out.append(Round(cluster.clock, pod, after == Counter({pod: follow})))
    if streams is not None:
        streams.close()
    return out


@dataclass(frozen=True)
class Load:
    """Connections per web pod (every pod listed, 0 included) and the distinct source addresses
    the Service saw."""
    per_pod: dict[str, int]
    sources: int
    connections: int

    @property
    def busiest_share(self) -> float:
        return max(self.per_pod.values()) / self.connections if self.connections else 0.0

    @property
    def pods_used(self) -> int:
        return sum(1 for v in self.per_pod.values() if v)


def pod_load(clients: int, behind_nat: bool, affinity: bool, connections: int = 3000, mode: str = "iptables",
             replicas: int = 3, seed: int = 0) -> Load:
    """``clients`` users (``kslib.clients``; all sharing one public address when ``behind_nat``)
    open ``connections`` connections, round robin over the users, to node-1's NodePort of a fresh
    cluster whose Service has ClientIP affinity or not. Bad input raises ValueError (kslib's message)."""
    population = kslib.clients(clients, behind_nat=behind_nat)
    if isinstance(connections, bool) or not isinstance(connections, int) or connections < 1:
        raise ValueError(f"connections: Invalid value: {connections!r}: must be a positive integer")
    c = web_cluster(mode=mode, replicas=replicas, affinity=affinity, seed=seed)
    traffic = c.connect_many(population, c.get("node", "node-1").internal_ip, NODE_PORT, connections)
    web = sorted(p.key for p in c.pods if p.metadata.labels.get("app") == "web")
    return Load({p: traffic.get(p, 0) for p in web}, len({f.client for f in traffic.flows}),
                sum(traffic.get(p, 0) for p in web))


def spec_yaml(obj) -> str:
    """The ``spec`` of a manifest dict or an API object as YAML (``kubectl get -o yaml`` layout)."""
    d = obj.to_dict() if hasattr(obj, "to_dict") else obj
    return yaml.safe_dump({"spec": d["spec"]}, sort_keys=False)


__all__ = ["NODE_PORT", "Load", "Round", "affinity_lines", "pod_load", "service_manifest", "spec_yaml", "sticky_rounds",
           "try_timeout", "web_cluster"]
