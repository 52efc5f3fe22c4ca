"""The API server's validation, rule for rule, in the order pkg/apis/core/validation/validation.go
checks them (ValidateService and its helpers), so a multi-error message lists errors as
``kubectl apply`` shows them."""
from __future__ import annotations

import ipaddress

from . import names
from .endpointslice import EndpointSlice
from .errors import (FieldError, Path, duplicate, forbidden, invalid, not_supported, required)
from .meta import ObjectMeta
from .node import Node
from .pod import Pod
from .service import SOURCE_RANGES_ANNOTATION, Service

MAX_AFFINITY_TIMEOUT = 86400          # core.MaxClientIPServiceAffinitySeconds
TOPOLOGY_MODE = "service.kubernetes.io/topology-mode"
TOPOLOGY_HINTS = "service.kubernetes.io/topology-aware-hints"   # the deprecated spelling
PROTOCOLS = ["SCTP", "TCP", "UDP"]
SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
TRAFFIC_DISTRIBUTIONS = ["PreferClose", "PreferSameNode", "PreferSameZone"]


class GoStruct:
    """A bad value that the API server prints with %#v (a Go struct literal)."""

    def __init__(self, text: str):
        self.text = text

    def __str__(self) -> str:
        return self.text


def _service_port_key(protocol: str, port: int) -> GoStruct:
    # Duplicate (protocol, port) pairs are reported with the whole core.ServicePort key.
    return GoStruct(f'core.ServicePort{{Name:"", Protocol:"{protocol}", AppProtocol:(*string)(nil), '
                    f'Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:""}}, NodePort:0}}')


# ---- metadata -----------------------------------------------------------------------------
def validate_labels(labels: dict[str, str], path: Path) -> list[FieldError]:
    """unversionedvalidation.ValidateLabels: keys are qualified names, values label values."""
    errs = []
    for k, v in labels.items():
        errs += [invalid(path, k, m) for m in names.is_qualified_name(k)]
        errs += [invalid(path, v, m) for m in names.is_valid_label_value(v)]
    return errs


def validate_meta(meta: ObjectMeta, name_check, namespaced: bool = True) -> list[FieldError]:
    """ValidateObjectMeta: a name (or generateName), a valid namespace, labels, annotation keys."""
    p = Path("metadata")
    errs = []
    if not meta.name and not meta.generate_name:
        errs.append(required(p.child("name"), "name or generateName is required"))
    elif meta.name:
        errs += [invalid(p.child("name"), meta.name, m) for m in name_check(meta.name)]
    if namespaced:
        errs += [invalid(p.child("namespace"), meta.namespace, m) for m in names.is_dns1123_label(meta.namespace)]
    errs += validate_labels(meta.labels, p.child("labels"))
    for k in meta.annotations:
        errs += [invalid(p.child("annotations"), k, m) for m in names.is_qualified_name(k.lower())]
    for ref in meta.owner_references:
        # validateOwnerReference (apimachinery/pkg/api/validation/objectmeta.go); the path has no index
        op = p.child("ownerReferences")
        for key, what in (("apiVersion", "version"), ("kind", "kind"), ("name", "name"), ("uid", "uid")):
            if not ref.get(key):
                errs.append(invalid(op.child(key), ref.get(key) or "", f"{what} must not be empty"))
    return errs


# ---- Service --------------------------------------------------------------------------------
def _validate_service_port(sp, require_name: bool, seen: set[str], path: Path) -> list[FieldError]:
    errs = []
    if require_name and not sp.name:
        errs.append(required(path.child("name"), ""))
    elif sp.name:
        errs += [invalid(path.child("name"), sp.name, m) for m in names.is_dns1123_label(sp.name)]
        if sp.name in seen:
            errs.append(duplicate(path.child("name"), sp.name))
        seen.add(sp.name)
    errs += [invalid(path.child("port"), sp.port, m) for m in names.is_valid_port_num(sp.port)]
    if not sp.protocol:
        errs.append(required(path.child("protocol"), ""))
    elif sp.protocol not in PROTOCOLS:
        errs.append(not_supported(path.child("protocol"), sp.protocol, PROTOCOLS))
    tp = sp.target_port
    if isinstance(tp, int):
        errs += [invalid(path.child("targetPort"), tp, m) for m in names.is_valid_port_num(tp)]
    elif isinstance(tp, str):
        errs += [invalid(path.child("targetPort"), tp, m) for m in names.is_valid_port_name(tp)]
    if sp.app_protocol is not None:
        errs += [invalid(path.child("appProtocol"), sp.app_protocol, m)
                 for m in names.is_qualified_name(sp.app_protocol)]
    return errs


def _validate_affinity(svc: Service, path: Path) -> list[FieldError]:
    # validateClientIPAffinityConfig / validateAffinityTimeout
    why = "when session affinity type is ClientIP"
    cfg = svc.affinity_config
    if not isinstance(cfg, dict):
        return [required(path, why)]
    client = cfg.get("clientIP")
    if not isinstance(client, dict):
        return [required(path.child("clientIP"), why)]
    t = client.get("timeoutSeconds")
    tp = path.child("clientIP", "timeoutSeconds")
    if t is None:
        return [required(tp, why)]
    if not isinstance(t, int) or isinstance(t, bool):
        return [invalid(tp, t, "must be an integer")]
    # The check is `<= 0 || > 86400`: 86400 itself is accepted despite the wording.
    if t <= 0 or t > MAX_AFFINITY_TIMEOUT:
        return [invalid(tp, t, f"must be greater than 0 and less than {MAX_AFFINITY_TIMEOUT}")]
    return []


def validate_cluster_ips(svc: Service) -> list[FieldError]:
    # ValidateServiceClusterIPsRelatedFields (single-stack IPv4 clusters)
    if svc.type == "ExternalName":
        return []
    sp = Path("spec")
    ips_path = sp.child("clusterIPs")
    errs = []
    if svc.cluster_ip:
        if not svc.cluster_ips:
            errs.append(required(ips_path, ""))
        elif svc.cluster_ips[0] != svc.cluster_ip:
            errs.append(invalid(ips_path, svc.cluster_ips, "first value must match `clusterIP`"))
    elif svc.cluster_ips:
        errs.append(invalid(ips_path, svc.cluster_ips, "must be empty when `clusterIP` is not specified"))
    seen = set()
    for i, fam in enumerate(svc.ip_families):
        if fam not in ("IPv4", "IPv6"):
            errs.append(not_supported(sp.child("ipFamilies").index(i), fam, ["IPv4", "IPv6"]))
        if fam in seen:
            errs.append(duplicate(sp.child("ipFamilies").index(i), fam))
        seen.add(fam)
    policies = ["PreferDualStack", "RequireDualStack", "SingleStack"]
    if svc.ip_family_policy is not None and svc.ip_family_policy not in policies:
        errs.append(not_supported(sp.child("ipFamilyPolicy"), svc.ip_family_policy, policies))
    bad = False
    for i, ip in enumerate(svc.cluster_ips):
        if i == 0 and ip == "None":
            if len(svc.cluster_ips) > 1:
                bad = True
                errs.append(invalid(ips_path, svc.cluster_ips, "'None' must be the first and only value"))
            continue
        msgs = names.is_valid_ip(ip)
        if msgs:
            bad = True
            errs += [invalid(ips_path.index(i), ip, m) for m in msgs]
    if len(svc.cluster_ips) > 2:
        errs.append(invalid(ips_path, svc.cluster_ips, "may only hold up to 2 values"))
    if bad:
        return errs
    if len(svc.cluster_ips) > 1:
        versions = {ipaddress.ip_address(ip).version for ip in svc.cluster_ips}
        if len(versions) != len(svc.cluster_ips):
            errs.append(invalid(ips_path, svc.cluster_ips, "may specify no more than one IP for each IP family"))
    if not svc.headless:
        for i, (ip, fam) in enumerate(zip(svc.cluster_ips, svc.ip_families)):
            v6 = ipaddress.ip_address(ip).version == 6
            if fam == "IPv4" and v6:
                errs.append(invalid(ips_path.index(i), ip, f"expected an IPv4 value as indicated by `ipFamilies[{i}]`"))
            if fam == "IPv6" and not v6:
                errs.append(invalid(ips_path.index(i), ip, f"expected an IPv6 value as indicated by `ipFamilies[{i}]`"))
    return errs


def _non_special_ip(ip: str, path: Path) -> list[FieldError]:
    """ValidateNonSpecialIP: an externalIP may not be unspecified, loopback or link-local."""
    a = ipaddress.ip_address(ip)
    errs = []
    if a.is_unspecified:
        errs.append(invalid(path, ip, f"may not be unspecified ({ip})"))
    if a.is_loopback:
        errs.append(invalid(path, ip, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if a.is_link_local:
        errs.append(invalid(path, ip, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
    link_local_mc = ipaddress.ip_network("224.0.0.0/24" if a.version == 4 else "ff02::/16")
    if a in link_local_mc:
        errs.append(invalid(path, ip, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"))
    return errs


def validate_service(svc: Service) -> list[FieldError]:
    """ValidateService, after defaulting and allocation."""
    errs = validate_meta(svc.metadata, names.is_dns1035_label)
    ann = svc.metadata.annotations
    if TOPOLOGY_MODE in ann and TOPOLOGY_HINTS in ann and ann[TOPOLOGY_MODE] != ann[TOPOLOGY_HINTS]:
        errs.append(invalid(Path("metadata.annotations").key(TOPOLOGY_MODE), ann[TOPOLOGY_MODE],
                            f"must match annotations[{TOPOLOGY_HINTS}] when both are specified"))
    sp = Path("spec")
    if not svc.ports and not svc.headless and svc.type != "ExternalName":
        errs.append(required(sp.child("ports"), ""))
    if svc.type in ("LoadBalancer", "NodePort") and svc.headless:
        errs.append(invalid(sp.child("clusterIPs").index(0), "None",
                            f"may not be set to 'None' for {svc.type} services"))
    elif svc.type == "ExternalName":
        if svc.cluster_ips or svc.cluster_ip:
            errs.append(forbidden(sp.child("clusterIPs"), "may not be set for ExternalName services"))
        if svc.ip_families:
            errs.append(forbidden(sp.child("ipFamilies"), "may not be set for ExternalName services"))
        if svc.ip_family_policy is not None:
            errs.append(forbidden(sp.child("ipFamilyPolicy"), "may not be set for ExternalName services"))
        cname = svc.external_name[:-1] if svc.external_name.endswith(".") else svc.external_name
        if cname:
            errs += [invalid(sp.child("externalName"), cname, m) for m in names.is_dns1123_subdomain(cname)]
        else:
            errs.append(required(sp.child("externalName"), ""))

    seen: set[str] = set()
    for i, p in enumerate(svc.ports):
        errs += _validate_service_port(p, len(svc.ports) > 1, seen, sp.child("ports").index(i))

    if svc.selector is not None:
        errs += validate_labels(svc.selector, sp.child("selector"))

    if not svc.session_affinity:
        errs.append(required(sp.child("sessionAffinity"), ""))
    elif svc.session_affinity not in ("ClientIP", "None"):
        errs.append(not_supported(sp.child("sessionAffinity"), svc.session_affinity, ["ClientIP", "None"]))
    if svc.session_affinity == "ClientIP":
        errs += _validate_affinity(svc, sp.child("sessionAffinityConfig"))
    elif svc.session_affinity == "None" and svc.affinity_config is not None:
        errs.append(forbidden(sp.child("sessionAffinityConfig"), "must not be set when session affinity is None"))

    errs += validate_cluster_ips(svc)

    for i, ip in enumerate(svc.external_ips):
        p = sp.child("externalIPs").index(i)
        msgs = names.is_valid_ip(ip)
        errs += [invalid(p, ip, m) for m in msgs] if msgs else _non_special_ip(ip, p)

    if not svc.type:
        errs.append(required(sp.child("type"), ""))
    elif svc.type not in SERVICE_TYPES:
        errs.append(not_supported(sp.child("type"), svc.type, SERVICE_TYPES))

    if svc.type == "ClusterIP":
        for i, p in enumerate(svc.ports):
            if p.node_port:
                errs.append(forbidden(sp.child("ports").index(i).child("nodePort"),
                                      "may not be used when `type` is 'ClusterIP'"))

    node_ports: set[tuple[str, int]] = set()
    for i, p in enumerate(svc.ports):
        if p.node_port:
            if (p.protocol, p.node_port) in node_ports:
                errs.append(duplicate(sp.child("ports").index(i).child("nodePort"), p.node_port))
            node_ports.add((p.protocol, p.node_port))
    port_keys: set[tuple[str, int]] = set()
    for i, p in enumerate(svc.ports):
        if (p.protocol, p.port) in port_keys:
            errs.append(duplicate(sp.child("ports").index(i), _service_port_key(p.protocol, p.port)))
        port_keys.add((p.protocol, p.port))

    if svc.load_balancer_source_ranges:
        # The path really is spelled with a capital L (a historical accident kept for compatibility).
        fp = sp.child("LoadBalancerSourceRanges")
        if svc.type != "LoadBalancer":
            errs.append(forbidden(fp, "may only be used when `type` is 'LoadBalancer'"))
        for i, v in enumerate(svc.load_balancer_source_ranges):
            errs += [invalid(fp.index(i), v.strip(), m) for m in names.is_valid_cidr(v.strip())]
    elif SOURCE_RANGES_ANNOTATION in ann:
        fp = Path("metadata.annotations").key(SOURCE_RANGES_ANNOTATION)
        if svc.type != "LoadBalancer":
            errs.append(forbidden(fp, "may only be used when `type` is 'LoadBalancer'"))
        val = ann[SOURCE_RANGES_ANNOTATION].strip()
        for v in (val.split(",") if val else []):
            errs += [invalid(fp, v.strip(), m) for m in names.is_valid_cidr(v.strip())]

    if svc.allocate_load_balancer_node_ports is not None and svc.type != "LoadBalancer":
        errs.append(forbidden(sp.child("allocateLoadBalancerNodePorts"),
                              "may only be used when `type` is 'LoadBalancer'"))
    if svc.type == "LoadBalancer" and svc.allocate_load_balancer_node_ports is None:
        errs.append(required(Path("allocateLoadBalancerNodePorts"), ""))   # no "spec." in the real path

    if svc.load_balancer_class is not None:
        if svc.type != "LoadBalancer":
            errs.append(forbidden(sp.child("loadBalancerClass"), "may only be used when `type` is 'LoadBalancer'"))
        else:
            errs += [invalid(sp.child("loadBalancerClass"), svc.load_balancer_class, m)
                     for m in names.is_qualified_name(svc.load_balancer_class)]

    # validateServiceExternalTrafficPolicy
    if not svc.externally_accessible:
        if svc.external_traffic_policy:
            errs.append(invalid(sp.child("externalTrafficPolicy"), svc.external_traffic_policy,
                                "may only be set for externally-accessible services"))
    elif not svc.external_traffic_policy:
        errs.append(required(sp.child("externalTrafficPolicy"), ""))
    elif svc.external_traffic_policy not in ("Cluster", "Local"):
        errs.append(not_supported(sp.child("externalTrafficPolicy"), svc.external_traffic_policy,
                                  ["Cluster", "Local"]))
    if not svc.needs_health_check:
        if svc.health_check_node_port:
            errs.append(invalid(sp.child("healthCheckNodePort"), svc.health_check_node_port,
                                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
    elif not svc.health_check_node_port:
        errs.append(required(sp.child("healthCheckNodePort"), ""))
    else:
        errs += [invalid(sp.child("healthCheckNodePort"), svc.health_check_node_port, m)
                 for m in names.is_valid_port_num(svc.health_check_node_port)]

    # validateServiceInternalTrafficFieldsValue
    if svc.internal_traffic_policy is None:
        if svc.type in ("ClusterIP", "NodePort", "LoadBalancer"):
            errs.append(required(sp.child("internalTrafficPolicy"), ""))
    elif svc.internal_traffic_policy not in ("Cluster", "Local"):
        errs.append(not_supported(sp.child("internalTrafficPolicy"), svc.internal_traffic_policy,
                                  ["Cluster", "Local"]))

    if svc.traffic_distribution is not None and svc.traffic_distribution not in TRAFFIC_DISTRIBUTIONS:
        errs.append(not_supported(sp.child("trafficDistribution"), svc.traffic_distribution, TRAFFIC_DISTRIBUTIONS))
    return errs


def validate_service_update(new: Service, old: Service) -> list[FieldError]:
    """ValidateServiceUpdate: clusterIPs may not change once set (except to/from ExternalName),
    and a needed healthCheckNodePort is immutable."""
    errs = []
    if new.type != "ExternalName" and old.type != "ExternalName" and old.cluster_ips:
        if new.cluster_ips and new.cluster_ips[0] != old.cluster_ips[0]:
            errs.append(invalid(Path("spec.clusterIPs").index(0), new.cluster_ips, "may not change once set"))
    if (old.type == "LoadBalancer" and new.type == "LoadBalancer"
            and old.load_balancer_class != new.load_balancer_class):
        errs.append(invalid(Path("spec.loadBalancerClass"), new.load_balancer_class, "may not change once set"))
    if (old.needs_health_check and new.needs_health_check and old.health_check_node_port
            and new.health_check_node_port != old.health_check_node_port):
        errs.append(forbidden(Path("spec.healthCheckNodePort"), "field is immutable"))
    return errs + validate_service(new)


# ---- Pod, Node, EndpointSlice ---------------------------------------------------------------
def validate_pod(pod: Pod) -> list[FieldError]:
    errs = validate_meta(pod.metadata, names.is_dns1123_subdomain)
    sp = Path("spec")
    if not pod.containers:
        errs.append(required(sp.child("containers"), ""))
    for key, cs in (("containers", pod.containers), ("initContainers", pod.init_containers)):
        for i, c in enumerate(cs):
            cp = sp.child(key).index(i)
            if not c.name:
                errs.append(required(cp.child("name"), ""))
            else:
                errs += [invalid(cp.child("name"), c.name, m) for m in names.is_dns1123_label(c.name)]
            for j, p in enumerate(c.ports):
                pp = cp.child("ports").index(j)
                if p.name:
                    errs += [invalid(pp.child("name"), p.name, m) for m in names.is_valid_port_name(p.name)]
                errs += [invalid(pp.child("containerPort"), p.container_port, m)
                         for m in names.is_valid_port_num(p.container_port)]
                if p.protocol not in PROTOCOLS:
                    errs.append(not_supported(pp.child("protocol"), p.protocol, PROTOCOLS))
    for key, value in (("hostname", pod.hostname), ("subdomain", pod.subdomain)):
        if value:
            errs += [invalid(sp.child(key), value, m) for m in names.is_dns1123_label(value)]
    policies = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]
    if pod.dns_policy not in policies:
        errs.append(not_supported(sp.child("dnsPolicy"), pod.dns_policy, policies))
    if pod.dns_policy == "None" and not pod.dns_config:
        errs.append(required(sp.child("dnsConfig"), "must provide `dnsConfig` when `dnsPolicy` is None"))
    errs += _validate_anti_affinity(pod.affinity, sp.child("affinity", "podAntiAffinity"))
    errs += _validate_spread(pod.topology_spread_constraints, sp.child("topologySpreadConstraints"))
    errs += _validate_tolerations(pod.tolerations, sp.child("tolerations"))
    if pod.pod_ip:
        errs += [invalid(Path("status.podIP"), pod.pod_ip, m) for m in names.is_valid_ip(pod.pod_ip)]
    return errs


def _validate_anti_affinity(affinity: dict | None, path: Path) -> list[FieldError]:
    """validateWeightedPodAffinityTerms: a preferred term's weight is 1-100 (unset is Go's 0)."""
    terms = ((affinity or {}).get("podAntiAffinity") or {}).get("preferredDuringSchedulingIgnoredDuringExecution")
    errs = []
    for j, term in enumerate(terms or []):
        weight = term.get("weight") or 0
        if not 1 <= weight <= 100:
            errs.append(invalid(path.child("preferredDuringSchedulingIgnoredDuringExecution").index(j).child("weight"),
                                weight, "must be in the range 1-100"))
    return errs


def _validate_spread(constraints: list[dict], path: Path) -> list[FieldError]:
    """validateTopologySpreadConstraints (pkg/apis/core/validation): maxSkew positive, topologyKey
    set, whenUnsatisfiable known, one constraint per {topologyKey, whenUnsatisfiable}."""
    errs = []
    actions = ["DoNotSchedule", "ScheduleAnyway"]
    later: dict = {}                        # {topologyKey, whenUnsatisfiable} -> how many come after this one
    for c in constraints:
        key = (c.get("topologyKey"), c.get("whenUnsatisfiable"))
        later[key] = later.get(key, 0) + 1
    for i, c in enumerate(constraints):
        cp = path.index(i)
        skew = c.get("maxSkew")
        if isinstance(skew, bool) or not isinstance(skew, int) or skew <= 0:
            errs.append(invalid(cp.child("maxSkew"), skew, "must be greater than zero"))
        if not c.get("topologyKey"):
            errs.append(required(cp.child("topologyKey"), "can not be empty"))
        if c.get("whenUnsatisfiable") not in actions:
            errs.append(not_supported(cp.child("whenUnsatisfiable"), c.get("whenUnsatisfiable"), actions))
        key = (c.get("topologyKey"), c.get("whenUnsatisfiable"))
        later[key] -= 1
        if later[key]:                      # (counted, not searched: thousands of constraints stay linear)
            errs.append(duplicate(cp.child("{topologyKey, whenUnsatisfiable}"), f"{{{key[0]}, {key[1]}}}"))
    return errs


TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]


def _go_string(v) -> str:
    return '"' + str(v).replace('"', '\\"') + '"'


def _validate_tolerations(tolerations: list[dict], path: Path) -> list[FieldError]:
    """validateTolerations (pkg/apis/core/validation): a key is a label name; an empty key needs
    operator Exists; tolerationSeconds only with NoExecute; Exists takes no value, Equal a label value;
    the effect, when set, is one of the three."""
    errs = []
    for i, t in enumerate(tolerations):
        tp = path.index(i)
        key, op, value, effect = (str(t.get(k) or "") for k in ("key", "operator", "value", "effect"))
        if key:
            errs += [invalid(tp.child("key"), key, m) for m in names.is_qualified_name(key)]
        elif op != "Exists":
            errs.append(invalid(tp.child("operator"), op, 'operator must be Exists when `key` is empty, which '
                                                          'means "match all values and all keys"'))
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(invalid(tp.child("effect"), effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if op in ("", "Equal"):
            errs += [invalid(tp.child("operator"), value, m) for m in names.is_valid_label_value(value)]
        elif op == "Exists":
            if value:
                seconds = t.get("tolerationSeconds")
                shown = GoStruct(f"core.Toleration{{Key:{_go_string(key)}, Operator:{_go_string(op)}, "
                                 f"Value:{_go_string(value)}, Effect:{_go_string(effect)}, TolerationSeconds:"
                                 + ("(*int64)(nil)}" if seconds is None else f"(*int64)({seconds})}}"))
                errs.append(invalid(tp.child("operator"), shown, "value must be empty when `operator` is 'Exists'"))
        else:
            errs.append(not_supported(tp.child("operator"), op, ["Equal", "Exists"]))
        if effect and effect not in TAINT_EFFECTS:
            errs.append(not_supported(tp.child("effect"), effect, TAINT_EFFECTS))
    return errs


def _validate_taints(taints: list[dict], path: Path) -> list[FieldError]:
    """validateNodeTaints: a label-name key, a label value, an effect that is required and one of the
    three, and at most one taint per (key, effect)."""
    errs, seen = [], set()
    for i, t in enumerate(taints):
        tp = path.index(i)
        key, value, effect = (str(t.get(k) or "") for k in ("key", "value", "effect"))
        errs += [invalid(tp.child("key"), key, m) for m in names.is_qualified_name(key)]
        errs += [invalid(tp.child("value"), value, m) for m in names.is_valid_label_value(value)]
        if not effect:
            errs.append(required(tp.child("effect"), ""))
        elif effect not in TAINT_EFFECTS:
            errs.append(not_supported(tp.child("effect"), effect, TAINT_EFFECTS))
        if (key, effect) in seen:
            taint = GoStruct(f"core.Taint{{Key:{_go_string(key)}, Value:{_go_string(value)}, "
                             f"Effect:{_go_string(effect)}, TimeAdded:<nil>}}")
            errs.append(FieldError("Duplicate value", str(tp), "taints must be unique by key and effect pair", taint, True))
        seen.add((key, effect))
    return errs


def validate_node(node: Node) -> list[FieldError]:
    errs = validate_meta(node.metadata, names.is_dns1123_subdomain, namespaced=False)
    errs += _validate_taints(node.taints, Path("spec.taints"))
    if node.pod_cidr:
        errs += [invalid(Path("spec.podCIDR"), node.pod_cidr, m) for m in names.is_valid_cidr(node.pod_cidr)]
    if node.internal_ip:
        errs += [invalid(Path("status.addresses"), node.internal_ip, m) for m in names.is_valid_ip(node.internal_ip)]
    return errs


def validate_endpoint_slice(s: EndpointSlice) -> list[FieldError]:
    """pkg/apis/discovery/validation: at most 1000 endpoints, 1..100 addresses each, 100 ports."""
    errs = validate_meta(s.metadata, names.is_dns1123_subdomain)
    if s.address_type not in ("IPv4", "IPv6", "FQDN"):
        errs.append(not_supported(Path("addressType"), s.address_type, ["FQDN", "IPv4", "IPv6"]))
    if len(s.endpoints) > 1000:
        errs.append(FieldError("Too many", "endpoints", "must have at most 1000 items", len(s.endpoints), True))
    for i, e in enumerate(s.endpoints):
        ep = Path("endpoints").index(i)
        if not e.addresses:
            errs.append(required(ep.child("addresses"), "must contain at least 1 address"))
        elif len(e.addresses) > 100:
            errs.append(FieldError("Too many", str(ep.child("addresses")), "must have at most 100 items",
                                   len(e.addresses), True))
        for j, a in enumerate(e.addresses):
            if s.address_type in ("IPv4", "IPv6"):
                msgs = names.is_valid_ip(a)
                if not msgs and ipaddress.ip_address(a).version != int(s.address_type[-1]):
                    msgs = [f"must be an {s.address_type} address"]
                errs += [invalid(ep.child("addresses").index(j), a, m) for m in msgs]
        if e.hostname:
            errs += [invalid(ep.child("hostname"), e.hostname, m) for m in names.is_dns1123_label(e.hostname)]
    if len(s.ports) > 100:
        errs.append(FieldError("Too many", "ports", "must have at most 100 items", len(s.ports), True))
    port_names: set[str] = set()
    for i, p in enumerate(s.ports):
        pp = Path("ports").index(i)
        if p.name:
            errs += [invalid(pp.child("name"), p.name, m) for m in names.is_dns1123_label(p.name)]
        if (p.name or "") in port_names:
            errs.append(duplicate(pp.child("name"), p.name or ""))
        port_names.add(p.name or "")
        if p.protocol not in PROTOCOLS:
            errs.append(not_supported(pp.child("protocol"), p.protocol, PROTOCOLS))
        if p.port is not None:
            errs += [invalid(pp.child("port"), p.port, m) for m in names.is_valid_port_num(p.port)]
    return errs
