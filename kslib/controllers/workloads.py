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

MAX_SURGE = 0.25          # RollingUpdate defaults: maxSurge 25% (rounded up)


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


def owned_by(pod: Pod, kind: str, name: str) -> bool:
    return any(o.get("kind") == kind and o.get("name") == name for o in pod.metadata.owner_references)


class WorkloadController:
    def __init__(self, api: APIServer):
        self.api = api

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
    def sync_deployment(self, d: Workload) -> None:
        h = template_hash(d)
        rs_name = f"{d.name}-{h}"
        owner = _owner("ReplicaSet", rs_name, d.metadata.uid)
        live = [p for p in self.api.list("Pod", d.namespace) if not p.terminating
                and any(o.get("kind") == "ReplicaSet" and o.get("name", "").startswith(d.name + "-")
                        for o in p.metadata.owner_references)
                and d.selector.matches(p.metadata.labels)]
        current = [p for p in live if owned_by(p, "ReplicaSet", rs_name)]
        old = [p for p in live if not owned_by(p, "ReplicaSet", rs_name)]
        surge = max(1, math.ceil(d.replicas * MAX_SURGE))
        # A rolling update: bring up a surge of new pods, then retire as many old ones, until
        # only the new ReplicaSet's pods remain (the model's pods are ready as soon as they run).
        while old or len(current) != d.replicas:
            add = min(surge, d.replicas - len(current)) if old else d.replicas - len(current)
            for _ in range(max(0, add)):
                labels = dict(d.template_meta.labels, **{"pod-template-hash": h})
                pod = _new_pod(d, f"{rs_name}-{self.api.random_suffix()}", labels, owner)
                current.append(self.api.apply(pod))
            if len(current) > d.replicas:
                for p in self._victims(current, len(current) - d.replicas):
                    self.api.delete("Pod", p.key)
                    current.remove(p)
            retire = old[:max(surge, 0)] if old else []
            for p in retire:
                self.api.delete("Pod", p.key)
                old.remove(p)

    @staticmethod
    def _victims(pods: list[Pod], n: int) -> list[Pod]:
        # ReplicaSet scale-down prefers unscheduled, then not-ready, then the newest pods
        ranked = sorted(pods, key=lambda p: (bool(p.node_name), p.ready, p.metadata.creation_timestamp or ""),
                        reverse=False)
        unready_first = [p for p in ranked if not p.node_name or not p.ready]
        rest = sorted([p for p in pods if p not in unready_first],
                      key=lambda p: p.metadata.creation_timestamp or "", reverse=True)
        return (unready_first + rest)[:n]

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
