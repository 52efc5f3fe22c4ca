"""Lesson 15 (your own cluster): the quiz's answer keys, derived from the model where they are facts
it computes, and the sample facts the lesson's prose relies on."""
import pytest

import kslib
import kslib.snapshot as ks
from kslib.viz import quiz

QUIZ = quiz(15)


@pytest.fixture(scope="module")
def sample():
    return ks.load("sample")


def keyed(i):
    q = QUIZ.questions[i]
    return q.choices[q.answer]


def test_the_quiz_is_well_formed():
    assert 3 <= len(QUIZ.questions) <= 5
    assert QUIZ.check([q.answer for q in QUIZ.questions]) == [True] * len(QUIZ.questions)


def test_q1_kube_proxy_reads_endpointslices_not_pods(sample):
    assert keyed(0) == "from the EndpointSlices"
    rules = sample.render("worker-1")
    # a selectorless Service has no pods at all, only a hand-written slice, and still gets its DNAT rule
    assert not sample.get("svc", "legacy-billing", "shop").selector
    assert "--to-destination 10.0.2.50:8080" in rules
    # and a slice that disagrees with the pods wins: kube-proxy follows the slice, whatever the pods say
    c = ks.load("sample")
    s = c.endpoint_slices("legacy-billing", "shop")[0]
    assert c.pods and all(p.pod_ip != "10.0.2.50" for p in c.pods)
    assert s.endpoints[0].addresses == ["10.0.2.50"]


def test_q2_a_not_ready_pod_is_listed_not_ready_and_not_serving(sample):
    ep = next(e for s in sample.endpoint_slices("api", "shop") for e in s.endpoints if e.addresses == ["10.244.2.4"])
    c = ep.conditions
    want = f"ready: {str(c.is_ready).lower()}, serving: {str(c.is_serving).lower()}, " \
           f"terminating: {str(c.is_terminating).lower()}"
    assert keyed(1) == want == "ready: false, serving: false, terminating: false"
    assert "10.244.2.4" not in sample.render("worker-1"), "no rule for it"


def test_q3_the_vm_sees_the_nodes_address_through_the_real_dump(sample):
    dump = ks.NodeDump(sample, "worker-1", ks.SAMPLE_NODE_DUMP.read_text())
    conn = dump.connect("shop/debug", "10.96.201.15", 80)
    assert conn.endpoint == "10.0.2.50:8080"
    assert keyed(2).split(",")[0] == conn.source_ip == sample.get("node", "worker-1").internal_ip
    assert dump.model_connect("shop/debug", "10.96.201.15", 80).source_ip == sample.pod("shop/debug").pod_ip


def test_q4_the_fallback_service_cidr(sample):
    managed = ks.load(ks.managed_view(ks.read("sample")))
    assert keyed(3).split(",")[0] == managed.service_cidr == "10.96.0.0/12"
    assert not managed.snapshot.settings["service_cidr"].recorded
    assert sample.service_cidr == "10.96.0.0/16"


def test_q5_pods_and_slices_read_at_different_moments_disagree():
    assert keyed(4).startswith("kubectl lists each resource type with its own request")
    c = ks.load(ks.set_pod_ready(ks.read("sample"), "shop/api-5d4f8b7c9-t9p6z"))
    assert c.snapshot.slice_differences, "a pod that turned Ready after its slice was listed shows up"


def test_the_sample_is_the_kubeadm_cluster_the_lesson_describes(sample):
    objs = ks.read("sample")
    versions = {o["status"]["nodeInfo"]["kubeletVersion"] for o in objs if o["kind"] == "Node"}
    assert versions == {"v1.31.4"}
    assert {p.namespace for p in sample.pods} == {"kube-flannel", "kube-system", "metallb-system", "shop"}
    assert "iptables-save v1.8.9 (nf_tables)" in ks.SAMPLE_NODE_DUMP.read_text()
    assert isinstance(sample, kslib.Cluster)
