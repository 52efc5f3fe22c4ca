"""Lesson 16: the kernel lab."""
from ..quiz import Question, Quiz

QUIZ = Quiz("Check: the model on the real kernel", (
    Question("web-local has externalTrafficPolicy: Local and its only pod, web-1, runs on node-2. An external "
             "client connects to node-1:30090. What happens, in the model and on the kernel?",
             ("it is forwarded to web-1 and SNATed to node-1's IP", "it is dropped on node-1",
              "node-1 rejects it with an ICMP error", "it reaches web-1 with the client's own address"), 1,
             "Local means only endpoints on the receiving node; node-1 has none, so kube-proxy's rules drop the "
             "packet (the load balancer's health check is what keeps traffic away from such a node)."),
    Question("A pod connects to web's ClusterIP on port 81, a port the Service does not define. What does the "
             "client see in iptables mode and in nftables mode?",
             ("a timeout (dropped) in both", "connection refused (rejected) in both",
              "a timeout in iptables mode, connection refused in nftables mode",
              "connection refused in iptables mode, a timeout in nftables mode"), 2,
             "iptables mode has no rule for the VIP on an undefined port, so the packet is routed nowhere; "
             "nftables mode's cluster-ips check rejects it. The real kernel does exactly the same."),
    Question("web-1 connects to its own Service web and the kernel picks web-1 itself (a hairpin). Which source "
             "address does web-1 see?",
             ("its own pod IP", "node-2's pod gateway address", "node-2's InternalIP", "web's ClusterIP"), 1,
             "The KUBE-SEP chain marks hairpin traffic for masquerade; it leaves node-2 towards a local pod, so "
             "MASQUERADE picks the pod gateway address (the cni0 address). Without it the reply would never be "
             "un-DNATed."),
    Question("Why does this course run only iptables and nftables modes on the kernel lab?",
             ("IPVS and eBPF are slower", "this kernel has no IPVS (CONFIG_IP_VS is not set) and kslib renders "
              "Cilium's maps but loads no BPF programs", "kube-proxy no longer supports IPVS",
              "network namespaces cannot hold IPVS or BPF state"), 1,
             "kslib.lab.available('ipvs') and available('ebpf') give these reasons; IPVS and eBPF stay model-only "
             "here."),
    Question("iptables-save on the node prints -s 10.244.1.4/32 and --set-xmark 0x4000/0x4000 where kube-proxy "
             "wrote -s 10.244.1.4 and --or-mark 0x4000. What does that tell you?",
             ("the kernel changed the rules", "the same rules, in the kernel's own canonical spelling",
              "iptables-restore failed on those lines", "the model rendered the wrong rules"), 1,
             "Brought to one canonical form, every kube-proxy rule the model rendered is in the kernel, and "
             "nothing else."),
))
