"""The scheduler and the kubelet, as far as Service networking needs them.

The scheduler binds a pending Pod to a ready node that satisfies its nodeSelector, tolerates the
node's NoSchedule and NoExecute taints (a kubeadm control plane's
``node-role.kubernetes.io/control-plane:NoSchedule`` keeps ordinary pods off it), and meets its required
pod anti-affinity and its DoNotSchedule topology spread constraints; among those it prefers the
node that breaks the least preferred anti-affinity weight, ScheduleAnyway spread and untolerated
PreferNoSchedule taints, then the node
with fewest pods of the same owner, then fewest pods (a stand-in for kube-scheduler's weighted
scores, which a real cluster mixes with resource scores). A pod no node fits stays Pending. The kubelet then starts it: the CNI gives it the
next address of the node's podCIDR (host network pods use the node's IP), phase Running, Ready
unless the manifest said otherwise. A terminating Pod is removed when its grace period is over.
"""
from __future__ import annotations

import copy
from collections import Counter

from ..api.allocators import RangeFull
from ..api.pod import Pod
from ..api.server import APIServer
from ..api.workloads import LabelSelector

HOSTNAME_KEY = "kubernetes.io/hostname"


def _anti_affinity(pod: Pod, kind: str) -> list[dict]:
    aa = (pod.affinity or {}).get("podAntiAffinity") or {}
    return aa.get(f"{kind}DuringSchedulingIgnoredDuringExecution") or []


def _selector(term: dict) -> LabelSelector:
    return LabelSelector.from_dict(term.get("labelSelector") or {})


def _topology_value(node, key: str) -> str | None:
    if key == HOSTNAME_KEY:
        return node.metadata.labels.get(key, node.name)
    return node.metadata.labels.get(key)


def _domains(nodes: dict, placed: list[Pod], term: dict) -> dict:
    """Pods matching the term's selector per value of its topology key."""
    key, selector = term.get("topologyKey", HOSTNAME_KEY), _selector(term)
    out: dict = {}
    for p in placed:
        if p.node_name in nodes and selector.matches(p.metadata.labels):
            value = _topology_value(nodes[p.node_name], key)
            out[value] = out.get(value, 0) + 1
    return out


def _spread_ok(pod: Pod, c: dict, nodes: dict, candidates: list, placed: list[Pod]) -> list:
    """PodTopologySpread's filter for one DoNotSchedule constraint: a node qualifies when placing the
    pod there keeps (matching pods in its domain + 1) - (the least-loaded domain) within maxSkew.
    Nodes without the topology key are not eligible (pkg/scheduler/framework/plugins/podtopologyspread)."""
    key = c["topologyKey"]
    counts = _domains(nodes, placed, c)
    eligible = {_topology_value(n, key) for n in candidates if _topology_value(n, key) is not None}
    if not eligible:
        return []
    least = min(counts.get(v, 0) for v in eligible)
    self_match = 1 if _selector(c).matches(pod.metadata.labels) else 0
    return [n for n in candidates if _topology_value(n, key) is not None
            and counts.get(_topology_value(n, key), 0) + self_match - least <= c["maxSkew"]]


def tolerates(toleration: dict, taint: dict) -> bool:
    """Toleration.ToleratesTaint (k8s.io/api core/v1): the effect, when set, must be the taint's; the key,
    when set, must be the taint's (an empty key with Exists matches every key); Exists matches any
    value, Equal (or no operator) the same value."""
    if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
        return False
    if toleration.get("key") and toleration.get("key") != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    return op == "Exists" or (op == "Equal" and (toleration.get("value") or "") == (taint.get("value") or ""))


def untolerated(pod: Pod, node, effects: tuple[str, ...]) -> list[dict]:
    """The node's taints with one of ``effects`` that none of the pod's tolerations tolerates."""
    return [t for t in node.taints if t.get("effect") in effects
            and not any(tolerates(tol, t) for tol in pod.tolerations)]


def _owner_name(pod: Pod) -> str | None:
    return (pod.metadata.owner_references or [{}])[0].get("name")


class Placement:
    """What the scheduler reads about the cluster: the nodes and the bound, running pods, with the pod
    count per node and per (namespace, owner, node). One kubelet pass builds it once and records each
    binding, so scheduling n pods costs O(n) plus the anti-affinity and spread terms, not O(n**2)."""

    def __init__(self, api: APIServer):
        self.nodes = {n.name: n for n in api.list("Node")}
        self.placed: list[Pod] = []
        self.load: Counter = Counter()
        self.siblings: Counter = Counter()
        for p in api.list("Pod"):
            if p.node_name and not p.terminating:
                self.bind(p)

    def bind(self, pod: Pod) -> None:
        self.placed.append(pod)
        self.load[pod.node_name] += 1
        self.siblings[(pod.namespace, _owner_name(pod), pod.node_name)] += 1

    def schedule(self, pod: Pod) -> str | None:
        """The node for a pending pod, or None when no node fits."""
        nodes = self.nodes
        candidates = [n for n in nodes.values() if n.ready
                      and all(n.metadata.labels.get(k) == v for k, v in pod.node_selector.items())
                      and not untolerated(pod, n, ("NoSchedule", "NoExecute"))]      # TaintToleration filter
        terms = _anti_affinity(pod, "required") + _anti_affinity(pod, "preferred") + pod.topology_spread_constraints
        placed = [p for p in self.placed if p.namespace == pod.namespace and p.key != pod.key] if terms else []
        for term in _anti_affinity(pod, "required"):
            taken = _domains(nodes, placed, term)
            key = term.get("topologyKey", HOSTNAME_KEY)
            candidates = [n for n in candidates if _topology_value(n, key) not in taken]
        for c in pod.topology_spread_constraints:
            if c.get("whenUnsatisfiable") == "DoNotSchedule":
                candidates = _spread_ok(pod, c, nodes, candidates, placed)
        if not candidates:
            return None
        # soft preferences: preferred anti-affinity (the weight of each term a node's domain breaks) and
        # ScheduleAnyway spread (matching pods in the node's domain), before the default spreading
        penalty = {n.name: len(untolerated(pod, n, ("PreferNoSchedule",))) for n in candidates}
        for pref in _anti_affinity(pod, "preferred"):
            term = pref.get("podAffinityTerm") or {}
            taken = _domains(nodes, placed, term)
            for n in candidates:
                if _topology_value(n, term.get("topologyKey", HOSTNAME_KEY)) in taken:
                    penalty[n.name] += int(pref.get("weight", 1))
        for c in pod.topology_spread_constraints:
            if c.get("whenUnsatisfiable") == "ScheduleAnyway":
                counts = _domains(nodes, placed, c)
                for n in candidates:
                    penalty[n.name] += counts.get(_topology_value(n, c["topologyKey"]), 0)
        owner = _owner_name(pod)
        siblings = (lambda n: self.siblings[(pod.namespace, owner, n.name)]) if owner else (lambda n: 0)
        return min(candidates, key=lambda n: (penalty[n.name], siblings(n), self.load[n.name], n.name)).name


def run_kubelets(api: APIServer) -> None:
    """Bind pending pods and start bound ones; each write is one API update, as in a real cluster."""
    placement = Placement(api)
    for pod in sorted(api.list("Pod"), key=lambda p: (p.metadata.creation_timestamp or "", p.key)):
        if pod.terminating:
            continue
        new = None
        if not pod.node_name:
            node = placement.schedule(pod)
            if node is None:
                continue      # stays Pending, as with no fitting node
            new = copy.deepcopy(pod)
            new.node_name = node
            placement.bind(new)
        cur = new or pod
        node = api.get("Node", cur.node_name)
        if node is not None and not cur.pod_ip:
            try:
                ip = node.internal_ip if cur.host_network else api.assign_pod_ip(cur)
            except RangeFull:
                # the CNI's IPAM has no address left in the node's podCIDR: the sandbox cannot be
                # created and the pod stays Pending (ContainerCreating), bound but without an IP
                if new is not None:
                    api.write(new)
                continue
            new = new or copy.deepcopy(pod)
            new.host_ip = node.internal_ip
            new.pod_ip = ip
            new.phase = new.phase or "Running"
            if new.phase == "Pending":
                new.phase = "Running"
            if not new.ready_given:
                new.ready = True
        elif node is not None and not cur.ready_given and not cur.ready and cur.phase in ("", "Pending", "Running"):
            # bound with its address given but no Ready condition (a partial status, as in
            # tests/test_properties.py's pinned manifests): the kubelet runs it like any other
            new = new or copy.deepcopy(pod)
            new.phase = "Running" if new.phase in ("", "Pending") else new.phase
            new.ready = True
        if new is not None:
            api.write(new)


def reap_terminated(api: APIServer) -> None:
    for pod in api.list("Pod"):
        if pod.terminating and pod.deletion_deadline is not None and api.clock >= pod.deletion_deadline:
            api.remove("Pod", pod.key)
