"""kslib.churn: what a rolling update writes under EndpointSlices and under Endpoints."""
import math

import pytest

from kslib.churn import SCHEMES, rolling_update, sent_bytes
from kslib.controllers.endpointslice import OVER_CAPACITY


def expected_steps(replicas):
    """(old, new) live pods after each step of a rolling update whose pods are ready at once, by
    rolling.go's rules: scale the new ReplicaSet up to replicas + maxSurge pods in all, else scale the
    old ones down to replicas - maxUnavailable available pods."""
    surge, unavailable = math.ceil(replicas / 4), math.floor(replicas / 4)
    old, new, out = replicas, 0, []
    while old:
        if new < replicas and old + new < replicas + surge:
            new += min(replicas + surge - old - new, replicas - new)
        else:
            old -= min(old, old + new - (replicas - unavailable))
        out.append((old, new))
    if new < replicas:
        out.append((0, replicas))
    return out


def addresses(ep):
    return sum(len(s.addresses) + len(s.not_ready_addresses) for s in ep.subsets)


def test_ten_replicas_writes_follow_from_the_steps():
    steps = expected_steps(10)
    assert steps == [(10, 3), (5, 3), (5, 8), (0, 8), (0, 10)]         # maxSurge 3, maxUnavailable 2
    r = rolling_update(replicas=10, nodes=2)
    assert (r.max_surge, r.max_unavailable, r.steps) == (3, 2, len(steps))
    # The controllers first look after step 2 (the settle loop runs the Deployment controller before
    # them in each round, and the template change itself touches no Service), then after every step.
    # Every look finds a different set of live pods: one Endpoints write each, listing them all.
    seen = steps[1:]
    eps = [w for w in r.writes if w.kind == "Endpoints"]
    assert [addresses(w.obj) for w in eps] == [old + new for old, new in seen]
    assert all(w.op == "update" for w in eps)
    # All endpoints (13 at most, with the terminating ones) fit one slice: it is updated on every look,
    # and once more when the grace period is over and the terminating pods are gone.
    slices = [w for w in r.writes if w.kind == "EndpointSlice"]
    assert len(slices) == len(seen) + 1 and {w.op for w in slices} == {"update"}
    assert len({w.name for w in slices}) == 1
    assert r.schemes["EndpointSlice"].objects == len(slices) and r.schemes["Endpoints"].objects == len(eps)
    assert r.schemes["Endpoints"].bytes_per_node == sum(w.bytes for w in eps)
    assert r.schemes["Endpoints"].bytes_all_nodes == 2 * r.schemes["Endpoints"].bytes_per_node
    assert "EndpointSlice" in r.table() and "Endpoints sends" in str(r)


@pytest.fixture(scope="module")
def thousand():
    return rolling_update(replicas=1000, nodes=10)


def test_thousand_replicas_endpoints_truncated_and_many_times_a_slice(thousand):
    r = thousand
    assert r.steps == len(expected_steps(1000)) == 5
    eps = [w.obj for w in r.writes if w.kind == "Endpoints"]
    assert eps and all(addresses(ep) <= 1000 for ep in eps)
    # after step 3, 500 old + 750 new pods are live: the object is cut to 1,000, with the annotation
    assert [addresses(ep) for ep in eps] == [750, 1000, 750, 1000]
    assert [ep.metadata.annotations.get(OVER_CAPACITY) for ep in eps] == [None, "truncated", None, None]
    # Per object, an Endpoints write carries 750-1,000 addresses and a slice at most 100 endpoints,
    # an endpoint in a slice taking about 1.5 times the bytes of an address (its conditions): about 6x.
    slices = [w for w in r.writes if w.kind == "EndpointSlice"]
    assert all(len(w.obj.endpoints) <= 100 for w in slices)
    per_ep = sum(sent_bytes(w) for w in r.writes if w.kind == "Endpoints") / len(eps)
    per_slice = sum(sent_bytes(w) for w in slices) / len(slices)
    assert 4 < per_ep / per_slice < 8
    # In total they come out about even: when each step's pods turn ready at once, every step rewrites
    # most slices (the old pods to go are scattered over all of them) while Endpoints is written once.
    assert len(slices) > 5 * len(eps)
    assert 0.3 < r.ratio < 1.2


def test_trickling_readiness_is_where_slices_win():
    # 100 pods in slices of 10 is the 1,000-in-100 ratio at a tenth of the cost. Pods turning ready
    # one at a time make each write carry one change: an Endpoints write is then ~10 slices' worth.
    bulk = rolling_update(replicas=100, nodes=2, max_endpoints_per_slice=10)
    paced = rolling_update(replicas=100, nodes=2, max_endpoints_per_slice=10, ready_batch=1)
    assert paced.ratio > 3 and paced.ratio > 4 * bulk.ratio
    assert paced.schemes["Endpoints"].objects > 100           # at least one write per pod replaced
    check_bounds(paced)


def check_bounds(r):
    """At no point during the rollout are fewer than replicas - maxUnavailable pods ready, or more than
    replicas + maxSurge pods (not terminating), replaying every Pod event of the cluster."""
    c = r.cluster
    first_hash = next(e.obj.metadata.labels["pod-template-hash"] for e in c.events if e.kind == "Pod")
    pods, started, lows, highs = {}, False, [], []
    live = ready = 0
    for e in c.events:
        if e.kind != "Pod":
            continue
        started = started or e.obj.metadata.labels["pod-template-hash"] != first_hash
        was = pods.pop(e.obj.key, None)
        if was is not None and not was.terminating:
            live, ready = live - 1, ready - was.ready
        if e.type != "DELETED":
            pods[e.obj.key] = p = e.obj
            if not p.terminating:
                live, ready = live + 1, ready + p.ready
        if started:
            lows.append(ready)
            highs.append(live)
    assert started
    assert len(pods) == r.replicas and all(p.ready for p in pods.values())
    assert {p.metadata.labels["pod-template-hash"] for p in pods.values()} != {first_hash}
    assert len({p.metadata.labels["pod-template-hash"] for p in pods.values()}) == 1
    assert min(lows) >= r.replicas - r.max_unavailable and max(highs) <= r.replicas + r.max_surge
    # and the bounds are reached: the rollout goes as fast as they allow
    assert min(lows) == r.replicas - r.max_unavailable and max(highs) == r.replicas + r.max_surge


def test_rollout_stays_within_max_surge_and_max_unavailable(thousand):
    check_bounds(thousand)


def test_by_step_rows_are_cumulative_for_both_schemes(thousand):
    rows = thousand.by_step()
    assert {s for _, s, _, _ in rows} == set(SCHEMES)
    last = {s: (o, b) for _, s, o, b in rows}
    for s in SCHEMES:
        assert last[s] == (thousand.schemes[s].objects, thousand.schemes[s].bytes_per_node)
        series = [(o, b) for _, x, o, b in rows if x == s]
        assert series == sorted(series)
    assert rows[-1][0] == thousand.steps + 1          # the grace period's end, after the last step
