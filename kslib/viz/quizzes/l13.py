"""Lesson 13: the scale showdown."""
from ..quiz import Question, Quiz

QUIZ = Quiz("Check: Services at scale", (
    Question("A cluster has 500 one-port Services with 133 endpoints each. About how many iptables rules does "
             "kube-proxy write on a node, and about how many does a first packet visit?",
             ("about 200,000 written; about 200,000 visited", "about 200,000 written; well under 1% of them visited",
              "about 66,500 written; about 500 visited", "about 1,000 written; about 1,000 visited"), 1,
             "2 + 3 x 133 = 401 rules per Service. A first packet walks KUBE-SERVICES to its Service, jumps into "
             "one KUBE-SVC chain and one KUBE-SEP chain: a few hundred rules, not the endpoint chains of every "
             "other Service."),
    Question("Which modes keep the rules a first packet visits the same from 100 to thousands of Services?",
             ("iptables only", "nftables, IPVS and eBPF", "IPVS only", "none of them"), 1,
             "nftables looks the destination up in a verdict map, IPVS in a hash of virtual servers, eBPF in a map; "
             "only iptables compares the packet with one KUBE-SERVICES rule per Service."),
    Question("One Service is added. Whose partial sync payload grows with the number of Services already there?",
             ("iptables", "nftables", "IPVS", "eBPF"), 0,
             "iptables mode rewrites KUBE-SERVICES (one rule per Service) on every sync; the others add the new "
             "Service's entries."),
    Question("A sidecar proxy balances requests itself and connects to pod IPs. In iptables mode, what does its "
             "first packet still walk on the node?",
             ("nothing: kube-proxy's rules are bypassed", "KUBE-SERVICES, without a match (no KUBE-SVC, no DNAT)",
              "the Service's KUBE-SVC chain", "every rule on the node"), 1,
             "PREROUTING jumps to KUBE-SERVICES for every new connection; a pod IP matches no Service rule, so the "
             "packet is compared with all of them and leaves untranslated."),
    Question("On a node with 200,000 iptables rules the calibrated model puts a first packet's latency at "
             "tens of microseconds. A team reports an inter-service p99 of 800 ms. What follows?",
             ("the model is wrong by a factor of a thousand",
              "the walk alone does not explain it: what the model leaves out (CPU contention, many new connections "
              "per request, retransmitted first packets) must multiply it", "the report must be false",
              "IPVS would be slower"), 1,
             "The model computes one first packet on an idle kernel; the report measures whole requests on busy "
             "nodes."),
))
