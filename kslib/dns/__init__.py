"""Cluster DNS: CoreDNS's kubernetes plugin and its upstream (``server``, ``records``,
``upstream``), the resolv.conf the kubelet gives each Pod (``resolvconf``), and the stub resolver
walking it (``resolver``). ``Cluster.dns`` is the server, ``Cluster.resolve`` a Pod's lookup."""
from .message import NOERROR, NXDOMAIN, SRV, Answer, Record
from .records import POD_MODES
from .resolvconf import POLICIES, KubeletDNS, ResolvConf
from .resolver import LIBCS, Query, Resolution, resolve
from .server import QTYPES, CoreDNS
from .upstream import Upstream

__all__ = ["Answer", "CoreDNS", "KubeletDNS", "LIBCS", "NOERROR", "NXDOMAIN", "POD_MODES", "POLICIES", "QTYPES",
           "Query", "Record", "Resolution", "ResolvConf", "SRV", "Upstream", "resolve"]
