"""Service validation: the exact texts `kubectl apply` prints against a 1.33 API server
(see the rules in kslib/api/validation.py and the allocation order in kslib/api/server.py)."""
from __future__ import annotations

import pytest

import kslib

DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                     "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
                     "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                         "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
                         "regex used for validation is "
                         "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                     "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
                     "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                   "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
                   "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
QUALIFIED_NAME_PART_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
                           "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
                           "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
PORT_RANGE = "must be between 1 and 65535, inclusive"
NOT_IN_NODEPORT_RANGE = "provided port is not in the valid range. The range of valid ports is 30000-32767"
PREFIX = 'The Service "web" is invalid: '

def svc(spec: dict, name: str = "web", **meta) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, **meta}, "spec": spec}


def port80(**extra) -> list[dict]:
    return [{"port": 80, **extra}]


@pytest.fixture
def c():
    return kslib.Cluster(nodes=2)


def invalid_text(c, manifest) -> str:
    with pytest.raises(kslib.ValidationError) as ei:
        c.apply(manifest)
    return str(ei.value)


def one(body: str) -> str:
    return PREFIX + body


def many(*bodies: str) -> str:
    return PREFIX + "\n" + "\n".join("* " + b for b in bodies)


def created(c, manifest, name: str = "web"):
    c.apply(manifest)
    s = c.get("Service", name)
    assert s is not None
    return s


# ---- node ports ------------------------------------------------------------------------------
def test_node_port_out_of_range_is_the_allocator_message(c):
    text = invalid_text(c, svc({"type": "NodePort", "ports": port80(nodePort=80)}))
    assert text == one(f"spec.ports[0].nodePort: Invalid value: 80: {NOT_IN_NODEPORT_RANGE}")


@pytest.mark.parametrize("bad", [-1, 70000, 32768, 29999])
def test_node_port_outside_range_any_number(c, bad):
    text = invalid_text(c, svc({"type": "NodePort", "ports": port80(nodePort=bad)}))
    assert text == one(f"spec.ports[0].nodePort: Invalid value: {bad}: {NOT_IN_NODEPORT_RANGE}")


def test_node_port_already_allocated_by_another_service(c):
    c.apply(svc({"type": "NodePort", "ports": port80(nodePort=30080)}, name="first"))
    text = invalid_text(c, svc({"type": "NodePort", "ports": port80(nodePort=30080)}))
    assert text == one("spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated")


def test_node_port_on_cluster_ip_service_is_forbidden(c):
    text = invalid_text(c, svc({"ports": port80(nodePort=30080)}))
    assert text == one("spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'")


@pytest.mark.parametrize("typ", ["NodePort", "LoadBalancer"])
def test_cluster_ip_none_with_external_types(c, typ):
    text = invalid_text(c, svc({"type": typ, "clusterIP": "None", "selector": {"app": "web"},
                                "ports": port80()}))
    assert text == one(f"spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for {typ} services")


def test_node_port_errors_leave_nothing_allocated(c):
    before = set(c.api.node_ports.bitmap.used)
    with pytest.raises(kslib.ValidationError):
        c.apply(svc({"type": "NodePort", "ports": [{"port": 80, "name": "a", "nodePort": 30080},
                                                   {"port": 81, "name": "b", "nodePort": 80}]}))
    assert c.api.node_ports.bitmap.used == before


# ---- ports -------------------------------------------------------------------------------------
def test_ports_required(c):
    assert invalid_text(c, svc({"selector": {"app": "web"}})) == one("spec.ports: Required value")


def test_headless_service_needs_no_ports(c):
    s = created(c, svc({"clusterIP": "None", "selector": {"app": "web"}}))
    assert s.cluster_ip == "None" and s.ports == []


def test_multiple_ports_need_names_and_duplicate_port_is_reported_after(c):
    text = invalid_text(c, svc({"ports": [{"port": 80}, {"port": 80}]}))
    assert text == (
        'The Service "web" is invalid: \n'
        "* spec.ports[0].name: Required value\n"
        "* spec.ports[1].name: Required value\n"
        '* spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), '
        'Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}')


def test_same_port_different_protocol_is_not_a_duplicate(c):
    s = created(c, svc({"ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                                  {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}))
    assert [(p.protocol, p.port) for p in s.ports] == [("UDP", 53), ("TCP", 53)]


def test_duplicate_port_names(c):
    text = invalid_text(c, svc({"ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81}]}))
    assert text == one('spec.ports[1].name: Duplicate value: "http"')


@pytest.mark.parametrize("name", ["Http", "http_port", "-http", "a" * 10 + ".b"])
def test_invalid_port_name(c, name):
    text = invalid_text(c, svc({"ports": port80(name=name)}))
    assert text == one(f'spec.ports[0].name: Invalid value: "{name}": {DNS1123_LABEL_MSG}')


def test_invalid_port_name_text_has_double_space_before_or(c):
    text = invalid_text(c, svc({"ports": port80(name="HTTP")}))
    assert "(e.g. 'my-name',  or '123-abc', regex" in text


def test_port_zero_also_defaults_target_port_to_zero(c):
    text = invalid_text(c, svc({"ports": [{"port": 0}]}))
    assert text == many(f"spec.ports[0].port: Invalid value: 0: {PORT_RANGE}",
                        f"spec.ports[0].targetPort: Invalid value: 0: {PORT_RANGE}")


def test_port_70000(c):
    text = invalid_text(c, svc({"ports": [{"port": 70000, "targetPort": 8080}]}))
    assert text == one(f"spec.ports[0].port: Invalid value: 70000: {PORT_RANGE}")


def test_port_70000_defaulted_target_port(c):
    text = invalid_text(c, svc({"ports": [{"port": 70000}]}))
    assert text == many(f"spec.ports[0].port: Invalid value: 70000: {PORT_RANGE}",
                        f"spec.ports[0].targetPort: Invalid value: 70000: {PORT_RANGE}")


def test_target_port_number_out_of_range(c):
    text = invalid_text(c, svc({"ports": port80(targetPort=65536)}))
    assert text == one(f"spec.ports[0].targetPort: Invalid value: 65536: {PORT_RANGE}")


def test_unsupported_protocol(c):
    text = invalid_text(c, svc({"ports": port80(protocol="HTTP")}))
    assert text == one('spec.ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"')


@pytest.mark.parametrize("protocol", ["TCP", "UDP", "SCTP"])
def test_supported_protocols(c, protocol):
    assert created(c, svc({"ports": port80(protocol=protocol)})).ports[0].protocol == protocol


@pytest.mark.parametrize("target, messages", [
    ("http_port", ["must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"]),
    ("abcdefghijklmnop", ["must be no more than 15 characters"]),
    ("8080", ["must contain at least one letter (a-z)"]),
    ("web--port", ["must not contain consecutive hyphens"]),
    ("-web", ["must not begin or end with a hyphen"]),
])
def test_target_port_name_invalid(c, target, messages):
    text = invalid_text(c, svc({"ports": port80(targetPort=target)}))
    bodies = [f'spec.ports[0].targetPort: Invalid value: "{target}": {m}' for m in messages]
    assert text == (one(bodies[0]) if len(bodies) == 1 else many(*bodies))


def test_target_port_name_every_failing_check_is_reported(c):
    text = invalid_text(c, svc({"ports": port80(targetPort="80_80")}))
    assert text == many(
        'spec.ports[0].targetPort: Invalid value: "80_80": '
        "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        'spec.ports[0].targetPort: Invalid value: "80_80": must contain at least one letter (a-z)')


def test_target_port_name_valid(c):
    assert created(c, svc({"ports": port80(targetPort="http-web")})).ports[0].target_port == "http-web"


# ---- session affinity --------------------------------------------------------------------------
def test_session_affinity_unsupported(c):
    text = invalid_text(c, svc({"ports": port80(), "sessionAffinity": "Sticky"}))
    assert text == one('spec.sessionAffinity: Unsupported value: "Sticky": supported values: "ClientIP", "None"')


@pytest.mark.parametrize("timeout", [0, -1, 86401])
def test_client_ip_timeout_rejected(c, timeout):
    text = invalid_text(c, svc({"ports": port80(), "sessionAffinity": "ClientIP",
                                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": timeout}}}))
    assert text == one(f"spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: {timeout}: "
                       "must be greater than 0 and less than 86400")


def test_client_ip_timeout_86400_accepted(c):
    s = created(c, svc({"ports": port80(), "sessionAffinity": "ClientIP",
                        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86400}}}))
    assert s.affinity_timeout == 86400


def test_client_ip_timeout_defaults_to_10800(c):
    s = created(c, svc({"ports": port80(), "sessionAffinity": "ClientIP"}))
    assert s.affinity_config == {"clientIP": {"timeoutSeconds": 10800}}
    assert s.affinity_timeout == 10800


def test_affinity_config_with_affinity_none_is_cleared(c):
    s = created(c, svc({"ports": port80(), "sessionAffinity": "None",
                        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}}))
    assert s.session_affinity == "None" and s.affinity_config is None


# ---- type and ExternalName ---------------------------------------------------------------------
def test_unsupported_type(c):
    text = invalid_text(c, svc({"ports": port80(), "type": "Foo"}))
    assert text == one('spec.type: Unsupported value: "Foo": supported values: '
                       '"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"')


def test_external_name_required(c):
    assert invalid_text(c, svc({"type": "ExternalName"})) == one("spec.externalName: Required value")


def test_external_name_invalid(c):
    text = invalid_text(c, svc({"type": "ExternalName", "externalName": "Foo_Bar.example.com"}))
    assert text == one(f'spec.externalName: Invalid value: "Foo_Bar.example.com": {DNS1123_SUBDOMAIN_MSG}')


def test_external_name_invalid_value_shown_without_trailing_dot(c):
    text = invalid_text(c, svc({"type": "ExternalName", "externalName": "bad_name."}))
    assert text == one(f'spec.externalName: Invalid value: "bad_name": {DNS1123_SUBDOMAIN_MSG}')


def test_external_name_trailing_dot_accepted(c):
    s = created(c, svc({"type": "ExternalName", "externalName": "db.example.com."}))
    assert s.external_name == "db.example.com." and s.cluster_ip == "" and s.cluster_ips == []


def test_external_name_with_cluster_ip_forbidden(c):
    text = invalid_text(c, svc({"type": "ExternalName", "externalName": "db.example.com",
                                "clusterIP": "10.96.0.50"}))
    assert text == one("spec.clusterIPs: Forbidden: may not be set for ExternalName services")


def test_external_name_with_selector_accepted(c):
    s = created(c, svc({"type": "ExternalName", "externalName": "db.example.com", "selector": {"app": "db"}}))
    assert s.selector == {"app": "db"}


def test_external_name_allocates_nothing(c):
    ips, ports = set(c.api.service_ips.bitmap.used), set(c.api.node_ports.bitmap.used)
    created(c, svc({"type": "ExternalName", "externalName": "db.example.com", "ports": port80()}))
    assert c.api.service_ips.bitmap.used == ips and c.api.node_ports.bitmap.used == ports


# ---- metadata ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["Web_1", "1web", "web-"])
def test_service_name_must_be_dns1035_label(c, name):
    with pytest.raises(kslib.ValidationError) as ei:
        c.apply(svc({"ports": port80()}, name=name))
    assert str(ei.value) == f'The Service "{name}" is invalid: metadata.name: Invalid value: "{name}": ' \
                            + DNS1035_LABEL_MSG


def test_service_name_too_long(c):
    name = "a" * 64
    with pytest.raises(kslib.ValidationError) as ei:
        c.apply(svc({"ports": port80()}, name=name))
    assert str(ei.value) == (f'The Service "{name}" is invalid: metadata.name: Invalid value: "{name}": '
                             "must be no more than 63 characters")


# ---- externalIPs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("ip, detail", [
    ("127.0.0.1", "may not be in the loopback range (127.0.0.0/8, ::1/128)"),
    ("169.254.169.254", "may not be in the link-local range (169.254.0.0/16, fe80::/10)"),
    ("224.0.0.5", "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"),
    ("0.0.0.0", "may not be unspecified (0.0.0.0)"),
    ("1.2.3", "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"),
    ("not-an-ip", "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"),
])
def test_external_ips_rejected(c, ip, detail):
    text = invalid_text(c, svc({"ports": port80(), "externalIPs": [ip]}))
    assert text == one(f'spec.externalIPs[0]: Invalid value: "{ip}": {detail}')


def test_external_ip_accepted_and_defaults_external_traffic_policy(c):
    s = created(c, svc({"ports": port80(), "externalIPs": ["192.0.2.10"]}))
    assert s.external_ips == ["192.0.2.10"]
    assert s.external_traffic_policy == "Cluster"       # ClusterIP with externalIPs is externally accessible


# ---- loadBalancerSourceRanges --------------------------------------------------------------------
def test_source_ranges_on_non_load_balancer_forbidden_capital_l(c):
    text = invalid_text(c, svc({"type": "NodePort", "ports": port80(),
                                "loadBalancerSourceRanges": ["10.0.0.0/8"]}))
    assert text == one("spec.LoadBalancerSourceRanges: Forbidden: may only be used when `type` is 'LoadBalancer'")


def test_source_range_invalid_cidr(c):
    text = invalid_text(c, svc({"type": "LoadBalancer", "ports": port80(),
                                "loadBalancerSourceRanges": ["10.0.0.0/8", "10.0.0.0/33"]}))
    assert text == one('spec.LoadBalancerSourceRanges[1]: Invalid value: "10.0.0.0/33": '
                       "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")


def test_source_range_space_padded_accepted(c):
    s = created(c, svc({"type": "LoadBalancer", "ports": port80(),
                        "loadBalancerSourceRanges": ["  10.0.0.0/8 "]}))
    assert s.source_ranges == ["10.0.0.0/8"]


# ---- traffic policies ------------------------------------------------------------------------------
def test_external_traffic_policy_on_plain_cluster_ip(c):
    text = invalid_text(c, svc({"ports": port80(), "externalTrafficPolicy": "Local"}))
    assert text == one('spec.externalTrafficPolicy: Invalid value: "Local": '
                       "may only be set for externally-accessible services")


def test_external_traffic_policy_unsupported(c):
    text = invalid_text(c, svc({"type": "NodePort", "ports": port80(), "externalTrafficPolicy": "Everywhere"}))
    assert text == one('spec.externalTrafficPolicy: Unsupported value: "Everywhere": '
                       'supported values: "Cluster", "Local"')


def test_health_check_node_port_on_cluster_policy_load_balancer(c):
    text = invalid_text(c, svc({"type": "LoadBalancer", "ports": port80(), "healthCheckNodePort": 30500}))
    assert text == one("spec.healthCheckNodePort: Invalid value: 30500: may only be set when `type` is "
                       "'LoadBalancer' and `externalTrafficPolicy` is 'Local'")


def test_health_check_node_port_auto_allocated_for_local(c):
    s = created(c, svc({"type": "LoadBalancer", "ports": port80(), "externalTrafficPolicy": "Local"}))
    hc = s.health_check_node_port
    assert 30000 <= hc <= 32767
    assert hc != s.ports[0].node_port
    assert c.api.node_ports.in_use(hc)


def test_health_check_node_port_requested_for_local(c):
    s = created(c, svc({"type": "LoadBalancer", "ports": port80(), "externalTrafficPolicy": "Local",
                        "healthCheckNodePort": 30500}))
    assert s.health_check_node_port == 30500


def test_health_check_node_port_out_of_range_is_internal_error(c):
    with pytest.raises(kslib.InternalError) as ei:
        c.apply(svc({"type": "LoadBalancer", "ports": port80(), "externalTrafficPolicy": "Local",
                     "healthCheckNodePort": 80}))
    assert str(ei.value) == ("Internal error occurred: failed to allocate requested HealthCheck NodePort 80: "
                             + NOT_IN_NODEPORT_RANGE)
    assert not isinstance(ei.value, kslib.ValidationError)
    assert c.get("Service", "web") is None


def test_health_check_node_port_taken_is_internal_error(c):
    c.apply(svc({"type": "NodePort", "ports": port80(nodePort=30500)}, name="other"))
    with pytest.raises(kslib.InternalError) as ei:
        c.apply(svc({"type": "LoadBalancer", "ports": port80(), "externalTrafficPolicy": "Local",
                     "healthCheckNodePort": 30500}))
    assert str(ei.value) == ("Internal error occurred: failed to allocate requested HealthCheck NodePort 30500: "
                             "provided port is already allocated")


def test_internal_traffic_policy_unsupported(c):
    text = invalid_text(c, svc({"ports": port80(), "internalTrafficPolicy": "Node"}))
    assert text == one('spec.internalTrafficPolicy: Unsupported value: "Node": supported values: "Cluster", "Local"')


@pytest.mark.parametrize("td", ["PreferClose", "PreferSameNode", "PreferSameZone"])
def test_traffic_distribution_accepted(c, td):
    assert created(c, svc({"ports": port80(), "trafficDistribution": td})).traffic_distribution == td


def test_traffic_distribution_unsupported(c):
    text = invalid_text(c, svc({"ports": port80(), "trafficDistribution": "Nearest"}))
    assert text == one('spec.trafficDistribution: Unsupported value: "Nearest": '
                       'supported values: "PreferClose", "PreferSameNode", "PreferSameZone"')


# ---- selector and annotations --------------------------------------------------------------------
def test_selector_invalid_label_value(c):
    text = invalid_text(c, svc({"ports": port80(), "selector": {"app": "web server"}}))
    assert text == one(f'spec.selector: Invalid value: "web server": {LABEL_VALUE_MSG}')


def test_selector_invalid_key(c):
    text = invalid_text(c, svc({"ports": port80(), "selector": {"my app": "web"}}))
    assert text == one(f'spec.selector: Invalid value: "my app": {QUALIFIED_NAME_PART_MSG}')


def test_selector_key_with_empty_name_part(c):
    text = invalid_text(c, svc({"ports": port80(), "selector": {"example.com/": "web"}}))
    assert text == many('spec.selector: Invalid value: "example.com/": name part must be non-empty',
                        f'spec.selector: Invalid value: "example.com/": {QUALIFIED_NAME_PART_MSG}')


def test_topology_annotations_mismatch(c):
    text = invalid_text(c, svc({"ports": port80()}, annotations={
        "service.kubernetes.io/topology-mode": "Auto",
        "service.kubernetes.io/topology-aware-hints": "Disabled"}))
    assert text == one('metadata.annotations[service.kubernetes.io/topology-mode]: Invalid value: "Auto": '
                       "must match annotations[service.kubernetes.io/topology-aware-hints] when both are specified")


def test_topology_annotations_matching_accepted(c):
    created(c, svc({"ports": port80()}, annotations={"service.kubernetes.io/topology-mode": "Auto",
                                                     "service.kubernetes.io/topology-aware-hints": "Auto"}))


# ---- clusterIP ---------------------------------------------------------------------------------------
def test_cluster_ip_outside_service_cidr(c):
    text = invalid_text(c, svc({"ports": port80(), "clusterIP": "192.168.1.5"}))
    assert text == one('spec.clusterIPs: Invalid value: []string{"192.168.1.5"}: failed to allocate IP '
                       "192.168.1.5: the provided IP (192.168.1.5) is not in the valid range. "
                       "The range of valid IPs is 10.96.0.0/12")


def test_cluster_ip_already_allocated_by_kubernetes_service(c):
    assert c.get("Service", "kubernetes").cluster_ip == "10.96.0.1"
    text = invalid_text(c, svc({"ports": port80(), "clusterIP": "10.96.0.1"}))
    assert text == one('spec.clusterIPs: Invalid value: []string{"10.96.0.1"}: failed to allocate IP 10.96.0.1: '
                       "provided IP is already allocated")


@pytest.mark.parametrize("ip", ["abc", "10.96.0.300"])
def test_cluster_ip_not_an_ip(c, ip):
    text = invalid_text(c, svc({"ports": port80(), "clusterIP": ip}))
    assert text == one(f'spec.clusterIPs[0]: Invalid value: "{ip}": '
                       "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")


def test_cluster_ips_must_match_cluster_ip(c):
    text = invalid_text(c, svc({"ports": port80(), "clusterIP": "10.96.0.50", "clusterIPs": ["10.96.0.51"]}))
    assert text == one('spec.clusterIPs: Invalid value: []string{"10.96.0.51"}: first value must match `clusterIP`')


# ---- allocation errors come alone ---------------------------------------------------------------------
def test_allocation_error_comes_alone(c):
    # missing port names would be two more errors, but ValidateService never runs
    err_text = invalid_text(c, svc({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}, {"port": 81}]}))
    assert err_text == one(f"spec.ports[0].nodePort: Invalid value: 80: {NOT_IN_NODEPORT_RANGE}")


def test_cluster_ip_allocation_error_comes_alone(c):
    with pytest.raises(kslib.ValidationError) as ei:
        c.apply(svc({"ports": [{"port": 80}, {"port": 81}], "clusterIP": "10.96.0.1",
                     "sessionAffinity": "Sticky"}))
    assert [e.field for e in ei.value.errors] == ["spec.clusterIPs"]


def test_valid_node_port_then_validation_errors_release_the_port(c):
    with pytest.raises(kslib.ValidationError) as ei:
        c.apply(svc({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}, {"port": 81}]}))
    assert ei.value.fields == ["spec.ports[0].name", "spec.ports[1].name"]
    assert created(c, svc({"type": "NodePort", "ports": port80(nodePort=30080)})).ports[0].node_port == 30080


# ---- error object ----------------------------------------------------------------------------------
def test_multi_error_header_and_status_message(c):
    with pytest.raises(kslib.ValidationError) as ei:
        c.apply(svc({"ports": [{"port": 0, "targetPort": 8080}], "type": "Foo"}))
    err = ei.value
    a = f"spec.ports[0].port: Invalid value: 0: {PORT_RANGE}"
    b = 'spec.type: Unsupported value: "Foo": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'
    assert str(err) == f'The Service "web" is invalid: \n* {a}\n* {b}'
    assert str(err).splitlines()[0] == 'The Service "web" is invalid: '     # trailing space kept
    assert err.status_message == f'Service "web" is invalid: [{a}, {b}]'
    assert isinstance(err, ValueError)
    assert [(e.field, e.type) for e in err.errors] == [("spec.ports[0].port", "Invalid value"),
                                                       ("spec.type", "Unsupported value")]
    assert err.errors[0].detail == PORT_RANGE
    assert err.errors[1].detail == 'supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'


def test_single_error_status_message_has_no_brackets(c):
    with pytest.raises(kslib.ValidationError) as ei:
        c.apply(svc({"ports": port80(protocol="HTTP")}))
    body = 'spec.ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"'
    assert ei.value.status_message == f'Service "web" is invalid: {body}'
    assert str(ei.value.errors[0]) == body
    assert len(ei.value.errors) == 1


def test_required_and_forbidden_print_no_value(c):
    with pytest.raises(kslib.ValidationError) as ei:
        c.apply(svc({"ports": [{"port": 80}, {"port": 81, "nodePort": 30001}]}))
    assert [str(e) for e in ei.value.errors] == [
        "spec.ports[0].name: Required value",
        "spec.ports[1].name: Required value",
        "spec.ports[1].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
    assert ei.value.errors[0].detail == ""


# ---- defaulting ---------------------------------------------------------------------------------
def test_defaults_cluster_ip_service(c):
    s = created(c, svc({"ports": port80(), "selector": {"app": "web"}}))
    assert s.type == "ClusterIP"
    assert s.ports[0].protocol == "TCP" and s.ports[0].target_port == 80
    assert s.session_affinity == "None" and s.affinity_config is None
    assert s.internal_traffic_policy == "Cluster"
    assert s.external_traffic_policy == ""
    assert s.allocate_load_balancer_node_ports is None
    assert s.ip_families == ["IPv4"] and s.ip_family_policy == "SingleStack"
    assert s.cluster_ips == [s.cluster_ip]


def test_defaults_node_port_service(c):
    s = created(c, svc({"type": "NodePort", "ports": port80()}))
    assert s.external_traffic_policy == "Cluster"
    assert s.internal_traffic_policy == "Cluster"
    assert 30000 <= s.ports[0].node_port <= 32767


def test_defaults_load_balancer_service(c):
    s = created(c, svc({"type": "LoadBalancer", "ports": port80()}))
    assert s.allocate_load_balancer_node_ports is True
    assert s.external_traffic_policy == "Cluster"
    assert s.health_check_node_port == 0


def test_defaults_do_not_override_given_values(c):
    s = created(c, svc({"ports": port80(targetPort=8080, protocol="UDP"), "internalTrafficPolicy": "Local"}))
    assert s.ports[0].target_port == 8080 and s.ports[0].protocol == "UDP"
    assert s.internal_traffic_policy == "Local"


# ---- updates ---------------------------------------------------------------------------------------
def test_reapply_keeps_allocated_cluster_ip_and_node_port(c):
    manifest = svc({"type": "NodePort", "ports": port80(), "selector": {"app": "web"}})
    first = created(c, manifest)
    again = created(c, manifest)
    assert again.cluster_ip == first.cluster_ip
    assert again.ports[0].node_port == first.ports[0].node_port
    assert again.metadata.uid == first.metadata.uid


def test_reapply_with_changed_selector_keeps_allocations(c):
    first = created(c, svc({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": port80(),
                            "selector": {"app": "web"}}))
    again = created(c, svc({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": port80(),
                            "selector": {"app": "web2"}}))
    assert (again.cluster_ip, again.ports[0].node_port, again.health_check_node_port) == \
        (first.cluster_ip, first.ports[0].node_port, first.health_check_node_port)


def test_changing_cluster_ip_on_update_is_rejected(c):
    first = created(c, svc({"ports": port80(), "clusterIP": "10.96.0.50"}))
    text = invalid_text(c, svc({"ports": port80(), "clusterIP": "10.96.0.60"}))
    assert text == one('spec.clusterIPs[0]: Invalid value: []string{"10.96.0.60"}: may not change once set')
    assert c.get("Service", "web").cluster_ip == first.cluster_ip
    # the old address stays allocated, the new one was not kept
    with pytest.raises(kslib.ValidationError, match="provided IP is already allocated"):
        c.apply(svc({"ports": port80(), "clusterIP": "10.96.0.50"}, name="other"))
    created(c, svc({"ports": port80(), "clusterIP": "10.96.0.60"}, name="other"))


def test_changing_cluster_ip_to_a_taken_ip_on_update(c):
    created(c, svc({"ports": port80(), "clusterIP": "10.96.0.50"}))
    text = invalid_text(c, svc({"ports": port80(), "clusterIP": "10.96.0.1"}))
    assert text == one('spec.clusterIPs[0]: Invalid value: []string{"10.96.0.1"}: may not change once set')


def test_failed_update_keeps_the_old_object_and_allocations(c):
    first = created(c, svc({"type": "NodePort", "ports": port80(nodePort=30080)}))
    with pytest.raises(kslib.ValidationError):
        c.apply(svc({"type": "NodePort", "ports": port80(nodePort=30080), "sessionAffinity": "Sticky"}))
    now = c.get("Service", "web")
    assert now.ports[0].node_port == 30080 and now.cluster_ip == first.cluster_ip
    assert c.api.node_ports.in_use(30080)


def test_a_deployments_selector_is_immutable():
    c = kslib.Cluster(nodes=1)
    dep = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: orders}
spec:
  replicas: 1
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec: {containers: [{name: c, image: x}]}
"""
    c.apply(dep % ("order", "order"))
    pods = [p.name for p in c.pods]
    with pytest.raises(kslib.ValidationError) as e:
        c.apply(dep % ("orders", "orders"))
    assert str(e.value) == ('The Deployment "orders" is invalid: spec.selector: Invalid value: &v1.LabelSelector{'
                            'MatchLabels:map[string]string{"app":"orders"}, MatchExpressions:'
                            '[]v1.LabelSelectorRequirement(nil)}: field is immutable')
    assert [p.name for p in c.pods] == pods


def test_an_empty_service_selector_is_no_selector():
    c = kslib.Cluster(nodes=1)
    c.apply("""
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {}
  ports: [{port: 80}]
""")
    assert c.get("svc", "web").selector is None
    assert c.endpoint_slices("web") == [] and c.endpoints("web") is None
