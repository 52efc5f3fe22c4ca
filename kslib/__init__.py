"""kslib: how Kubernetes Services really move packets, as executable courseware."""
from .api import InternalError, ManifestError, ValidationError, dump, load
from .cluster import MODES, Cluster
from .controllers.cloud import CloudProvider, IPAddressPool, MetalLB
from .traffic import Clients, Traffic, clients
from . import churn, lab, scale         # noqa: E402  kslib.lab.KernelCluster, kslib.scale.sweep

__version__ = "0.1.0"


def require_version(minimum: str) -> None:
    """Lessons call this first, so a lesson newer than the installed library fails clearly."""
    have = tuple(int(x) for x in __version__.split("."))
    want = tuple(int(x) for x in minimum.split("."))
    if have < want:
        raise RuntimeError(f"this lesson needs kslib >= {minimum}, but kslib {__version__} is installed: "
                           "run `make lab` again (or `pip install -e .`) to update it")


__all__ = ["Clients", "CloudProvider", "Cluster", "IPAddressPool", "MetalLB", "InternalError", "MODES",
           "ManifestError", "ValidationError", "__version__", "dump",
           "churn", "lab", "load", "require_version", "scale", "Traffic", "clients"]
