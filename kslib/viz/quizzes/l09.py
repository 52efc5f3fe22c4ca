"""Lesson 9: NodePort, externalTrafficPolicy and the SNAT problem."""
from ..quiz import Question, Quiz

QUIZ = Quiz("Check: NodePort and externalTrafficPolicy", (
    Question("A NodePort Service (externalTrafficPolicy: Cluster) has one pod, on node-1. An external client "
             "connects to node-3's IP at the nodePort. What happens?",
             ("it is dropped: node-3 runs no pod of the Service",
              "it is delivered to the pod on node-1, which sees node-3's IP as the source",
              "it is delivered to the pod on node-1, which sees the client's IP as the source",
              "it is rejected with a TCP reset"), 1,
             "Every node captures the nodePort. node-3 DNATs the packet to the pod and, under Cluster, masquerades "
             "it to its own address so the reply comes back through node-3."),
    Question("The same Service with externalTrafficPolicy: Local. The client connects to node-3's IP at the "
             "nodePort. What happens?",
             ("it is dropped by a \"has no local endpoints\" rule",
              "it is forwarded to node-1 without source NAT",
              "it is forwarded to node-1 with source NAT",
              "node-3 answers 503"), 0,
             "Local sends external traffic only to pods on the entry node; kube-proxy writes a DROP for nodes "
             "without one. The load balancer's health check is what keeps traffic away from such nodes."),
    Question("externalTrafficPolicy: Local, 3 ready pods on node-1 and 1 on node-2, and a load balancer that "
             "spreads connections evenly over the nodes that pass its health check. What share of the "
             "connections does the pod on node-2 serve?",
             ("1/6", "1/4", "1/3", "1/2"), 3,
             "Only node-1 and node-2 pass the health check, so each gets half; node-2's half all goes to its one "
             "pod, while node-1 splits its half three ways (1/6 each)."),
    Question("What does kube-proxy answer on a Local Service's healthCheckNodePort on a node that has no ready "
             "local endpoint for it?",
             ("200, with localEndpoints 0", "503", "404", "nothing: the port is closed"), 1,
             "kube-proxy's service health server answers 200 with at least one local ready endpoint and 503 "
             "otherwise; the JSON body says how many there are."),
    Question("A pod on a node without a local endpoint connects to a Local Service's load-balancer IP. "
             "What happens?",
             ("it is dropped, as external traffic to that node would be",
              "it leaves the cluster and comes back through the load balancer",
              "it is sent to any endpoint of the Service, keeping the pod's own address",
              "it is sent to any endpoint, masqueraded to the node's IP"), 2,
             "kube-proxy short-circuits pod traffic to a Service's external addresses: it is treated like "
             "ClusterIP traffic (any endpoint, no masquerade), so it never depends on local endpoints."),
))
