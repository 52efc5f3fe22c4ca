"""Lesson 01, pods are ephemeral: knowledge check (tests/test_lesson_01_02.py derives the keys
that are facts the model computes from the model)."""
from ..quiz import Question, Quiz

QUIZ = Quiz("Check: pods, Services and selectors", (
    Question(
        "A Deployment's pod is deleted and its replacement starts. What address does the replacement get?",
        ("The deleted pod's address: a Deployment keeps its pods' IPs",
         "A new address from the podCIDR of the node it lands on",
         "The Service's ClusterIP"),
        1,
        "Pod IPs belong to one pod's sandbox on one node; a replacement is a new pod with a new address. "
        "Clients that must survive that use the Service's stable ClusterIP or its DNS name."),
    Question(
        "A Service selects `app: web, tier: api`. Which pod becomes one of its endpoints?",
        ("A pod labelled `app: web`",
         "A pod labelled `app: web, tier: api, version: v2`",
         "A pod labelled `tier: api`",
         "Every pod in the namespace"),
        1,
        "A selector needs every label it lists, with the same value; labels the pod has beyond those do not "
        "matter. A pod missing any listed label is not selected."),
    Question(
        "A Service's selector matches no pod. What happens to a TCP connection to its ClusterIP in iptables mode?",
        ("It is load-balanced to a random pod in the namespace",
         "It waits until a pod matches",
         "It is rejected at once by the node's \"has no endpoints\" REJECT rule",
         "It reaches the node, which answers itself"),
        2,
        "kube-proxy writes `-j REJECT` for a Service port without endpoints, so the client gets "
        "\"connection refused\" from its own node: the Service exists, its EndpointSlice is empty."),
    Question(
        "A Service answers \"connection refused\" though its pods are Running. What do you check first?",
        ("Whether its EndpointSlices hold any endpoints (kubectl get endpointslices -l "
         "kubernetes.io/service-name=<svc>)",
         "The pods' CPU limits",
         "Whether the ClusterIP answers ping"),
        0,
        "Empty endpoints are the first thing to rule out: then compare the Service's selector with the pods' "
        "labels (kubectl get pods --show-labels). A ClusterIP never answers ping, working or not."),
))
