"""The resolv.conf a Pod gets: the kubelet builds it from the Pod's ``dnsPolicy`` and ``dnsConfig``,
the cluster's DNS address and domain, and the node's own resolv.conf (k/k
pkg/kubelet/network/dns/dns.go GetPodDNS); the container runtime writes it as containerd's
parseDNSOptions does: search, nameserver, options lines.

- ClusterFirst (the default): ``nameserver <clusterDNS>``, ``search <ns>.svc.<domain> svc.<domain>
  <domain>`` + the node's search list (duplicates dropped), ``options ndots:5`` (the node's options
  are not kept). A hostNetwork Pod with ClusterFirst falls back to Default.
- ClusterFirstWithHostNet: ClusterFirst, for hostNetwork Pods too.
- Default: the node's resolv.conf as it is.
- None: nothing but the Pod's dnsConfig.
Then ``dnsConfig`` is appended: nameservers and searches with duplicates dropped, options merged
by name (the Pod's value wins). Last, the limits: 3 nameservers, 32 search domains, none longer
than 253 characters, a search line of at most 2048 characters; what is cut is reported in the
kubelet's DNSConfigForming warning, kept in ``ResolvConf.warnings``.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..api.errors import Path, invalid, required
from . import names

MAX_NAMESERVERS = 3           # validation.go MaxDNSNameservers
MAX_SEARCH_PATHS = 32         # MaxDNSSearchPathsExpanded
MAX_SEARCH_CHARS = 2048       # MaxDNSSearchListCharsExpanded
DEFAULT_OPTIONS = ("ndots:5",)
POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
MAX_NDOTS = 15                # glibc RES_MAXNDOTS; musl caps ndots at 15 as well


def _option_name(option: str) -> str:
    return option.split(":", 1)[0]


def _check_options(options, field: str) -> tuple[str, ...]:
    for option in options:
        if _option_name(option) == "ndots" and not option.partition(":")[2].isdigit():
            raise ValueError(str(invalid(field, option, "ndots needs a non-negative number, as in ndots:5")))
    return tuple(options)


def _dedupe(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


@dataclass(frozen=True)
class ResolvConf:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()     # the kubelet's DNSConfigForming events for this file
    policy: str = ""                   # the dnsPolicy the kubelet applied ("" for a node's own file)

    @classmethod
    def parse(cls, text: str, field: str = "node_resolv_conf") -> "ResolvConf":
        """A resolv.conf file read as the kubelet reads the node's (parseResolvConf): nameserver
        lines add up, the last search line and the last options line win, '#' starts a comment."""
        if not isinstance(text, str):
            raise ValueError(str(invalid(field, text, "must be the text of a resolv.conf file")))
        nameservers, searches, options = [], [], []
        for n, line in enumerate(text.splitlines(), 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            where = f"{field} line {n}"
            if fields[0] == "nameserver":
                if len(fields) < 2 or not names.is_ip(fields[1]):
                    raise ValueError(str(invalid(where, line, "a nameserver line needs an IP address")))
                nameservers.append(fields[1])
            elif fields[0] == "search":
                searches = [names.check(s.removesuffix("."), where) for s in fields[1:]]
            elif fields[0] == "options":
                options = list(_check_options(fields[1:], where))
        return cls(tuple(nameservers), tuple(searches), tuple(options))

    @property
    def ndots(self) -> int:
        """The resolver's ndots: the last ndots option, 1 without one, at most 15."""
        values = [int(o.partition(":")[2]) for o in self.options if _option_name(o) == "ndots"]
        return min(values[-1], MAX_NDOTS) if values else 1

    def has_option(self, name: str) -> bool:
        return any(_option_name(o) == name for o in self.options)

    def text(self) -> str:
        """The file as the Pod sees it (``cat /etc/resolv.conf``)."""
        lines = []
        if self.searches:
            lines.append("search " + " ".join(self.searches))
        lines += [f"nameserver {ns}" for ns in self.nameservers]
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "".join(line + "\n" for line in lines)


def _pod_dns_config(config) -> tuple[tuple[str, ...], tuple[str, ...], list[tuple[str, str]]]:
    """spec.dnsConfig: nameservers, searches, and options as (name, value) ("" without a value)."""
    p = Path("spec.dnsConfig")
    if not isinstance(config, dict):
        raise ValueError(str(invalid(p, config, "must be an object with nameservers, searches and options")))

    def strings(key):
        items = config.get(key) or []
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise ValueError(str(invalid(p.child(key), items, "must be a list of strings")))
        return items

    nameservers = strings("nameservers")
    for i, ns in enumerate(nameservers):
        if not names.is_ip(ns):
            raise ValueError(str(invalid(p.child("nameservers").index(i), ns, "must be a valid IP address")))
    searches = tuple(names.check(s.removesuffix("."), str(p.child("searches").index(i)))
                     for i, s in enumerate(strings("searches")))
    options = []
    for i, o in enumerate(config.get("options") or []):
        op = p.child("options").index(i)
        if not isinstance(o, dict) or not isinstance(o.get("name"), str) or not o.get("name"):
            raise ValueError(str(required(op.child("name"), 'an option needs a name: {name: ndots, value: "2"}')))
        value = o.get("value")
        if value is not None and not isinstance(value, str):
            raise ValueError(str(invalid(op.child("value"), value, "must be a string (quote numbers: \"2\")")))
        _check_options([f"{o['name']}:{value}" if value else o["name"]], str(op))
        options.append((o["name"], value or ""))
    return tuple(nameservers), searches, options


def _merge_options(existing, given: list[tuple[str, str]]) -> tuple[str, ...]:
    """dns.go mergeDNSOptions: by name, the Pod's value wins. (The kubelet rebuilds the list from
    a Go map, in no fixed order; kslib keeps the order in which names first appear.)"""
    merged = {}
    for option in existing:
        name, _, value = option.partition(":")
        merged[name] = value
    merged.update(given)
    return tuple(f"{n}:{v}" if v else n for n, v in merged.items())


def _fit_limits(conf: ResolvConf) -> ResolvConf:
    """dns.go formDNSConfigFitsLimits, with its warning texts."""
    warnings = []
    nameservers = conf.nameservers
    if len(nameservers) > MAX_NAMESERVERS:
        nameservers = nameservers[:MAX_NAMESERVERS]
        warnings.append("Nameserver limits were exceeded, some nameservers have been omitted, "
                        "the applied nameserver line is: " + " ".join(nameservers))
    # (the kubelet also drops domains longer than 253 characters; kslib refuses those on input)
    cut = len(conf.searches) > MAX_SEARCH_PATHS
    searches = list(conf.searches[:MAX_SEARCH_PATHS])
    while len(" ".join(searches)) > MAX_SEARCH_CHARS:      # drop from the end until the line fits
        searches.pop()
        cut = True
    if cut:
        warnings.append("Search Line limits were exceeded, some search paths have been omitted, "
                        "the applied search line is: " + " ".join(searches))
    return ResolvConf(nameservers, tuple(searches), conf.options, conf.warnings + tuple(warnings), conf.policy)


@dataclass(frozen=True)
class KubeletDNS:
    """The kubelet's DNS settings: ``clusterDomain``, ``clusterDNS`` and the node's resolv.conf
    (``--resolv-conf``)."""
    cluster_domain: str
    cluster_dns: str
    host: ResolvConf

    def for_pod(self, pod) -> ResolvConf:
        policy = pod.dns_policy
        if policy == "ClusterFirst" and pod.host_network:
            policy = "Default"                    # getPodDNSType: hostNetwork falls back
        if policy == "None":
            conf = ResolvConf()
        elif policy == "Default":
            conf = self.host
        else:
            d = self.cluster_domain
            conf = ResolvConf((self.cluster_dns,), _dedupe((f"{pod.namespace}.svc.{d}", f"svc.{d}", d)
                                                           + self.host.searches), DEFAULT_OPTIONS)
        if pod.dns_config:
            nameservers, searches, options = _pod_dns_config(pod.dns_config)
            conf = ResolvConf(_dedupe(conf.nameservers + nameservers), _dedupe(conf.searches + searches),
                              _merge_options(conf.options, options))
        applied = policy if policy == pod.dns_policy else f"{policy} (a hostNetwork Pod with ClusterFirst)"
        return _fit_limits(ResolvConf(conf.nameservers, conf.searches, conf.options, policy=applied))
