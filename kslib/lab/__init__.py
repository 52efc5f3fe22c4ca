"""The kernel lab: the model's cluster on the real Linux kernel (shared/API.md, ARCHITECTURE.md 6).

``available()`` says whether this machine can run it; ``KernelCluster(cluster)`` builds the cluster
out of network namespaces, loads what ``cluster.render(node)`` prints into each node with
``iptables-restore`` or ``nft -f``, and opens real connections. IPVS and eBPF stay model-only.
"""
from .kernel import KernelCluster, LabUnavailable
from .netns import LabError, available

__all__ = ["KernelCluster", "LabError", "LabUnavailable", "available"]
