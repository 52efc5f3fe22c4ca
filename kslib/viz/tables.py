"""``kubectl get`` tables for pods, services and endpointslices, with kubectl's column rules
(k8s.io/kubernetes pkg/printers/internalversion/printers.go)."""
from __future__ import annotations

import datetime as dt

from ..api.server import EPOCH


def _age(cluster, obj) -> str:
    ts = obj.metadata.creation_timestamp
    if not ts:
        return "<unknown>"
    created = dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    secs = int((EPOCH + dt.timedelta(seconds=cluster.clock) - created).total_seconds())
    if secs < 120:
        return f"{secs}s"
    if secs < 3600 * 3:
        return f"{secs // 60}m"
    if secs < 86400 * 2:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["   ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in [header] + rows]
    return "\n".join(lines)


def get_pods(cluster, namespace: str | None = "default", wide: bool = True) -> str:
    rows = []
    for p in cluster.list("Pod", namespace):
        status = "Terminating" if p.terminating else (p.phase or "Pending")
        row = [p.name, f"{1 if p.ready else 0}/{len(p.containers)}", status, "0", _age(cluster, p)]
        if wide:
            row += [p.pod_ip or "<none>", p.node_name or "<none>"]
        rows.append(([p.namespace] if namespace is None else []) + row)
    header = (["NAMESPACE"] if namespace is None else []) + ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] + \
        (["IP", "NODE"] if wide else [])
    return _table(header, rows) if rows else "No resources found."


def _svc_ports(svc) -> str:
    if not svc.ports:
        return "<none>"
    return ",".join(f"{p.port}:{p.node_port}/{p.protocol}" if p.node_port else f"{p.port}/{p.protocol}"
                    for p in svc.ports)


def _external_ip(svc) -> str:
    # printers.go getServiceExternalIP: a LoadBalancer shows its ingress (IP, else hostname; sorted,
    # unique) then its externalIPs, and <pending> only when it has neither
    if svc.type == "ExternalName":
        return svc.external_name
    if svc.type == "LoadBalancer":
        ips = sorted({i.ip or i.hostname for i in svc.ingress if i.ip or i.hostname}) + list(svc.external_ips)
        return ",".join(ips) if ips else "<pending>"
    return ",".join(svc.external_ips) if svc.external_ips else "<none>"


def get_services(cluster, namespace: str | None = "default") -> str:
    rows = [([s.namespace] if namespace is None else []) +
            [s.name, s.type, s.cluster_ip or "<none>", _external_ip(s), _svc_ports(s), _age(cluster, s)]
            for s in cluster.list("Service", namespace)]
    header = (["NAMESPACE"] if namespace is None else []) + ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP",
                                                              "PORT(S)", "AGE"]
    return _table(header, rows) if rows else "No resources found."


def get_endpointslices(cluster, namespace: str | None = "default") -> str:
    rows = []
    for s in cluster.list("EndpointSlice", namespace):
        ports = ",".join(str(p.port) for p in s.ports) or "<unset>"
        addrs = [a for e in s.endpoints for a in e.addresses]
        shown = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
        rows.append(([s.namespace] if namespace is None else []) +
                    [s.name, s.address_type, ports, shown or "<unset>", _age(cluster, s)])
    header = (["NAMESPACE"] if namespace is None else []) + ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    return _table(header, rows) if rows else "No resources found."
