"""kslib.scale: the generated clusters, the shapes of the curves (iptables walks grow linearly with
Services, hash lookups do not), resumable sweeps, and the latency model calibrated on the kernel
lab's measurement (kslib/data/kernel_scaling.json)."""
import numpy as np
import pytest

from kslib import scale
from kslib.lab import scaling as kernel_scaling

SIZES = (20, 100, 400)


@pytest.fixture(scope="module")
def points():
    return {(p.mode, p.services): p for p in scale.sweep(scale.MODES, SIZES, nodes=1, connections=100,
                                                         progress=False)}


def test_a_generated_cluster_has_n_services_with_e_endpoints_each():
    c = scale.cluster(30, endpoints=4, nodes=2)
    assert len(scale.service_ips(c)) == 30 == len(set(scale.service_ips(c)))
    for s in c.services:
        if s.name.startswith("svc-"):
            (sl,) = c.endpoint_slices(s.name)
            assert len(sl.endpoints) == 4
    assert {p.node_name for p in c.pods} == {"node-1", "node-2"}
    sep = [ln for ln in c.render("node-1").splitlines() if ln.startswith(":KUBE-SEP-")]
    assert len(sep) == 30 * 4 + 1                     # plus the kubernetes Service's endpoint


def test_iptables_rules_visited_grow_linearly_with_services(points):
    v = np.array([np.mean(points["iptables", n].rules_visited) for n in SIZES])
    slope, icpt = np.polyfit(SIZES, v, 1)
    fit = slope * np.array(SIZES) + icpt
    r2 = 1 - np.sum((v - fit) ** 2) / np.sum((v - v.mean()) ** 2)
    # KUBE-SERVICES holds one rule per Service and the target is drawn uniformly: about N/2 rules more,
    # within sampling error (100 draws at N = 400: the mean position is 200 +- 12)
    assert r2 > 0.99 and 0.4 < slope < 0.6, (slope, r2)


@pytest.mark.parametrize("mode", ["nftables", "ipvs", "ebpf"])
def test_hash_modes_visit_the_same_number_of_rules_at_every_size(points, mode):
    visits = {n: set(points[mode, n].rules_visited) for n in SIZES}
    assert len(set().union(*visits.values())) == 1, visits


@pytest.mark.parametrize("mode", scale.MODES)
def test_what_kube_proxy_writes_grows_linearly_with_services(points, mode):
    r = {n: points[mode, n].rules for n in SIZES}
    assert (r[400] - r[100]) / 300 == (r[100] - r[20]) / 80      # the same rules for every Service
    if mode == "iptables":
        # past 1,000 endpoints kube-proxy drops the endpoint chains' comments (large-cluster mode,
        # largeClusterEndpointsThreshold): fewer bytes per Service at 400 x 5 than at 100 x 5
        b = {n: points[mode, n].payload_bytes for n in SIZES}
        assert (b[400] - b[100]) / 300 < 0.8 * (b[100] - b[20]) / 80
        return
    b = {n: points[mode, n].payload_bytes for n in SIZES}
    # the same bytes per Service from 20 to 100 as from 100 to 400 (addresses' lengths vary a little)
    per_small, per_large = (b[100] - b[20]) / 80, (b[400] - b[100]) / 300
    assert per_small > 0 and abs(per_large / per_small - 1) < 0.05, (per_small, per_large)


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_a_partial_sync_sends_a_fraction_of_a_full_one(points, mode):
    p = points[mode, 400]
    assert not p.partial_full
    assert p.partial_bytes < p.payload_bytes / 5


def test_a_sweep_resumes_from_its_cache(tmp_path, monkeypatch):
    cache = tmp_path / "sweep.json"
    real = scale.measure
    calls = []

    def interrupted(c, mode, *a, **kw):
        if calls:
            raise KeyboardInterrupt
        calls.append(mode)
        return real(c, mode, *a, **kw)

    monkeypatch.setattr(scale, "measure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        scale.sweep(["iptables", "nftables"], [20], nodes=1, connections=10, cache=cache, progress=False)
    monkeypatch.setattr(scale, "measure", lambda c, mode, *a, **kw: calls.append(mode) or real(c, mode, *a, **kw))
    points = scale.sweep(["iptables", "nftables"], [20], nodes=1, connections=10, cache=cache, progress=False)
    assert calls == ["iptables", "nftables"]          # the second run measured only what was missing
    assert [p.mode for p in points] == ["iptables", "nftables"]


def test_the_latency_model_predicts_each_measured_size_it_was_not_fitted_on():
    """Leave one size out, fit on the others, predict its median: within a factor 2 of the kernel."""
    runs = kernel_scaling.load()["runs"]
    for mode in ("iptables", "nftables"):
        mine = [r for r in runs if r["mode"] == mode]
        for held in mine:
            model = scale.LatencyModel.fit([r for r in runs if r is not held], mode)
            p50, _ = model.percentiles(held["rules_visited"])
            assert 0.5 < p50 / held["median_us"] < 2, (mode, held["services"], p50, held["median_us"])


def test_the_models_own_walks_give_the_kernels_median_within_a_factor_2():
    """The engine's rules visited on a fresh cluster like the lab's (1 node, 2 endpoints), through the
    calibrated model, against the kernel's measured median at the same size."""
    measured = {(r["mode"], r["services"]): r for r in kernel_scaling.load()["runs"]}
    c = scale.cluster(1_000, endpoints=2, nodes=1)
    rng = np.random.default_rng(1)
    ips = scale.service_ips(c)
    for mode in ("iptables", "nftables"):
        c.set_mode(mode)
        visited = [c.connect("client", ips[i], 80).rules_visited for i in rng.integers(0, len(ips), 200)]
        p50, p99 = scale.latency_model(mode).percentiles(visited)
        kernel = measured[mode, 1_000]
        assert 0.5 < p50 / kernel["median_us"] < 2 and p99 > p50


def test_ipvs_and_ebpf_latency_is_marked_not_calibrated():
    assert scale.latency_model("iptables").calibrated and scale.latency_model("nftables").calibrated
    assert not scale.latency_model("ipvs").calibrated and not scale.latency_model("ebpf").calibrated


def test_import_kslib_alone_reaches_the_lab_and_scale_modules():
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", "import kslib; kslib.lab.available; kslib.lab.KernelCluster; "
                           "kslib.scale.sweep"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
