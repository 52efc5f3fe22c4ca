"""Lesson 08 (DNS and service discovery): the knowledge check. tests/test_lesson_03_08.py derives the keys
from the model."""
from ..quiz import Question, Quiz

QUIZ = Quiz("Check: DNS and service discovery", (
    Question("A pod in namespace shop has the default resolv.conf (ndots:5). Its application connects to "
             "api.example.com. How many DNS queries does glibc's getaddrinfo send?",
             ("1", "2", "4", "8"),
             3, "2 dots < ndots 5: the three search domains first (NXDOMAIN each), then the name itself; "
                "A and AAAA for each of the 4 candidates."),
    Question("Which change makes that lookup cost 2 queries?",
             ("ndots:2 in the pod's dnsConfig, or a trailing dot on the name",
              "ndots:10 in the pod's dnsConfig",
              "Adding corp.example.com to the search list",
              "Putting a headless Service in front of it"),
             0, "With ndots:2 a 2-dot name is asked as-is first; a trailing dot asks it as-is only. Either way: "
                "one candidate, A and AAAA."),
    Question("What does the name of a headless Service (clusterIP: None) resolve to?",
             ("Its ClusterIP", "The IPs of its ready pods", "A CNAME to the first pod", "Nothing: it has no VIP"),
             1, "CoreDNS answers one A record per ready endpoint; a pod that is not ready is left out."),
    Question("An ExternalName Service payments points at api.example.com. What does kube-proxy program for it?",
             ("DNAT rules to api.example.com's address", "A NodePort on every node",
              "Nothing: it exists only as a CNAME in DNS", "A KUBE-SVC chain without endpoints"),
             2, "ExternalName is DNS only: CoreDNS answers a CNAME, and the render of every node, in every mode, "
                "holds no rule for it."),
    Question("A StatefulSet kafka (serviceName kafka-headless, namespace messaging) has 3 ready pods. What does "
             "the SRV query _broker._tcp.kafka-headless.messaging.svc.cluster.local return?",
             ("One record: kafka-headless.messaging.svc.cluster.local, port 9092",
              "Three records, one per pod: kafka-N.kafka-headless.messaging.svc.cluster.local, port 9092",
              "NXDOMAIN: headless Services have no SRV records",
              "A CNAME to kafka-0"),
             1, "For a headless Service, one SRV record per ready endpoint and matching named port, targeting "
                "the pod's own name, each weighted 33 (100 / 3)."),
))
