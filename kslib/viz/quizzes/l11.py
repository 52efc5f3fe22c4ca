"""Lesson 11: session affinity."""
from ..quiz import Question, Quiz

QUIZ = Quiz("Check: session affinity", (
    Question("A Service sets sessionAffinity: ClientIP and no sessionAffinityConfig. Which timeout does the "
             "API server store?",
             ("none: the affinity never expires", "180 seconds", "10800 seconds (3 hours)", "86400 seconds (1 day)"), 2,
             "Defaulting fills in sessionAffinityConfig.clientIP.timeoutSeconds: 10800. Allowed values run from 1 "
             "to 86400."),
    Question("Which timeoutSeconds does the API server refuse?",
             ("1", "3600", "86400", "86401"), 3,
             "The check is timeoutSeconds <= 0 or > 86400, so 86401 is refused while 86400 passes, even though the "
             "message says 'less than 86400'."),
    Question("iptables mode, timeout 10800 s. A client opens a connection at t = 0, another at t = 10,000 s and "
             "another at t = 20,000 s. Where does the third one go?",
             ("to the same pod: every new connection re-stamps the address with --set",
              "to a new random pod: 20,000 s is more than 10800 s after the first choice",
              "nowhere: the recent table is full", "to the pod with the fewest connections"), 0,
             "The KUBE-SEP chain's '-m recent --set' records the address again on every new connection, and "
             "'--rcheck --seconds 10800' compares with that newest stamp: the timeout counts from the last new "
             "connection, not the first."),
    Question("500 users behind one office NAT open 5,000 connections through a NodePort to a Service with "
             "ClientIP affinity and 5 pods. How many pods serve them?",
             ("1", "about 2", "5, about 1,000 each", "it depends on the users' source ports"), 0,
             "Affinity keys on the source address alone, and behind the NAT all 500 users share one address: "
             "one client to kube-proxy, so one pod."),
    Question("Where does per-user stickiness belong?",
             ("in sessionAffinity: ClientIP with a longer timeout",
              "at layer 7: a cookie set by the ingress or load balancer (or no stickiness: shared session state)",
              "in IPVS with the sh scheduler", "in the pod's readiness probe"), 1,
             "Only layer 7 can tell users apart behind a shared address; a cookie names the user. Keeping session "
             "state out of the pods removes the need for stickiness altogether."),
))
