"""Lesson 02, the ClusterIP and the VIP: knowledge check (tests/test_lesson_01_02.py derives every
key that is a fact the model computes from the model)."""
from ..quiz import Question, Quiz

QUIZ = Quiz("Check: the ClusterIP, DNAT and masquerade", (
    Question(
        "In iptables mode, a pod sends TCP to a ClusterIP on a port the Service does not define. What happens?",
        ("The packet is DNATed to a backend on the same port",
         "No rule translates it and nothing answers for the ClusterIP: it is dropped and the client times out",
         "The node answers with a TCP reset"),
        1,
        "kube-proxy's iptables rules match a ClusterIP only together with `-p <protocol> --dport <port>`. "
        "(The nftables mode rejects such packets instead, from its cluster-ips set.)"),
    Question(
        "A pod on node-1 connects to a ClusterIP whose only backend runs on node-2. Where is the DNAT done?",
        ("node-1, in nat PREROUTING", "node-2, in nat PREROUTING", "node-1, in nat OUTPUT",
         "node-2, in nat POSTROUTING"),
        0,
        "The source node translates: the pod's packet enters node-1's network stack from the pod's veth and "
        "meets nat PREROUTING there; it crosses to node-2 already addressed to the pod IP."),
    Question(
        "In that connection, which source address does the backend pod see?",
        ("node-1's address", "the ClusterIP", "the client pod's own address", "node-1's pod gateway (cni0) address"),
        2,
        "Pod-to-Service traffic is not masqueraded: the packet leaves from the pod CIDR, so kube-proxy's "
        "`! -s <cluster CIDR>` masquerade rule does not match."),
    Question(
        "A process on node-1 itself (host network) connects to the same ClusterIP. Which source does the backend "
        "on node-2 see?",
        ("the ClusterIP", "node-1's InternalIP", "the process's loopback address 127.0.0.1"),
        1,
        "The node's own packet is not from the pod CIDR, so KUBE-SVC marks it for masquerade and "
        "KUBE-POSTROUTING rewrites its source to the address of the interface it leaves by: the node IP."),
    Question(
        "What source address does the client see on the replies?",
        ("the backend pod's IP", "the ClusterIP", "the backend node's IP"),
        1,
        "conntrack remembers the DNAT and reverses it on every reply, so the client only ever talks to the VIP."),
))
