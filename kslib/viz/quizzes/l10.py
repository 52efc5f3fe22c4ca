"""Lesson 10: LoadBalancer Services and the cloud."""
from ..quiz import Question, Quiz

QUIZ = Quiz("Check: LoadBalancer Services and the cloud", (
    Question("A kubeadm cluster on your own machines has no cloud-controller-manager and no MetalLB. You apply a "
             "LoadBalancer Service. What does kubectl get svc show under EXTERNAL-IP, and which Events explain it?",
             ("<pending>, with no Events about it",
              "<pending>, with a Warning SyncLoadBalancerFailed Event",
              "<none>, with no Events about it",
              "the first node's IP, with an EnsuredLoadBalancer Event"), 0,
             "Nothing implements the load balancer, so nothing writes status.loadBalancer and no controller records "
             "an Event. The ClusterIP and NodePort layers work regardless."),
    Question("A cloud provider has two addresses left and three LoadBalancer Services ask for one. Which Event "
             "does the third Service get?",
             ("Normal EnsuredLoadBalancer", "Warning SyncLoadBalancerFailed", "Warning AllocationFailed",
              "none: it just stays <pending>"), 1,
             "The service controller records 'Error syncing load balancer: failed to ensure load balancer: <the "
             "provider's error>'. AllocationFailed is MetalLB's reason for an exhausted pool."),
    Question("Ten HTTP Services each have their own load balancer at $0.025 per hour. Over a 730-hour month, "
             "what do they cost, and what would one load balancer in front of an Ingress cost?",
             ("$18.25 and $1.83", "$182.50 and $18.25", "$250.00 and $25.00", "$182.50 and $0.00"), 1,
             "10 x $0.025 x 730 h = $182.50; the Ingress controller's one LoadBalancer Service is 1 x $0.025 x 730 h "
             "= $18.25 (data processing not counted)."),
    Question("A LoadBalancer Service has loadBalancerSourceRanges [198.51.100.0/25]. A client at 192.0.2.77 "
             "connects to a node's IP at the Service's nodePort. What happens?",
             ("it is dropped by KUBE-PROXY-FIREWALL", "it is rejected",
              "it is delivered: the source ranges guard only the load-balancer address",
              "it is delivered only if the node has a local endpoint"), 2,
             "kube-proxy applies loadBalancerSourceRanges to the load-balancer IP (KUBE-FW chain). The NodePort on "
             "every node stays open to every source, which is why nodes should not be reachable from the internet."),
    Question("A load balancer targets pod IPs directly (AWS's target-type ip). With externalTrafficPolicy: Cluster, "
             "which source address does the pod see?",
             ("the node's IP", "the load balancer's IP", "the client's own address", "the node's bridge address"), 2,
             "The packet arrives addressed to the pod, so no kube-proxy rule matches: no DNAT and no masquerade."),
))
