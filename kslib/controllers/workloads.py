"""The Deployment (through its ReplicaSet) and StatefulSet controllers: pod templates -> Pods.

Deployment pods are named ``<deployment>-<pod-template-hash>-<5 random>`` and labelled
``pod-template-hash``; the hash is FNV-32a over the template, its decimal digits mapped onto
apimachinery's safe alphabet (controller_utils.go ComputeHash + rand.SafeEncodeString; the real
hash runs over Go's printed form of the template, here over its canonical JSON, so values differ
from a real cluster's while having the same form). StatefulSet pods are ``<sts>-<ordinal>`` with
hostname = pod name and subdomain = spec.serviceName, and they keep their name when re-created
(pkg/controller/statefulset/stateful_set_utils.go).
"""
from __future__ import annotations

import copy
import json
import math

from ..api.meta import ObjectMeta
from ..api.pod import Pod
from ..api.server import NAME_ALPHABET, APIServer
from ..api.workloads import Workload

MAX_SURGE = 0.25          # RollingUpdate defaults: maxSurge 25% (rounded up) and
MAX_UNAVAILABLE = 0.25    # maxUnavailable 25% (rounded down); the model reads no spec.strategy


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(w: Workload) -> str:
    tpl = {"metadata": {"labels": w.template_meta.labels, "annotations": w.template_meta.annotations},
           "spec": w.template.spec_dict() if w.template else {}}
    digits = str(fnv32a(json.dumps(tpl, sort_keys=True).encode()))
    return "".join(NAME_ALPHABET[ord(c) % len(NAME_ALPHABET)] for c in digits)


def _owner(kind: str, name: str, uid: str, api_version: str = "apps/v1") -> dict:
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
            "controller": True, "blockOwnerDeletion": True}


def _new_pod(w: Workload, name: str, labels: dict, owner: dict) -> Pod:
    pod = copy.deepcopy(w.template)
    pod.metadata = ObjectMeta(name=name, namespace=w.namespace, labels=labels,
                              annotations=dict(w.template_meta.annotations), owner_references=[owner])
    return pod


def fenceposts(replicas: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) for ``replicas`` (deployment_util.go ResolveFenceposts): surge
    rounds up, unavailable down, and if both come to 0, maxUnavailable is 1."""
    surge = math.ceil(replicas * MAX_SURGE)
    unavailable = math.floor(replicas * MAX_UNAVAILABLE)
    return surge, (1 if surge == 0 and unavailable == 0 else unavailable)


def available(pod: Pod) -> bool:
    """A pod counts as available when it is running and ready (minReadySeconds is 0)."""
    return bool(pod.node_name) and pod.ready and not pod.terminating


def owned_by(pod: Pod, kind: str, name: str) -> bool:
    return any(o.get("kind") == kind and o.get("name") == name for o in pod.metadata.owner_references)


class WorkloadController:
    def __init__(self, api: APIServer):
        self.api = api
        self.steps = 0          # Deployment syncs that scaled something (lessons line writes up with them)

    def sync_all(self) -> None:
        for d in self.api.list("Deployment"):
            self.sync_deployment(d)
        for s in self.api.list("StatefulSet"):
            self.sync_statefulset(s)

    def delete_workload(self, w: Workload) -> None:
        """Garbage collection: deleting the owner deletes its pods (foreground is not modelled)."""
        for pod in self.api.list("Pod", w.namespace):
            rs = pod.metadata.owner_references[0]["name"] if pod.metadata.owner_references else ""
            if (w.kind == "StatefulSet" and owned_by(pod, "StatefulSet", w.name)) or \
                    (w.kind == "Deployment" and owned_by(pod, "ReplicaSet", rs) and rs.startswith(w.name + "-")
                     and pod.metadata.labels.get("pod-template-hash") == rs[len(w.name) + 1:]):
                self.api.delete("Pod", pod.key)

    # ---- Deployment ---------------------------------------------------------------------------
    def sync_deployment(self, d: Workload) -> bool:
        """One step of the Deployment controller (and of the ReplicaSets' pod creation/deletion it
        implies); True if it scaled anything. A rolling update takes several calls: the settle loop
        runs the kubelets and the EndpointSlice controller between them, as a real cluster does.

        The rules of pkg/controller/deployment/rolling.go (rolloutRolling) and util/deployment_util.go:
        each sync either scales the new ReplicaSet up (NewRSNewReplicas: to at most replicas +
        maxSurge pods in all, never above replicas) or, if it cannot, scales the old ones down
        (reconcileOldReplicaSets: by at most all - (replicas - maxUnavailable) - the new ReplicaSet's
        unavailable pods; unavailable old pods go first, then as many as the available pods above
        replicas - maxUnavailable allow). Pods counted are the ReplicaSets' replicas, so terminating
        pods do not count. Available = ready here (minReadySeconds is not modelled)."""
        h = template_hash(d)
        rs_name = f"{d.name}-{h}"
        live = [p for p in self.api.list("Pod", d.namespace) if not p.terminating
                and any(o.get("kind") == "ReplicaSet" and o.get("name", "").startswith(d.name + "-")
                        for o in p.metadata.owner_references)
                and d.selector.matches(p.metadata.labels)]
        new = [p for p in live if owned_by(p, "ReplicaSet", rs_name)]
        old = [p for p in live if not owned_by(p, "ReplicaSet", rs_name)]
        scaled = self._step(d, rs_name, h, new, old)
        self.steps += scaled
        return scaled

    def _step(self, d: Workload, rs_name: str, h: str, new: list[Pod], old: list[Pod]) -> bool:
        live = new + old
        surge, unavailable = fenceposts(d.replicas)
        if len(new) > d.replicas or not old:              # scale the new ReplicaSet to replicas
            if len(new) > d.replicas:
                return self._scale_down(self._victims(new, len(new) - d.replicas))
            return self._scale_up(d, rs_name, h, d.replicas - len(new))
        if len(new) < d.replicas and len(live) < d.replicas + surge:
            return self._scale_up(d, rs_name, h, min(d.replicas + surge - len(live), d.replicas - len(new)))
        min_available = d.replicas - unavailable
        budget = len(live) - min_available - sum(not available(p) for p in new)
        if budget <= 0:
            return False
        # cleanupUnhealthyReplicas, then scaleDownOldReplicaSetsForRollingUpdate; oldest ReplicaSet first
        doomed = self._from_old(old, budget, lambda p: not available(p))
        spare = sum(available(p) for p in live) - min_available
        doomed += self._from_old(old, spare, available)
        return self._scale_down(doomed)

    def _scale_up(self, d: Workload, rs_name: str, h: str, n: int) -> bool:
        owner = _owner("ReplicaSet", rs_name, d.metadata.uid)
        labels = dict(d.template_meta.labels, **{"pod-template-hash": h})
        for _ in range(n):
            self.api.apply(_new_pod(d, f"{rs_name}-{self.api.random_suffix()}", labels, owner))
        return n > 0

    def _scale_down(self, pods: list[Pod]) -> bool:
        for p in pods:
            self.api.delete("Pod", p.key)
        return bool(pods)

    @classmethod
    def _from_old(cls, old: list[Pod], n: int, which) -> list[Pod]:
        """Up to n of the old pods that pass ``which``, the oldest ReplicaSet's first (its oldest pod's
        age stands in for the ReplicaSet's creationTimestamp), each ReplicaSet's in its own order."""
        by_rs: dict[str, list[Pod]] = {}
        for p in old:
            if which(p):
                by_rs.setdefault(p.metadata.owner_references[0]["name"], []).append(p)
        out: list[Pod] = []
        for rs in sorted(by_rs, key=lambda r: (min(p.metadata.creation_timestamp or "" for p in by_rs[r]), r)):
            out += cls._victims(by_rs[rs], n - len(out))
        return out

    @staticmethod
    def _victims(pods: list[Pod], n: int) -> list[Pod]:
        """The n pods a ReplicaSet deletes first (controller_utils.go ActivePods ordering, in part):
        unscheduled, then not ready, then the newest. Ties (pods created in the same second) go in
        an arbitrary order, as Go's sort over an informer's list leaves them: here by uid, which is
        random but reproducible (by name would line the victims up with the slices' packing)."""
        ranked = sorted(pods, key=lambda p: p.metadata.uid)
        ranked.sort(key=lambda p: p.metadata.creation_timestamp or "", reverse=True)
        ranked.sort(key=lambda p: (bool(p.node_name), p.ready))
        return ranked[:max(0, n)]

    # ---- StatefulSet --------------------------------------------------------------------------
    def sync_statefulset(self, s: Workload) -> None:
        owner = _owner("StatefulSet", s.name, s.metadata.uid)
        revision = f"{s.name}-{template_hash(s)}"
        for i in range(s.replicas):
            name = f"{s.name}-{i}"
            existing = self.api.get("Pod", f"{s.namespace}/{name}")
            if existing is not None:
                continue          # a terminating pod keeps its name until it is gone
            labels = dict(s.template_meta.labels, **{
                "statefulset.kubernetes.io/pod-name": name,
                "apps.kubernetes.io/pod-index": str(i),
                "controller-revision-hash": revision,
            })
            pod = _new_pod(s, name, labels, owner)
            pod.hostname, pod.subdomain = name, s.service_name
            self.api.apply(pod)
        for pod in self.api.list("Pod", s.namespace):
            if owned_by(pod, "StatefulSet", s.name) and not pod.terminating:
                ordinal = int(pod.name.rsplit("-", 1)[1])
                if ordinal >= s.replicas:
                    self.api.delete("Pod", pod.key)
