"""Lesson 6: kube-proxy's nftables mode."""
from ..quiz import Question, Quiz

QUIZ = Quiz("Check: kube-proxy's nftables mode", (
    Question("In nftables mode, how does a first packet to a ClusterIP find its Service's chain?",
             ("it is compared with one rule per Service, in order",
              "one lookup of ip daddr . meta l4proto . th dport in the service-ips verdict map",
              "IPVS looks the virtual server up in a hash table",
              "conntrack already knows the Service"), 1,
             "The services chain holds a single vmap rule; the map's key is address . protocol . port and its "
             "value is a goto to the Service's chain. The rules visited do not grow with the Services."),
    Question("A Service has 3 ready endpoints. What does its nftables service chain use to pick one?",
             ("statistic rules with probabilities 1/3, 1/2, 1", "numgen random mod 3 vmap { 0 : goto ..., 1 : ..., 2 : ... }",
              "round robin over the endpoint chains", "a hash of the client address"), 1,
             "One random number modulo the number of endpoints, looked up in an anonymous verdict map: each "
             "endpoint gets 1/3 directly."),
    Question("In the shipped kernel measurement at 10,000 Services, which mode had the lower median "
             "first-packet latency?",
             ("iptables", "nftables", "they were equal"), 1,
             "iptables' median grows with the KUBE-SERVICES walk; nftables' stays near its one-Service value."),
    Question("Why does kube-proxy's nftables mode send incremental transactions rather than reloading its "
             "whole table on every change?",
             ("nft cannot load a whole ruleset",
              "a cold nft -f of a large kube-proxy ruleset is slow and grows super-linearly with the Services",
              "iptables-restore would overwrite it",
              "the verdict maps are read-only once loaded"), 1,
             "In the shipped measurement a cold load took far longer than iptables-restore at 10,000 Services and "
             "grew about as N^2 (kubernetes/kubernetes#139513); an incremental transaction stays small."),
    Question("One Service is added to a cluster. How does the size of kube-proxy's next (partial) sync "
             "payload depend on the number of Services already there?",
             ("nftables: about constant; iptables: grows with the Services",
              "both constant", "both grow with the Services",
              "nftables: grows; iptables: constant"), 0,
             "iptables mode rewrites the top-level KUBE-SERVICES chain (one rule per Service) on every sync; "
             "nftables mode adds one map element and the new Service's chains."),
))
