"""The scheduler and the kubelet, as far as Service networking needs them.

The scheduler binds a pending Pod to a ready node that satisfies its nodeSelector and its required
pod anti-affinity, preferring the node with fewest pods of the same owner, then fewest pods (a
stand-in for kube-scheduler's spreading scores). The kubelet then starts it: the CNI gives it the
next address of the node's podCIDR (host network pods use the node's IP), phase Running, Ready
unless the manifest said otherwise. A terminating Pod is removed when its grace period is over.
"""
from __future__ import annotations

import copy

from ..api.pod import Pod
from ..api.server import APIServer
from ..api.workloads import LabelSelector

HOSTNAME_KEY = "kubernetes.io/hostname"


def _anti_affinity_terms(pod: Pod) -> list[dict]:
    aa = (pod.affinity or {}).get("podAntiAffinity") or {}
    return aa.get("requiredDuringSchedulingIgnoredDuringExecution") or []


def _topology_value(node, key: str) -> str | None:
    if key == HOSTNAME_KEY:
        return node.metadata.labels.get(key, node.name)
    return node.metadata.labels.get(key)


def schedule(api: APIServer, pod: Pod) -> str | None:
    nodes = {n.name: n for n in api.list("Node")}
    candidates = [n for n in nodes.values() if n.ready
                  and all(n.metadata.labels.get(k) == v for k, v in pod.node_selector.items())]
    placed = [p for p in api.list("Pod", pod.namespace) if p.node_name and not p.terminating and p.key != pod.key]
    for term in _anti_affinity_terms(pod):
        sel = term.get("labelSelector") or {}
        selector = LabelSelector(sel.get("matchLabels") or {}, sel.get("matchExpressions") or [])
        key = term.get("topologyKey", HOSTNAME_KEY)
        taken = {_topology_value(nodes[p.node_name], key) for p in placed
                 if p.node_name in nodes and selector.matches(p.metadata.labels)}
        candidates = [n for n in candidates if _topology_value(n, key) not in taken]
    if not candidates:
        return None
    owner = (pod.metadata.owner_references or [{}])[0].get("name")
    siblings = {n.name: 0 for n in candidates}
    load = {n.name: 0 for n in candidates}
    for p in api.list("Pod"):
        if p.node_name in load and not p.terminating:
            load[p.node_name] += 1
            if owner and p.namespace == pod.namespace and (p.metadata.owner_references or [{}])[0].get("name") == owner:
                siblings[p.node_name] += 1
    return min(candidates, key=lambda n: (siblings[n.name], load[n.name], n.name)).name


def run_kubelets(api: APIServer) -> None:
    """Bind pending pods and start bound ones; each write is one API update, as in a real cluster."""
    for pod in sorted(api.list("Pod"), key=lambda p: (p.metadata.creation_timestamp or "", p.key)):
        if pod.terminating:
            continue
        new = None
        if not pod.node_name:
            node = schedule(api, pod)
            if node is None:
                continue      # stays Pending, as with no fitting node
            new = copy.deepcopy(pod)
            new.node_name = node
        cur = new or pod
        node = api.get("Node", cur.node_name)
        if node is not None and not cur.pod_ip:
            new = new or copy.deepcopy(pod)
            new.host_ip = node.internal_ip
            new.pod_ip = node.internal_ip if new.host_network else api.assign_pod_ip(new)
            new.phase = new.phase or "Running"
            if new.phase == "Pending":
                new.phase = "Running"
            if not new.ready_given:
                new.ready = True
        if new is not None:
            api.write(new)


def reap_terminated(api: APIServer) -> None:
    for pod in api.list("Pod"):
        if pod.terminating and pod.deletion_deadline is not None and api.clock >= pod.deletion_deadline:
            api.remove("Pod", pod.key)
