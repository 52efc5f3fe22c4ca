"""Service and ServicePort, in all five shapes (ClusterIP, NodePort, LoadBalancer, ExternalName,
headless), with the v1 API's defaulting (pkg/apis/core/v1/defaults.go SetDefaults_Service)."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from .errors import Path
from .meta import Named, ObjectMeta, Reader

DEFAULT_AFFINITY_TIMEOUT = 10800      # v1.DefaultClientIPServiceAffinitySeconds (3 hours)
SOURCE_RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"


@dataclass
class ServicePort:
    port: int = 0
    name: str = ""
    protocol: str = ""                       # defaulted to TCP
    target_port: int | str | None = None     # defaulted to port
    node_port: int = 0
    app_protocol: str | None = None

    @property
    def resolved_target(self) -> int | str:
        return self.port if self.target_port in (None, 0, "") else self.target_port

    def to_dict(self) -> dict:
        out: dict = {}
        if self.name:
            out["name"] = self.name
        out["protocol"] = self.protocol or "TCP"
        if self.app_protocol:
            out["appProtocol"] = self.app_protocol
        out["port"] = self.port
        out["targetPort"] = self.resolved_target
        if self.node_port:
            out["nodePort"] = self.node_port
        return out


@dataclass
class LoadBalancerIngress:
    ip: str = ""
    hostname: str = ""
    ip_mode: str | None = None

    def to_dict(self) -> dict:
        out = {}
        if self.ip:
            out["ip"] = self.ip
        if self.hostname:
            out["hostname"] = self.hostname
        if self.ip_mode:
            out["ipMode"] = self.ip_mode
        return out


@dataclass
class Service(Named):
    metadata: ObjectMeta
    type: str = ""
    selector: dict[str, str] | None = None
    ports: list[ServicePort] = field(default_factory=list)
    cluster_ip: str = ""
    cluster_ips: list[str] = field(default_factory=list)
    ip_families: list[str] = field(default_factory=list)
    ip_family_policy: str | None = None
    external_name: str = ""
    external_ips: list[str] = field(default_factory=list)
    session_affinity: str = ""
    affinity_config: dict | None = None      # spec.sessionAffinityConfig as given
    external_traffic_policy: str = ""
    internal_traffic_policy: str | None = None
    health_check_node_port: int = 0
    load_balancer_ip: str = ""
    load_balancer_source_ranges: list[str] = field(default_factory=list)
    load_balancer_class: str | None = None
    allocate_load_balancer_node_ports: bool | None = None
    publish_not_ready_addresses: bool = False
    traffic_distribution: str | None = None
    ingress: list[LoadBalancerIngress] = field(default_factory=list)   # status.loadBalancer.ingress

    kind = "Service"

    # ---- identity and derived facts -------------------------------------------------------
    @property
    def headless(self) -> bool:
        return self.cluster_ip == "None"

    @property
    def affinity_timeout(self) -> int | None:
        """sessionAffinityConfig.clientIP.timeoutSeconds, when ClientIP affinity is on."""
        if self.session_affinity != "ClientIP" or not isinstance(self.affinity_config, dict):
            return None
        return (self.affinity_config.get("clientIP") or {}).get("timeoutSeconds")

    @property
    def externally_accessible(self) -> bool:
        # pkg/api/service/util.go ExternallyAccessible
        return self.type in ("NodePort", "LoadBalancer") or (self.type == "ClusterIP" and bool(self.external_ips))

    @property
    def needs_health_check(self) -> bool:
        # pkg/api/service/util.go NeedsHealthCheck: LoadBalancer with externalTrafficPolicy Local
        return self.type == "LoadBalancer" and self.external_traffic_policy == "Local"

    @property
    def source_ranges(self) -> list[str]:
        """spec.loadBalancerSourceRanges, or the annotation when the field is empty."""
        if self.load_balancer_source_ranges:
            return [r.strip() for r in self.load_balancer_source_ranges]
        ann = self.metadata.annotations.get(SOURCE_RANGES_ANNOTATION, "")
        return [r.strip() for r in ann.split(",") if r.strip()]

    @property
    def shape(self) -> str:
        """One of the five shapes a learner names: ClusterIP, NodePort, LoadBalancer, ExternalName, headless."""
        return "headless" if self.headless and self.type == "ClusterIP" else self.type

    # ---- defaulting ---------------------------------------------------------------------
    def apply_defaults(self) -> None:
        """SetDefaults_Service, v1 (pkg/apis/core/v1/defaults.go)."""
        if not self.session_affinity:
            self.session_affinity = "None"
        if self.session_affinity == "None":
            self.affinity_config = None
        if not self.type:
            self.type = "ClusterIP"
        for p in self.ports:
            if not p.protocol:
                p.protocol = "TCP"
            if p.target_port in (None, 0, ""):
                p.target_port = p.port
        if self.session_affinity == "ClientIP":
            cfg = self.affinity_config if isinstance(self.affinity_config, dict) else None
            client = (cfg or {}).get("clientIP") if cfg else None
            if not isinstance(client, dict) or client.get("timeoutSeconds") is None:
                self.affinity_config = {"clientIP": {"timeoutSeconds": DEFAULT_AFFINITY_TIMEOUT}}
        if self.externally_accessible and not self.external_traffic_policy:
            self.external_traffic_policy = "Cluster"
        if self.internal_traffic_policy is None and self.type in ("ClusterIP", "NodePort", "LoadBalancer"):
            self.internal_traffic_policy = "Cluster"
        if self.type == "LoadBalancer" and self.allocate_load_balancer_node_ports is None:
            self.allocate_load_balancer_node_ports = True
        if self.type == "LoadBalancer":
            for ing in self.ingress:
                if ing.ip and ing.ip_mode is None:
                    ing.ip_mode = "VIP"

    # ---- manifests ----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict) -> "Service":
        md = d.get("metadata") if isinstance(d.get("metadata"), dict) else {}
        r = Reader("Service", md.get("name", ""))
        meta = ObjectMeta.read(r, d)
        spec = r.obj(d, "spec", Path(""))
        sp = Path("spec")
        ports = []
        for pp, p in r.objects(spec, "ports", sp):
            ports.append(ServicePort(
                port=r.get(p, "port", int, pp, 0),
                name=r.get(p, "name", str, pp, ""),
                protocol=r.get(p, "protocol", str, pp, ""),
                target_port=r.get(p, "targetPort", (int, str), pp, None),
                node_port=r.get(p, "nodePort", int, pp, 0),
                app_protocol=r.get(p, "appProtocol", str, pp, None),
            ))
        lb = Path("status.loadBalancer")
        status = r.obj(r.obj(d, "status", Path("")), "loadBalancer", Path("status"))
        ingress = [LoadBalancerIngress(ip=r.get(i, "ip", str, ip, ""), hostname=r.get(i, "hostname", str, ip, ""),
                                       ip_mode=r.get(i, "ipMode", str, ip, None))
                   for ip, i in r.objects(status, "ingress", lb)]
        affinity = r.get(spec, "sessionAffinityConfig", dict, sp, None)
        if affinity is not None:
            client = r.get(affinity, "clientIP", dict, sp.child("sessionAffinityConfig"))
            if client is not None:
                r.get(client, "timeoutSeconds", int, sp.child("sessionAffinityConfig", "clientIP"))
        svc = cls(
            metadata=meta,
            type=r.get(spec, "type", str, sp, ""),
            # an empty selector is stored as none (the map is omitempty): no controller manages
            # endpoints for it, it does not select every pod (kubernetes/kubernetes#25837)
            selector=r.strmap(spec, "selector", sp) or None,
            ports=ports,
            cluster_ip=r.get(spec, "clusterIP", str, sp, ""),
            cluster_ips=r.strs(spec, "clusterIPs", sp),
            ip_families=r.strs(spec, "ipFamilies", sp),
            ip_family_policy=r.get(spec, "ipFamilyPolicy", str, sp, None),
            external_name=r.get(spec, "externalName", str, sp, ""),
            external_ips=r.strs(spec, "externalIPs", sp),
            session_affinity=r.get(spec, "sessionAffinity", str, sp, ""),
            affinity_config=affinity,
            external_traffic_policy=r.get(spec, "externalTrafficPolicy", str, sp, ""),
            internal_traffic_policy=r.get(spec, "internalTrafficPolicy", str, sp, None),
            health_check_node_port=r.get(spec, "healthCheckNodePort", int, sp, 0),
            load_balancer_ip=r.get(spec, "loadBalancerIP", str, sp, ""),
            load_balancer_source_ranges=r.strs(spec, "loadBalancerSourceRanges", sp),
            load_balancer_class=r.get(spec, "loadBalancerClass", str, sp, None),
            allocate_load_balancer_node_ports=r.get(spec, "allocateLoadBalancerNodePorts", bool, sp, None),
            publish_not_ready_addresses=r.get(spec, "publishNotReadyAddresses", bool, sp, False),
            traffic_distribution=r.get(spec, "trafficDistribution", str, sp, None),
            ingress=ingress,
        )
        r.done()
        return svc

    def to_dict(self) -> dict:
        spec: dict = {}
        if self.type != "ExternalName":
            spec["clusterIP"] = self.cluster_ip
            spec["clusterIPs"] = list(self.cluster_ips)
        if self.ip_families:
            spec["ipFamilies"] = list(self.ip_families)
        if self.ip_family_policy:
            spec["ipFamilyPolicy"] = self.ip_family_policy
        if self.external_name:
            spec["externalName"] = self.external_name
        if self.external_ips:
            spec["externalIPs"] = list(self.external_ips)
        if self.ports:
            spec["ports"] = [p.to_dict() for p in self.ports]
        if self.selector is not None:
            spec["selector"] = dict(self.selector)
        spec["sessionAffinity"] = self.session_affinity
        if self.affinity_config is not None:
            spec["sessionAffinityConfig"] = copy.deepcopy(self.affinity_config)
        spec["type"] = self.type
        if self.external_traffic_policy:
            spec["externalTrafficPolicy"] = self.external_traffic_policy
        if self.internal_traffic_policy:
            spec["internalTrafficPolicy"] = self.internal_traffic_policy
        if self.health_check_node_port:
            spec["healthCheckNodePort"] = self.health_check_node_port
        if self.load_balancer_ip:
            spec["loadBalancerIP"] = self.load_balancer_ip
        if self.load_balancer_source_ranges:
            spec["loadBalancerSourceRanges"] = list(self.load_balancer_source_ranges)
        if self.load_balancer_class:
            spec["loadBalancerClass"] = self.load_balancer_class
        if self.allocate_load_balancer_node_ports is not None:
            spec["allocateLoadBalancerNodePorts"] = self.allocate_load_balancer_node_ports
        if self.publish_not_ready_addresses:
            spec["publishNotReadyAddresses"] = True
        if self.traffic_distribution:
            spec["trafficDistribution"] = self.traffic_distribution
        lb = {"ingress": [i.to_dict() for i in self.ingress]} if self.ingress else {}
        return {"apiVersion": "v1", "kind": "Service", "metadata": self.metadata.to_dict(),
                "spec": spec, "status": {"loadBalancer": lb}}
