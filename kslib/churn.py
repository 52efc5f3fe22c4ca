"""What a rolling update costs the control plane under EndpointSlices and under Endpoints.

``rolling_update()`` builds a cluster with one Deployment behind one Service, changes the pod
template (the image) and lets the Deployment controller roll it (25% maxSurge, 25% maxUnavailable,
kslib.controllers.workloads). It counts every object the EndpointSlice controller and the legacy
Endpoints controller write meanwhile (``c.slices.ledger``). kube-proxy on every node watches all
EndpointSlices (or, before 1.19, all Endpoints), so every write is one watch event to every node:
bytes to a node = the sizes of the objects written, and to the cluster that times the nodes
(KEP-752, "EndpointSlice API": one Endpoints object holds all of a Service's addresses, at most
1,000 since the controller truncates; a slice holds at most 100 by default).

Sizes are compact JSON. A delete counts the deleted object's size too: a watch's DELETED event
carries "the state of the object immediately before deletion" (meta/v1 WatchEvent), whereas the
ledger's own ``Write.bytes`` is 0 for a delete.

``ready_batch``: by default the model's kubelet makes every pod ready as soon as it runs it, so each
Deployment step reaches the two controllers as one change (it is like an Endpoints controller that
batches changes, KEP-752's "Alternatives" 2). In a real rollout pods become ready one by one as their
readiness probes pass; ``ready_batch=k`` plays that: new pods start not ready, and every tick (one
second of cluster clock) k of them pass, oldest first, so the terminating pods go 30 s after their
deletion, interleaved. This is slow (every tick settles the whole cluster).

What it shows: per write, an Endpoints object of a 1,000-pod Service is about 6 times a slice (up to
1,000 addresses against at most 100 endpoints, which carry conditions and so are larger each).
Whether the totals follow depends on how many pod changes one write carries: one or a few, and
Endpoints sends several times the bytes; a whole step, and the slices cost as much or more, since
the old pods a step retires are scattered over every slice.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

from .cluster import Cluster
from .controllers.workloads import fenceposts, template_hash

SCHEMES = ("EndpointSlice", "Endpoints")
GRACE = 30            # terminationGracePeriodSeconds, the Pod default

_MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: "nginx:1.27", ports: [{{name: http, containerPort: 8080}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"""


@dataclass
class SchemeCost:
    scheme: str
    objects: int               # objects written (creates, updates, deletes): watch events per node
    bytes_per_node: int
    nodes: int

    @property
    def bytes_all_nodes(self) -> int:
        return self.bytes_per_node * self.nodes


@dataclass
class Row:
    """One write, with its scheme's running totals (for a plot against step, time or index)."""
    index: int                 # position among the writes of both schemes
    step: int                  # Deployment steps taken when it was written; with ready_batch=None,
                               # steps + 1 marks the writes at the end of the grace period
    time: float                # cluster clock, seconds
    scheme: str
    op: str                    # "create" | "update" | "delete"
    bytes: int
    objects_total: int
    bytes_total: int           # per node


@dataclass
class ChurnReport:
    replicas: int
    nodes: int
    max_endpoints_per_slice: int
    ready_batch: int | None
    max_surge: int
    max_unavailable: int
    steps: int                 # Deployment steps of the rollout
    schemes: dict[str, SchemeCost]
    rows: list[Row] = field(repr=False)
    writes: list = field(repr=False)        # the ledger's Write records, in order
    cluster: Cluster = field(repr=False)

    @property
    def ratio(self) -> float:
        """Endpoints bytes / EndpointSlice bytes."""
        return self.schemes["Endpoints"].bytes_per_node / max(1, self.schemes["EndpointSlice"].bytes_per_node)

    def by_step(self) -> list[tuple[int, str, int, int]]:
        """(step, scheme, objects so far, bytes per node so far) at the end of every step, both
        schemes on every step: the rows for a step plot."""
        last = {s: (0, 0) for s in SCHEMES}
        at: dict[int, dict] = {}
        for r in self.rows:
            last[r.scheme] = (r.objects_total, r.bytes_total)
            at[r.step] = dict(last)
        out, cur = [], {s: (0, 0) for s in SCHEMES}
        for step in range(max(at, default=0) + 1):
            cur = at.get(step, cur)
            out += [(step, s, *cur[s]) for s in SCHEMES]
        return out

    def table(self) -> str:
        pace = ("each step's pods ready at once" if self.ready_batch is None
                else f"{self.ready_batch} pod(s) turn ready per second")
        lines = [f"Rolling update of {self.replicas} pods behind one Service, {self.nodes} nodes, "
                 f"at most {self.max_endpoints_per_slice} endpoints per slice",
                 f"maxSurge {self.max_surge}, maxUnavailable {self.max_unavailable}, {self.steps} Deployment "
                 f"steps, {pace}.", ""]
        lines.append(f"{'scheme':<14}{'objects':>9}{'per node':>14}{'all nodes':>16}")
        for s in SCHEMES:
            c = self.schemes[s]
            lines.append(f"{s:<14}{c.objects:>9,}{_size(c.bytes_per_node):>14}{_size(c.bytes_all_nodes):>16}")
        lines.append(f"Endpoints sends {self.ratio:.1f} times the bytes of EndpointSlices.")
        steps = self.by_step()
        if len(steps) <= 2 * 21:
            lines += ["", "Cumulative per node, by step (the last: terminating pods gone):"]
            for i in range(0, len(steps), 2):
                (step, _, so, sb), (_, _, eo, eb) = steps[i], steps[i + 1]
                lines.append(f"step {step:>2}: EndpointSlice {so:>4} objects {_size(sb):>9}; "
                             f"Endpoints {eo:>4} objects {_size(eb):>9}")
        return "\n".join(lines)

    __str__ = table


def _size(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def sent_bytes(w) -> int:
    """What one write sends each watcher: the object; for a delete, its last state."""
    return w.bytes if w.op != "delete" else len(json.dumps(w.obj.to_dict(), separators=(",", ":")))


def rolling_update(replicas: int = 1000, nodes: int = 10, max_endpoints_per_slice: int = 100,
                   seed: int = 0, ready_batch: int | None = None) -> ChurnReport:
    """Roll a ``replicas``-pod Deployment to a new image and count what both schemes write."""
    if ready_batch is not None and ready_batch < 1:
        raise ValueError(f"ready_batch: must be None or at least 1, got {ready_batch}")
    c = Cluster(nodes=nodes, seed=seed, max_endpoints_per_slice=max_endpoints_per_slice)
    c.apply(_MANIFEST.format(replicas=replicas))
    ledger = c.slices.ledger
    mark, first_step = len(ledger.writes), c.workloads.steps
    steps: list[int] = []                    # the step of every ledger write since the mark
    after = [0]                              # 1 once the rollout is over (the grace period's end)

    def tag(_event) -> None:                 # events reach watchers after each settle round
        while mark + len(steps) < len(ledger.writes):
            steps.append(c.workloads.steps - first_step + after[0])

    c.subscribe(tag)
    d = copy.deepcopy(c.get("deploy", "web"))
    d.template.containers[0].image = "nginx:1.28"
    if ready_batch is None:
        c.apply(d)
        rollout_steps = c.workloads.steps - first_step
        after[0] = 1
        c.advance(GRACE)
    else:
        d.template.ready_given = True        # new pods start running but not ready
        with c.api.transaction():
            c.api.apply(d)
        c.advance(0)
        _pace(c, d.replicas, template_hash(d), ready_batch)
        rollout_steps = c.workloads.steps - first_step
    tag(None)

    writes = ledger.writes[mark:]
    rows, totals = [], {s: [0, 0] for s in SCHEMES}
    for i, (w, step) in enumerate(zip(writes, steps)):
        t, size = totals[w.kind], sent_bytes(w)
        t[0] += 1
        t[1] += size
        rows.append(Row(i, step, w.time, w.kind, w.op, size, t[0], t[1]))
    surge, unavailable = fenceposts(replicas)
    return ChurnReport(replicas, nodes, max_endpoints_per_slice, ready_batch, surge, unavailable, rollout_steps,
                       {s: SchemeCost(s, totals[s][0], totals[s][1], nodes) for s in SCHEMES},
                       rows, writes, c)


def _pace(c: Cluster, replicas: int, new_hash: str, k: int) -> None:
    """The readiness probes of the new pods pass k at a time, one tick (second) apart, until only
    ``replicas`` ready pods of the new template remain."""
    idle = 0
    while True:
        pods = c.list("Pod")
        if len(pods) == replicas and all(p.ready and p.metadata.labels.get("pod-template-hash") == new_hash
                                         for p in pods):
            return
        waiting = sorted((p for p in pods if p.pod_ip and not p.ready and not p.terminating),
                         key=lambda p: (p.metadata.creation_timestamp or "", p.name))[:k]
        with c.api.transaction():
            for p in waiting:
                new = copy.deepcopy(p)
                new.ready = True
                c.api.write(new)
        idle = 0 if waiting else idle + 1
        if idle > 2 * GRACE:
            raise RuntimeError("the rollout made no progress (pods that cannot be scheduled?)")
        c.advance(1)
