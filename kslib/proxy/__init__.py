"""kube-proxy, modelled: the configuration a node's proxier runs with, the node it runs on,
and (in submodules) the endpoint categorisation every mode shares and the rule generators."""
from __future__ import annotations

from dataclasses import dataclass, field

from kslib.api.node import ZONE_LABEL


@dataclass
class ProxyConfig:
    """kube-proxy's flags and the node facts its rule text depends on."""
    cluster_cidr: str = "10.244.0.0/16"   # local traffic detector (--detect-local-mode ClusterCIDR); "" = none
    service_cidr: str = "10.96.0.0/12"
    masquerade_all: bool = False
    masquerade_bit: int = 14
    nfacct: bool = True            # nfacct counters exist (as in kube-proxy's tests)
    random_fully: bool = False     # iptables binary supports --random-fully (kube-proxy's fake does not)
    localhost_nodeports: bool = True
    tcp_be_liberal: bool = False   # sysctl net/netfilter/nf_conntrack_tcp_be_liberal != 0
    large_cluster_threshold: int = 1000
    full_sync_period: float = 3600.0


@dataclass
class NodeView:
    """The node a proxier runs on: its name (endpoint locality), IP and labels (zone)."""
    name: str
    ip: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def zone(self) -> str | None:
        return self.labels.get(ZONE_LABEL)


@dataclass
class SyncResult:
    """What one sync sent to the kernel, and how big the node's kube-proxy state is after it."""
    full: bool                  # full sync (else partial, KEP-3453)
    payload: str                # what the proxier sent: iptables-restore --noflush / nft -f / ipvsadm input
    rules_sent: int             # rules (-A lines, add rule lines) in the payload
    chains_sent: int            # chain lines in the payload
    services_synced: int        # service ports whose per-service chains went into the payload
    rules_total: dict           # {"filter": n, "nat": m}: rules in kube chains after the sync
    stale_chains_deleted: int   # chains deleted (-X, delete chain)
    ops: int = 0                # operations in the transaction, counted as kube-proxy's nft tests count them


__all__ = ["NodeView", "ProxyConfig", "SyncResult"]
