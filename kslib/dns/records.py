"""CoreDNS's ``kubernetes`` plugin: the records it serves for the cluster zone, read from the
cluster's Services, EndpointSlices and Pods (coredns plugin/kubernetes/{parse,kubernetes,
handler,reverse}.go and plugin/backend_lookup.go, v1.14; kubernetes/dns docs/specification.md).

A name under the zone parses from the right as ``[endpoint | _port._proto].<svc>.<ns>.svc.<zone>``
or ``<a-b-c-d>.<ns>.pod.<zone>``; what each part finds:

- ClusterIP Service: A/AAAA for its ClusterIPs, whatever its endpoints.
- headless Service: one A/AAAA per ready endpoint address ("ready" true or unset, exactly the
  EndpointSlice field: ``publishNotReadyAddresses`` is how not-ready Pods get in); no ready
  address is NXDOMAIN. ``<hostname>.<svc>...`` answers one endpoint, its label being the
  endpoint's ``hostname`` (StatefulSet Pods, hostname+subdomain Pods) else its dashed IP. The
  endpoint form works under ClusterIP Services too, and it captures relative names: with the
  search list, ``cart.billing`` can become endpoint ``cart`` of Service ``billing``.
- SRV ``_<port>._<proto>.<svc>...``: priority 0, weight floor(100/N) over the N candidates, the
  port and a target under the Service (ClusterIP: the Service name and ``port``; headless: each
  ready endpoint's name and resolved port), the targets' addresses in the additional section.
  A bare ``<svc>`` SRV query matches every port, named or not.
- ExternalName: a CNAME to ``spec.externalName``; A/AAAA queries also carry the target's
  records (looked up through the upstream, or inside the zone). Endpoint or port labels under
  it: NXDOMAIN; SRV: NODATA.
- Pods (``pods`` setting): disabled, NXDOMAIN; insecure (kubeadm), any IP-shaped name in an
  existing namespace; verified, only a Pod with that IP in that namespace.
- PTR (in-addr.arpa / ip6.arpa): a ClusterIP gives its Service's name, a ready endpoint address
  its endpoint name; anything else falls through to the upstream (kubeadm's ``fallthrough``).

NXDOMAIN (SOA in the authority section): an unknown namespace or Service, a headless Service
with no ready endpoint, an unknown endpoint/port, a label where ``svc``/``pod`` belongs, a name
with too many labels. NODATA (NOERROR, no answer, SOA): the apex, ``svc.<zone>``, ``pod.<zone>``,
``<ns>.svc.<zone>`` of an existing namespace, and a type a name that exists does not have.

kslib has no Namespace objects: a namespace exists when it is one every cluster starts with
(default, kube-system, kube-public, kube-node-lease) or when an object lives in it.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import math
from dataclasses import dataclass

from ..api.endpointslice import SERVICE_NAME_LABEL
from ..api.server import EPOCH
from . import names
from .message import NOERROR, NXDOMAIN, Answer, Record

POD_MODES = ("disabled", "insecure", "verified")
SCHEMA_VERSION = "1.1.0"          # kubernetes.go DNSSchemaVersion, served as TXT dns-version.<zone>
SCHEMA_TTL = 28800
INITIAL_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
REVERSE_ZONES = ("in-addr.arpa.", "ip6.arpa.")
MAX_CNAME_LINKS = 7               # backend_lookup.go A(): a chain longer than this is not followed
NO_PORTS = [(-1, "", "")]         # object/{service,endpoint}.go: the sentinel port of a port-less object


@dataclass(frozen=True)
class Backend:
    """What the plugin finds for a name before it becomes records (CoreDNS's msg.Service)."""
    host: str        # an IP, or a name (an ExternalName's target)
    port: int        # -1: no port (a headless Service or slice without ports)
    owner: str       # the name the record lives at: the Service's, or an endpoint's


@dataclass(frozen=True)
class Request:
    """A name under the zone, split as parse.go parseRequest does (empty string: not given)."""
    kind: str = ""          # "svc" | "pod" | "" for the apex, svc.<zone> and pod.<zone>
    namespace: str = ""
    service: str = ""       # the Service name, or the dashed IP of a pod name
    endpoint: str = ""
    port: str = ""
    protocol: str = ""


def parse(name: str, zone: str) -> Request | None:
    """Split ``name`` (under ``zone``); None for a name the plugin calls invalid (NXDOMAIN):
    a label that is neither svc nor pod where one belongs, or too many labels."""
    base = name[:-len(zone)].rstrip(".") if name != zone else ""
    if base in ("", "svc", "pod"):
        return Request()
    segs = base.split(".")
    kind = segs.pop()
    if kind not in ("svc", "pod"):
        return None
    namespace = segs.pop() if segs else ""
    service = segs.pop() if segs else ""
    if len(segs) == 1:
        return Request(kind, namespace, service, endpoint=segs[0])
    if len(segs) == 2:          # _port._proto; the underscores are optional
        return Request(kind, namespace, service, port=segs[0].removeprefix("_"), protocol=segs[1].removeprefix("_"))
    if len(segs) > 2:
        return None
    return Request(kind, namespace, service)


def _matches(want_port: str, port: str, want_proto: str, proto: str) -> bool:
    """kubernetes.go matchPortAndProtocol: an empty wanted value matches anything; case-insensitive."""
    return (not want_port or want_port == port.lower()) and (not want_proto or want_proto == proto.lower())


class Kubernetes:
    """The plugin for one cluster: ``serve(qname, qtype, lookup)`` answers names in the zone,
    ``reverse(qname)`` PTR names. ``lookup(name, qtype)`` resolves an ExternalName target outside
    the zone (CoreDNS asks its own server, i.e. the upstream)."""

    def __init__(self, api, zone: str, ns_ip: str, pods: str, ttl: int):
        self.api, self.zone, self.ns_ip = api, names.fqdn(zone), ns_ip
        self.pods, self.ttl = pods, ttl
        self._modified = {"Service": 0.0, "EndpointSlice": 0.0, "Pod": 0.0}
        api.watch(self._observe)

    # ---- the SOA serial: when the watched objects last changed (controller.go Modified) -----------
    def _observe(self, event) -> None:
        if event.kind in self._modified:
            self._modified[event.kind] = self.api.clock

    @property
    def serial(self) -> int:
        kinds = ("Service", "EndpointSlice", "Pod") if self.pods == "verified" else ("Service", "EndpointSlice")
        last = max(self._modified[k] for k in kinds)       # Pods are watched only in verified mode
        return int((EPOCH + dt.timedelta(seconds=last)).timestamp())

    def soa(self, zone: str) -> Record:
        """backend_lookup.go SOA: its own TTL is min(ttl, 300), its minimum the plugin ttl."""
        return Record(zone, "SOA", min(self.ttl, 300),
                      f"ns.dns.{zone} hostmaster.{zone} {self.serial} 7200 1800 86400 {self.ttl}")

    # ---- finding backends ------------------------------------------------------------------------------
    def namespaces(self) -> set[str]:
        found = {getattr(o, "namespace", "") for objs in self.api.objects.values() for o in objs.values()}
        return (found - {""}) | set(INITIAL_NAMESPACES)

    def records(self, name: str) -> list[Backend] | None:
        """kubernetes.go Records: the backends of a name, [] when it exists without any (NODATA),
        None when it does not exist (NXDOMAIN)."""
        r = parse(name, self.zone)
        if r is None:
            return None
        if not r.kind:
            return []
        if r.namespace not in self.namespaces():
            return None
        return self._pods(r) if r.kind == "pod" else self._services(r)

    def _pods(self, r: Request) -> list[Backend] | None:
        if self.pods == "disabled":
            return None
        if not r.service:
            return []
        label = r.service            # a-b-c-d, or an IPv6 address with '-' for ':'
        text = label.replace("-", ".") if label.count("-") == 3 and "--" not in label else label.replace("-", ":")
        if not names.is_ip(text):
            return None
        ip = str(ipaddress.ip_address(text))
        owner = f"{label}.{r.namespace}.pod.{self.zone}"
        if self.pods == "insecure":           # no Pod check at all
            return [Backend(ip, 0, owner)]
        found = [Backend(ip, 0, owner) for p in self.api.list("Pod", r.namespace)
                 if p.pod_ip == ip and p.phase not in ("Succeeded", "Failed")]
        return found or None

    def _services(self, r: Request) -> list[Backend] | None:
        if not r.service:
            return []
        svc = self.api.get("Service", f"{r.namespace}/{r.service}")
        if svc is None:
            return None
        owner = f"{svc.name}.{svc.namespace}.svc.{self.zone}"
        if svc.type == "ExternalName":
            # no endpoints nor ports under it; an IP as externalName is not a CNAME and is skipped
            if r.endpoint or r.port or r.protocol or names.is_ip(svc.external_name):
                return None
            return [Backend(svc.external_name, 0, owner)]
        found, out = False, []
        if (svc.cluster_ips or [svc.cluster_ip])[0] == "None" or r.endpoint:
            for s in sorted(self.api.list("EndpointSlice", svc.namespace), key=lambda s: s.name):
                if s.metadata.labels.get(SERVICE_NAME_LABEL) != svc.name:
                    continue
                ports = [(-1 if p.port is None else p.port, p.name or "", p.protocol or "") for p in s.ports] \
                    or NO_PORTS
                for ep in s.endpoints:
                    if not ep.conditions.is_ready:    # endpointsliceReady: true or nil
                        continue
                    for ip in filter(names.is_ip, ep.addresses):
                        host = ep.hostname or names.dashed(ip)
                        if r.endpoint and r.endpoint != host.lower():
                            continue
                        for port, pname, proto in ports:
                            if _matches(r.port, pname, r.protocol, proto):
                                found = True
                                out.append(Backend(ip, port, f"{host}.{owner}"))
            return out if found else None
        for port, pname, proto in [(p.port, p.name, p.protocol) for p in svc.ports] or NO_PORTS:
            if _matches(r.port, pname, r.protocol, proto):
                found = True
                out += [Backend(ip, port, owner) for ip in (svc.cluster_ips or [svc.cluster_ip])]
        return out if found else None

    def backends(self, name: str, qtype: str) -> list[Backend] | None:
        """kubernetes.go Services: Records, except ``ns.dns.<zone>`` (the DNS server's own name)
        and SRV, which leaves out ExternalName CNAMEs."""
        if name == f"ns.dns.{self.zone}":
            return [Backend(self.ns_ip, 0, name)] if qtype == names.address_type(self.ns_ip) else []
        found = self.records(name)
        if qtype == "SRV" and found:
            found = [b for b in found if names.is_ip(b.host)]
        return found

    # ---- answering ------------------------------------------------------------------------------------
    def serve(self, qname: str, qtype: str, lookup) -> Answer:
        """handler.go ServeDNS for a name in the zone."""
        extra: list[Record] = []
        if qtype in ("A", "AAAA"):
            records = self._addresses(qname, qtype, lookup, [])
        elif qtype == "SRV":
            records, extra = self._srv(qname)
        elif qtype == "CNAME":
            found = self.backends(qname, qtype)
            records = None if found is None else [
                Record(qname, "CNAME", self.ttl, names.fqdn(b.host)) for b in found[:1] if not names.is_ip(b.host)]
        elif qtype == "TXT":
            records = self._txt(qname)
        elif qtype == "SOA":
            records = [self.soa(self.zone)]
        elif qtype == "NS" and qname == self.zone:
            records = [Record(qname, "NS", self.ttl, f"ns.dns.{self.zone}")]
            extra = [Record(f"ns.dns.{self.zone}", names.address_type(self.ns_ip), self.ttl, self.ns_ip)]
        elif qtype == "NS":
            records = []      # the fake A lookup finds the NS addresses for any name: never NXDOMAIN
        else:
            # PTR outside the reverse zones, MX, ...: a fake lookup tells NXDOMAIN from NODATA
            found = self.records(qname) if qtype == "PTR" else self.backends(qname, qtype)
            records = None if found is None else []
        if records is None:
            return Answer(qname, qtype, NXDOMAIN, authority=[self.soa(self.zone)])
        if not records:
            return Answer(qname, qtype, NOERROR, authority=[self.soa(self.zone)])
        return Answer(qname, qtype, NOERROR, records, additional=extra)

    def _addresses(self, qname: str, qtype: str, lookup, previous: list[Record]) -> list[Record] | None:
        """backend_lookup.go A/AAAA: addresses of that family, deduplicated; a CNAME is followed
        inside the zone or through ``lookup``, and appended with what that finds."""
        found = self.backends(qname, qtype)
        if found is None:
            return None
        out, seen = [], set()
        for b in found:
            if not names.is_ip(b.host):
                target = names.fqdn(b.host)
                cname = Record(qname, "CNAME", self.ttl, target)
                if target == qname or len(previous) > MAX_CNAME_LINKS or cname in previous:
                    continue
                if names.in_zone(target, self.zone):
                    more = self._addresses(target, qtype, lookup, previous + [cname])
                    out += [cname] + more if more else []
                else:
                    out += [cname] + lookup(target, qtype).answer
            elif names.address_type(b.host) == qtype and b.host not in seen:
                seen.add(b.host)
                out.append(Record(qname, qtype, self.ttl, b.host))
        return out

    def _srv(self, qname: str) -> tuple[list[Record] | None, list[Record]]:
        """backend_lookup.go SRV: every candidate weighs 100 at priority 0, so each record gets
        floor(100/N) (at least 1), N counting every candidate, even duplicates and port -1 ones;
        records with the same target and port, and addresses, are kept once."""
        found = self.backends(qname, "SRV")
        if found is None:
            return None, []
        records, extra, seen = [], [], set()
        for b in found:
            if b.port == -1:
                continue
            weight = max(1, math.floor(100.0 / (100 * len(found)) * 100))     # the Go float arithmetic
            target = names.fqdn(b.owner)
            if (target, b.port) not in seen:
                seen.add((target, b.port))
                records.append(Record(qname, "SRV", self.ttl, f"0 {weight} {b.port} {target}"))
            if (target, b.host) not in seen:
                seen.add((target, b.host))
                extra.append(Record(target, names.address_type(b.host), self.ttl, b.host))
        return records, extra

    def _txt(self, qname: str) -> list[Record] | None:
        """kubernetes.go Services, TXT: only dns-version.<zone> has one; any other name that has
        records is NODATA, the rest (the apex too) NXDOMAIN."""
        if qname == f"dns-version.{self.zone}":
            return [Record(qname, "TXT", SCHEMA_TTL, f'"{SCHEMA_VERSION}"')]
        return [] if self.records(qname) else None

    def reverse(self, qname: str) -> Answer | None:
        """reverse.go: PTR for a ClusterIP, else for every ready endpoint with that address
        (a Pod behind two Services gets two); None when nothing matches (kubeadm falls through)."""
        ip = names.reverse_ip(qname)
        if ip is None:
            return None
        for svc in sorted(self.api.list("Service"), key=lambda s: s.key):
            if svc.type != "ExternalName" and ip in (svc.cluster_ips or [svc.cluster_ip]):
                return Answer(qname, "PTR", NOERROR,
                              [Record(qname, "PTR", self.ttl, f"{svc.name}.{svc.namespace}.svc.{self.zone}")])
        targets = []
        for s in sorted(self.api.list("EndpointSlice"), key=lambda s: s.key):
            service = s.metadata.labels.get(SERVICE_NAME_LABEL)
            for ep in s.endpoints:
                if service and ep.conditions.is_ready and ip in ep.addresses:
                    target = f"{ep.hostname or names.dashed(ip)}.{service}.{s.namespace}.svc.{self.zone}"
                    if target not in targets:
                        targets.append(target)
        if not targets:
            return None
        return Answer(qname, "PTR", NOERROR, [Record(qname, "PTR", self.ttl, t) for t in targets])
