"""The cluster's DNS server: CoreDNS with the Corefile kubeadm writes (k/k
cmd/kubeadm/app/phases/addons/dns/manifests.go): the ``kubernetes`` plugin for the cluster zone
and the reverse zones (falling through to the next plugin there), and ``forward`` of every other
name to the upstream resolver of the node's resolv.conf.

kslib does not create the kube-dns Service or CoreDNS Pods: they would add rules to every node's
dataplane and change every golden ruleset. Resolvers reach this object directly at the
``clusterDNS`` address the kubelet writes into pods' resolv.conf. The Corefile's ``cache 30``
(disabled for the cluster zone in recent kubeadm) and ``loadbalance`` (which shuffles the order of
A records in each reply) are not modelled: answers come in EndpointSlice order, every time.
"""
from __future__ import annotations

from collections import Counter

from ..api.errors import invalid, not_supported
from . import names
from .message import Answer
from .records import POD_MODES, REVERSE_ZONES, Kubernetes
from .upstream import Upstream

QTYPES = ("A", "AAAA", "CNAME", "SRV", "PTR", "TXT", "SOA", "NS", "MX")
DEFAULT_TTL = 30          # kubeadm's Corefile (the plugin's own default is 5)
MAX_TTL = 3600


def check_pods(pods: str, field: str = "dns_pods") -> str:
    if pods not in POD_MODES:
        raise ValueError(str(not_supported(field, pods, list(POD_MODES))))
    return pods


def check_ttl(ttl: int, field: str = "dns_ttl") -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_TTL:
        raise ValueError(str(invalid(field, ttl, f"must be between 0 and {MAX_TTL}, inclusive")))
    return ttl


class CoreDNS:
    """``query(qname, qtype)`` is one question, as ``dig @<ip> <qname> <qtype>`` asks it.
    ``pods`` and ``ttl`` are the kubernetes plugin's settings (validated when set);
    ``upstream`` is the outside DNS (add names to it); ``requests`` counts the queries
    answered, by rcode (CoreDNS's coredns_dns_responses_total)."""

    def __init__(self, api, zone: str, ip: str, pods: str = "insecure", ttl: int = DEFAULT_TTL):
        self.ip = ip
        self.upstream = Upstream()
        self.kubernetes = Kubernetes(api, zone, ip, check_pods(pods), check_ttl(ttl))
        self.requests: Counter = Counter()

    @property
    def zone(self) -> str:
        return self.kubernetes.zone

    @property
    def pods(self) -> str:
        return self.kubernetes.pods

    @pods.setter
    def pods(self, value: str) -> None:
        self.kubernetes.pods = check_pods(value, "pods")

    @property
    def ttl(self) -> int:
        return self.kubernetes.ttl

    @ttl.setter
    def ttl(self, value: int) -> None:
        self.kubernetes.ttl = check_ttl(value, "ttl")

    def query(self, qname: str, qtype: str = "A") -> Answer:
        qname = names.fqdn(names.check(qname, "qname"))
        if not isinstance(qtype, str) or qtype.upper() not in QTYPES:
            raise ValueError(str(not_supported("qtype", qtype, list(QTYPES))))
        qtype = qtype.upper()
        if names.in_zone(qname, self.zone):
            reply = self.kubernetes.serve(qname, qtype, self.upstream.query)
        elif any(names.in_zone(qname, z) for z in REVERSE_ZONES):
            reply = (self.kubernetes.reverse(qname) if qtype == "PTR" else None) or self.upstream.query(qname, qtype)
        else:
            reply = self.upstream.query(qname, qtype)
        self.requests[reply.rcode] += 1
        return reply

    def corefile(self) -> str:
        """The coredns ConfigMap's Corefile with these settings, as kubeadm renders it."""
        zone = self.zone.rstrip(".")
        return (".:53 {\n    errors\n    health {\n       lameduck 5s\n    }\n    ready\n"
                f"    kubernetes {zone} in-addr.arpa ip6.arpa {{\n       pods {self.pods}\n"
                f"       fallthrough in-addr.arpa ip6.arpa\n       ttl {self.ttl}\n    }}\n"
                "    prometheus :9153\n    forward . /etc/resolv.conf {\n       max_concurrent 1000\n    }\n"
                f"    cache 30 {{\n       disable success {zone}\n       disable denial {zone}\n    }}\n"
                "    loop\n    reload\n    loadbalance\n}\n")
