"""Lesson 7's knowledge check: Cilium's eBPF kube-proxy replacement and Maglev."""
from kslib.viz.quiz import Question, Quiz

QUIZ = Quiz("Check: eBPF mode and Maglev", (
    Question(
        "With Cilium's socket-level load balancing, what destination address do the packets of a pod's "
        "connection to a ClusterIP carry on the wire?",
        ("The ClusterIP, translated later by tc", "The chosen backend pod's IP",
         "The node IP of the backend's node", "The ClusterIP, encapsulated"),
        1,
        "The cgroup connect() hook rewrites the socket's destination to a backend before any packet is sent: "
        "no packet carries the VIP, and there is no DNAT in conntrack."),
    Question(
        "After that connect(), what does getpeername() on the client's socket return?",
        ("The backend pod's IP", "The ClusterIP", "The node IP", "Nothing: the socket is unconnected"),
        1,
        "Cilium's getpeername/recvmsg hooks translate back through the reverse socket map, so the "
        "application still sees the Service address it asked for."),
    Question(
        "An external client reaches a NodePort on node-1 whose backend is on another node, with "
        "loadBalancer.mode=dsr. What source address does the backend pod see?",
        ("node-1's IP", "The backend node's IP", "The client's own IP", "The ClusterIP"),
        2,
        "With DSR the packet keeps the client's address; the backend's node replies to the client directly "
        "with the service address as source. In SNAT mode (the default) the pod sees node-1's IP."),
    Question(
        "One backend of 10 goes away. About what fraction of existing flows change backend under Maglev?",
        ("About 1%", "About 10%", "About 50%", "About 90%"),
        1,
        "Maglev moves the removed backend's flows (1/N of them) plus a small disruption between survivors "
        "(under 1% with M = 16381)."),
    Question(
        "And under a naive hash mod N (same flow hash, backend number hash mod N)?",
        ("About 1%", "About 10%", "About 50%", "About 90%"),
        3,
        "Changing N changes hash mod N for almost every flow: about (N-1)/N of all flows land on a different "
        "backend, breaking their connections."),
))
