"""Lesson 14, the debugging lab: knowledge check (tests/test_lesson_14.py derives every key that is a
fact the model computes from the model)."""
from ..quiz import Question, Quiz

QUIZ = Quiz("Check: debugging Services", (
    Question(
        "The EndpointSlice of `web` lists three ready endpoints, yet `curl http://web` is refused, and so is a "
        "connection straight to a pod's IP at the Service's targetPort. What is wrong?",
        ("The selector matches no pod",
         "The targetPort is not a port the containers listen on",
         "kube-proxy is down on the client's node",
         "DNS returns the wrong address"),
        1,
        "Ready endpoints rule out the selector and readiness; a pod that refuses its own targetPort means nothing "
        "listens there. The rules are fine: they translate to the wrong port. Set targetPort to the container's "
        "port or its name."),
    Question(
        "A pod with the default `ndots:5` and the three default search domains looks up `api.example.com` "
        "(glibc, an A and an AAAA query per name tried). How many queries does one lookup cost?",
        ("2", "4", "6", "8"),
        3,
        "Two dots are fewer than five, so the resolver tries the three search domains first (NXDOMAIN each) and "
        "then the name itself, asking A and AAAA every time: 4 x 2 = 8. `ndots:2` or a trailing dot makes it 2."),
    Question(
        "A NodePort Service has `externalTrafficPolicy: Local`; its pods run on node-2 and node-3. A client "
        "outside the cluster connects to node-1's NodePort. What happens?",
        ("It is forwarded to a pod on node-2, from node-1's address",
         "It is dropped: node-1 has no local endpoint",
         "It is refused at once",
         "node-1 answers it itself"),
        1,
        "Local means only this node's endpoints, and no SNAT: node-1 has none, so kube-proxy drops the packet "
        "and the client times out. Spread the pods to every node that receives traffic, let a health-checking "
        "load balancer skip node-1, or use Cluster if the client's address does not matter."),
    Question(
        "A Service selects 1,001 ready pods. What does its legacy v1 Endpoints object hold?",
        ("All 1,001 addresses",
         "1,000 addresses and the annotation endpoints.kubernetes.io/over-capacity: truncated",
         "Nothing: the Endpoints API is gone",
         "100 addresses, like one EndpointSlice"),
        1,
        "The Endpoints controller stops at 1,000 addresses and marks the object truncated; the EndpointSlices "
        "hold all 1,001 (in slices of up to 100). Tools that read Endpoints miss the rest: read EndpointSlices."),
    Question(
        "On bare metal, a LoadBalancer Service shows EXTERNAL-IP `<pending>`, its pods are ready, and "
        "`kubectl describe svc` lists no events. Why?",
        ("No load-balancer controller runs, so nothing will ever assign an address",
         "The Service has no endpoints",
         "Its NodePort is out of range",
         "kube-proxy has not synced"),
        0,
        "kube-proxy and the API server do not assign external addresses: a cloud's service controller or MetalLB "
        "does, and records events as it works. None running means no address and no event. Install MetalLB "
        "with an address pool, or expose the Service another way."),
))
