"""Lesson 15: your own cluster."""
from ..quiz import Question, Quiz

QUIZ = Quiz("Check: your own cluster, from kubectl get to a node's rules", (
    Question("kube-proxy on worker-1 writes the KUBE-SEP chains of shop/web. Where does it read the pod "
             "addresses from?",
             ("from the Pods it watches", "from the Service's selector", "from the EndpointSlices",
              "from CoreDNS"), 2,
             "kube-proxy never looks at pods: it watches Services and EndpointSlices. The EndpointSlice "
             "controller turns the selector into addresses; that is why a selectorless Service with a "
             "hand-written slice (shop/legacy-billing) still gets rules."),
    Question("In the sample, shop/api-5d4f8b7c9-t9p6z is Running but its readiness probe fails. What does "
             "its endpoint in the api EndpointSlice say?",
             ("ready: true, serving: true", "ready: false, serving: false, terminating: false",
              "ready: false, serving: true, terminating: true", "nothing: it is left out of the slice"), 1,
             "Readiness gates registration, not listing: the pod stays in the slice with ready and serving "
             "false, and kube-proxy writes no KUBE-SEP chain for it."),
    Question("A pod on worker-1 connects to shop/legacy-billing, whose only endpoint is a VM at "
             "10.0.2.50:8080 outside the pod network. Traced through worker-1's real iptables-save "
             "(flannel with --ip-masq), which source address does the VM see?",
             ("10.244.1.7, the pod's own", "10.0.1.11, worker-1's address",
              "10.96.201.15, the ClusterIP", "10.244.1.1, the cni0 bridge"), 1,
             "kube-proxy does not mark it (the source is in the cluster CIDR), but flannel's FLANNEL-POSTRTG "
             "masquerades pod traffic leaving the pod network to the node's address. The model without "
             "the CNI's rules says 10.244.1.7: that is what the dump adds."),
    Question("The same dump as a managed cluster shows it (no kube-apiserver pod, so no "
             "--service-cluster-ip-range). Which service CIDR does kslib.snapshot.load use?",
             ("10.96.0.0/16, as the API server had it", "10.96.0.0/12, kubeadm's default, which holds every "
              "ClusterIP", "10.96.0.0/24", "none: loading fails"), 1,
             "With the flag gone, the fallback is kubeadm's default 10.96.0.0/12 when it holds every "
             "ClusterIP in the dump (else the smallest network that does), and the report says so."),
    Question("Why can a dump's EndpointSlices disagree with what the controller computes from the same "
             "dump's pods?",
             ("kubectl lists each resource type with its own request, so pods and slices are read at "
              "slightly different moments", "kube-proxy rewrites slices on every node",
              "EndpointSlices store the Service's selector, not addresses",
              "they never can: a slice is computed when it is read"), 0,
             "`kubectl get nodes,pods,services,endpointslices` makes one list call per type; a pod whose "
             "probe passes in between is Ready in the pod list while the slice still says not ready."),
))
