"""Lesson 5's knowledge check: kube-proxy's IPVS mode."""
from kslib.viz.quiz import Question, Quiz

QUIZ = Quiz("Check: IPVS mode", (
    Question(
        "In IPVS mode, where is a Service's ClusterIP on a node?",
        ("Nowhere: it exists only in iptables rules",
         "Bound as a /32 on the kube-ipvs0 dummy interface, so the kernel treats it as a local address",
         "On the pod's eth0",
         "On the node's primary interface, next to the node IP"),
        1,
        "kube-proxy binds every ClusterIP to kube-ipvs0 so packets to it are delivered locally, where IPVS "
        "(in the INPUT path) picks a real server. That is the difference from iptables mode, where no "
        "interface holds the VIP."),
    Question(
        "A pod connects to a ClusterIP on a port the Service does not define. What happens in IPVS mode?",
        ("The connection is rejected at once (connection refused)",
         "The packet is silently dropped and the client times out",
         "It reaches a backend on that port",
         "It reaches a process on the node listening on that port"),
        0,
        "The VIP is local, so KUBE-IPVS-FILTER REJECTs a NEW packet to a kube-ipvs0 address whose "
        "(address, port) is not in the KUBE-CLUSTER-IP ipset (kubernetes#72236). In iptables mode nothing "
        "matches the packet, it is routed on, nothing answers, and it is dropped."),
    Question(
        "Three backends each hold 10 long-lived streams; a fourth replica joins and 12 new streams open. "
        "Which scheduler sends nearly all 12 to the new replica?",
        ("rr", "lc", "sh", "dh"),
        1,
        "lc picks the server with the fewest connections (an active one weighs 256 inactive ones): the new, "
        "empty replica until it catches up. rr keeps its cycle (3 streams each); sh and dh hash the source or the VIP and ignore load."),
    Question(
        "With the sh scheduler, 20 external clients each open 8 connections to a NodePort. How many "
        "different pods does each client reach?",
        ("1", "2", "4", "8"),
        0,
        "Source hashing maps a client address to one bucket of a 256-entry table, so every connection of a "
        "client goes to the same real server: per-client stickiness, and one busy client stays on one pod."),
    Question(
        "A cluster grows from 10 to 500 Services. How many rules does a first packet to a Service walk in "
        "IPVS mode?",
        ("About 50 times more", "About 10 times more", "The same number", "None: IPVS uses no iptables rules"),
        2,
        "IPVS mode keeps a fixed set of iptables rules that match ipsets, and finds the virtual server by a "
        "hash lookup, so the walk does not grow with Services; iptables mode's KUBE-SERVICES list does."),
))
