"""Writes kslib/data/sample_cluster.yaml: what `kubectl get nodes,pods,services,endpointslices -A -o yaml`
prints for a small kubeadm cluster (v1.30, containerd, flannel, MetalLB). Hand-built, consistent data."""
import hashlib
import sys
import uuid
from pathlib import Path

import yaml

OUT = sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[1] / "kslib/data/sample_cluster.yaml")
RV = [4100]


def uid(name):
    return str(uuid.UUID(bytes=hashlib.sha256(name.encode()).digest()[:16], version=4))


def rv():
    RV[0] += 37
    return str(RV[0])


def ts(day, h, m, s=0):
    return f"2026-02-{day:02d}T{h:02d}:{m:02d}:{s:02d}Z"


T0 = ts(2, 9, 12)      # kubeadm init
T1 = ts(2, 9, 20)      # workers joined
T2 = ts(3, 14, 5)      # apps deployed
T3 = ts(10, 8, 40)     # latest rollout

NODES = [  # name, ip, podCIDR, zone, control plane, machine suffix
    ("cp-1", "10.0.1.10", "10.244.0.0/24", "zone-a", True),
    ("worker-1", "10.0.1.11", "10.244.1.0/24", "zone-a", False),
    ("worker-2", "10.0.1.12", "10.244.2.0/24", "zone-b", False),
]
NODE = {n[0]: n for n in NODES}
VTEP = {"cp-1": "6e:1f:3a:0c:55:91", "worker-1": "a2:4b:7d:19:e0:36", "worker-2": "1a:c8:02:9f:6b:d4"}


def node(name, ip, cidr, zone, cp):
    created = T0 if cp else T1
    labels = {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
              "topology.kubernetes.io/region": "region-1", "topology.kubernetes.io/zone": zone}
    if cp:
        labels["node-role.kubernetes.io/control-plane"] = ""
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
    spec = {"podCIDR": cidr, "podCIDRs": [cidr]}
    if cp:
        spec["taints"] = [{"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}]
    cond = lambda t, st, reason, msg, when: {  # noqa: E731
        "lastHeartbeatTime": ts(12, 10, 31, 7) if t != "NetworkUnavailable" else when,
        "lastTransitionTime": when, "message": msg, "reason": reason, "status": st, "type": t}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "annotations": {
                "flannel.alpha.coreos.com/backend-data": '{"VNI":1,"VtepMAC":"%s"}' % VTEP[name],
                "flannel.alpha.coreos.com/backend-type": "vxlan",
                "flannel.alpha.coreos.com/kube-subnet-manager": "true",
                "flannel.alpha.coreos.com/public-ip": ip,
                "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock",
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
            "creationTimestamp": created, "labels": labels, "name": name,
            "resourceVersion": rv(), "uid": uid("node/" + name)},
        "spec": spec,
        "status": {
            "addresses": [{"address": ip, "type": "InternalIP"}, {"address": name, "type": "Hostname"}],
            "allocatable": {"cpu": "2" if cp else "4", "ephemeral-storage": "28819139742",
                            "hugepages-2Mi": "0", "memory": "3902452Ki" if cp else "7992344Ki", "pods": "110"},
            "capacity": {"cpu": "2" if cp else "4", "ephemeral-storage": "31270768Ki", "hugepages-2Mi": "0",
                         "memory": "4004852Ki" if cp else "8094744Ki", "pods": "110"},
            "conditions": [
                cond("NetworkUnavailable", "False", "FlannelIsUp", "Flannel is running on this node", ts(2, 9, 25)),
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available", created),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure", created),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available", created),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status", ts(2, 9, 26))],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"architecture": "amd64", "bootID": uid("boot/" + name),
                         "containerRuntimeVersion": "containerd://1.7.24", "kernelVersion": "6.1.0-21-amd64",
                         "kubeProxyVersion": "v1.31.4", "kubeletVersion": "v1.31.4",
                         "machineID": uid("machine/" + name).replace("-", ""), "operatingSystem": "linux",
                         "osImage": "Debian GNU/Linux 12 (bookworm)", "systemUUID": uid("sys/" + name)}},
    }


def sa_volume(suffix):
    return {"name": f"kube-api-access-{suffix}", "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
        {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                    "path": "namespace"}]}}]}}


DEFAULT_TOLERATIONS = [
    {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
    {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}]
DS_TOLERATIONS = [{"operator": "Exists"}]


def pod(ns, name, node_name, ip, labels, containers, *, owner=None, host_network=False, ready=True,
        created=T2, terminating=None, tolerations=None, annotations=None, priority=None, hostname=None,
        subdomain=None, sa="default", qos="BestEffort", started=None, extra_spec=None, restarts=0):
    host_ip = NODE[node_name][1]
    ip = host_ip if host_network else ip
    suffix = hashlib.sha1(name.encode()).hexdigest()[:5]
    md = {"creationTimestamp": created, "labels": labels, "name": name, "namespace": ns,
          "resourceVersion": rv(), "uid": uid(f"pod/{ns}/{name}")}
    if owner:
        kind, oname = owner
        md["generateName"] = name[:name.rfind("-") + 1] if kind in ("ReplicaSet", "DaemonSet") else None
        if md["generateName"] is None:
            del md["generateName"]
        md["ownerReferences"] = [{"apiVersion": "v1" if kind == "Node" else "apps/v1", "blockOwnerDeletion": True,
                                  "controller": True, "kind": kind, "name": oname,
                                  "uid": uid(f"{kind}/{ns}/{oname}" if kind != "Node" else "node/" + oname)}]
        if kind == "Node":
            del md["ownerReferences"][0]["blockOwnerDeletion"]
    if annotations:
        md["annotations"] = annotations
    if terminating:
        md["deletionGracePeriodSeconds"] = 30
        md["deletionTimestamp"] = terminating
    spec = {"containers": [], "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": True, "nodeName": node_name, "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0 if priority is None else 2000001000 if priority == "system-node-critical" else 2000000000,
            "restartPolicy": "Always", "schedulerName": "default-scheduler", "securityContext": {},
            "terminationGracePeriodSeconds": 30,
            "tolerations": tolerations if tolerations is not None else DEFAULT_TOLERATIONS}
    if priority:
        spec["priorityClassName"] = priority
    if host_network:
        spec["hostNetwork"] = True
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    vols = [] if owner and owner[0] == "Node" else [sa_volume(suffix)]
    if owner is None or owner[0] != "Node":
        spec["serviceAccount"] = sa
        spec["serviceAccountName"] = sa
    statuses = []
    for c in containers:
        cc = {"image": c["image"], "imagePullPolicy": c.get("pull", "IfNotPresent"), "name": c["name"],
              "resources": c.get("resources", {}), "terminationMessagePath": "/dev/termination-log",
              "terminationMessagePolicy": "File"}
        for k in ("command", "args", "ports", "env", "readinessProbe", "livenessProbe", "securityContext"):
            if k in c:
                cc[k] = c[k]
        mounts = list(c.get("mounts", []))
        if vols:
            mounts.append({"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                           "name": f"kube-api-access-{suffix}", "readOnly": True})
        if mounts:
            cc["volumeMounts"] = mounts
        spec["containers"].append(cc)
        statuses.append({
            "containerID": "containerd://" + hashlib.sha256((name + c["name"]).encode()).hexdigest(),
            "image": c["image"] if "/" in c["image"] else "docker.io/library/" + c["image"],
            "imageID": c["image"].split(":")[0] + "@sha256:" + hashlib.sha256(c["image"].encode()).hexdigest(),
            "lastState": {}, "name": c["name"], "ready": ready, "restartCount": restarts, "started": True,
            "state": {"running": {"startedAt": started or created}}})
    spec["volumes"] = vols + [v for c in containers for v in c.get("volumes", [])]
    if extra_spec:
        spec.update(extra_spec)
    started = started or created
    conds = [
        {"lastProbeTime": None, "lastTransitionTime": started, "status": "True", "type": "PodReadyToStartContainers"},
        {"lastProbeTime": None, "lastTransitionTime": created, "status": "True", "type": "Initialized"},
        {"lastProbeTime": None, "lastTransitionTime": ts(12, 10, 2, 44) if not ready else started,
         "status": "True" if ready else "False", "type": "Ready",
         **({} if ready else {"message": f"containers with unready status: [{containers[0]['name']}]",
                              "reason": "ContainersNotReady"})},
        {"lastProbeTime": None, "lastTransitionTime": ts(12, 10, 2, 44) if not ready else started,
         "status": "True" if ready else "False", "type": "ContainersReady",
         **({} if ready else {"message": f"containers with unready status: [{containers[0]['name']}]",
                              "reason": "ContainersNotReady"})},
        {"lastProbeTime": None, "lastTransitionTime": created, "status": "True", "type": "PodScheduled"}]
    status = {"conditions": conds, "containerStatuses": statuses, "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
              "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "qosClass": qos, "startTime": created}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec, "status": status}


def host_path(name, path, typ=None):
    hp = {"path": path}
    if typ:
        hp["type"] = typ
    return {"hostPath": hp, "name": name}


# ---- pods ---------------------------------------------------------------------------------------------
PODS = []
CP = ("kube-system", "Node", "cp-1")


def static(component, image, command, cpu):
    PODS.append(pod("kube-system", f"{component}-cp-1", "cp-1", None, {"component": component, "tier": "control-plane"},
                    [{"name": component, "image": f"registry.k8s.io/{image}", "command": command,
                      "resources": {"requests": {"cpu": cpu}},
                      "livenessProbe": {"failureThreshold": 8, "httpGet": {
                          "host": "127.0.0.1" if component != "kube-apiserver" else "10.0.1.10",
                          "path": "/livez" if component == "kube-apiserver" else ("/healthz" if component != "etcd" else "/livez"),
                          "port": {"kube-apiserver": 6443, "kube-controller-manager": 10257,
                                   "kube-scheduler": 10259, "etcd": 2381}[component],
                          "scheme": "HTTP" if component == "etcd" else "HTTPS"},
                          "initialDelaySeconds": 10, "periodSeconds": 10, "successThreshold": 1, "timeoutSeconds": 15},
                      "volumes": [host_path("k8s-certs", "/etc/kubernetes/pki", "DirectoryOrCreate")],
                      "mounts": [{"mountPath": "/etc/kubernetes/pki", "name": "k8s-certs", "readOnly": True}]}],
                    owner=("Node", "cp-1"), host_network=True, created=T0, tolerations=[{"effect": "NoExecute", "operator": "Exists"}],
                    priority="system-node-critical", qos="Burstable",
                    annotations={"kubernetes.io/config.hash": hashlib.md5(component.encode()).hexdigest(),
                                 "kubernetes.io/config.mirror": hashlib.md5(component.encode()).hexdigest(),
                                 "kubernetes.io/config.seen": "2026-02-02T09:11:48.402766291Z",
                                 "kubernetes.io/config.source": "file",
                                 **({"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": "10.0.1.10:6443"}
                                    if component == "kube-apiserver" else {}),
                                 **({"kubeadm.kubernetes.io/etcd.advertise-client-urls": "https://10.0.1.10:2379"}
                                    if component == "etcd" else {})}))


static("etcd", "etcd:3.5.15-0", ["etcd", "--advertise-client-urls=https://10.0.1.10:2379",
                                   "--cert-file=/etc/kubernetes/pki/etcd/server.crt", "--client-cert-auth=true",
                                   "--data-dir=/var/lib/etcd", "--listen-client-urls=https://127.0.0.1:2379,https://10.0.1.10:2379",
                                   "--listen-metrics-urls=http://127.0.0.1:2381",
                                   "--listen-peer-urls=https://10.0.1.10:2380", "--name=cp-1"], "100m")
static("kube-apiserver", "kube-apiserver:v1.31.4", [
    "kube-apiserver", "--advertise-address=10.0.1.10", "--allow-privileged=true", "--authorization-mode=Node,RBAC",
    "--client-ca-file=/etc/kubernetes/pki/ca.crt", "--enable-admission-plugins=NodeRestriction",
    "--enable-bootstrap-token-auth=true", "--etcd-servers=https://127.0.0.1:2379",
    "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname", "--secure-port=6443",
    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
    "--service-account-key-file=/etc/kubernetes/pki/sa.pub",
    "--service-cluster-ip-range=10.96.0.0/16", "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt",
    "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key"], "250m")
static("kube-controller-manager", "kube-controller-manager:v1.31.4", [
    "kube-controller-manager", "--allocate-node-cidrs=true", "--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf",
    "--authorization-kubeconfig=/etc/kubernetes/controller-manager.conf", "--bind-address=127.0.0.1",
    "--client-ca-file=/etc/kubernetes/pki/ca.crt", "--cluster-cidr=10.244.0.0/16", "--cluster-name=kubernetes",
    "--cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt", "--controllers=*,bootstrapsigner,tokencleaner",
    "--kubeconfig=/etc/kubernetes/controller-manager.conf", "--leader-elect=true",
    "--service-cluster-ip-range=10.96.0.0/16", "--use-service-account-credentials=true"], "200m")
static("kube-scheduler", "kube-scheduler:v1.31.4", [
    "kube-scheduler", "--authentication-kubeconfig=/etc/kubernetes/scheduler.conf",
    "--authorization-kubeconfig=/etc/kubernetes/scheduler.conf", "--bind-address=127.0.0.1",
    "--kubeconfig=/etc/kubernetes/scheduler.conf", "--leader-elect=true"], "100m")

for node_name, suffix in (("cp-1", "2lh6d"), ("worker-1", "8vjnf"), ("worker-2", "x7w4c")):
    PODS.append(pod("kube-system", f"kube-proxy-{suffix}", node_name, None,
                    {"controller-revision-hash": "6c9d8f7b5c", "k8s-app": "kube-proxy", "pod-template-generation": "1"},
                    [{"name": "kube-proxy", "image": "registry.k8s.io/kube-proxy:v1.31.4",
                      "command": ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf",
                                  "--hostname-override=$(NODE_NAME)"],
                      "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                                               "fieldPath": "spec.nodeName"}}}],
                      "securityContext": {"privileged": True},
                      "volumes": [{"configMap": {"defaultMode": 420, "name": "kube-proxy"}, "name": "kube-proxy"},
                                  host_path("xtables-lock", "/run/xtables.lock", "FileOrCreate"),
                                  host_path("lib-modules", "/lib/modules")],
                      "mounts": [{"mountPath": "/var/lib/kube-proxy", "name": "kube-proxy"},
                                 {"mountPath": "/run/xtables.lock", "name": "xtables-lock"},
                                 {"mountPath": "/lib/modules", "name": "lib-modules", "readOnly": True}]}],
                    owner=("DaemonSet", "kube-proxy"), host_network=True, created=T0 if node_name == "cp-1" else T1,
                    tolerations=DS_TOLERATIONS, priority="system-node-critical", sa="kube-proxy",
                    extra_spec={"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                                "values": [node_name]}]}]}}},
                                "nodeSelector": {"kubernetes.io/os": "linux"}}))

DNS_PORTS = [{"containerPort": 53, "name": "dns", "protocol": "UDP"},
             {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
             {"containerPort": 9153, "name": "metrics", "protocol": "TCP"}]
for suffix, ip in (("5xkqv", "10.244.0.2"), ("hwk8t", "10.244.0.3")):
    PODS.append(pod("kube-system", f"coredns-7db6d8ff4d-{suffix}", "cp-1", ip,
                    {"k8s-app": "kube-dns", "pod-template-hash": "7db6d8ff4d"},
                    [{"name": "coredns", "image": "registry.k8s.io/coredns/coredns:v1.11.3",
                      "args": ["-conf", "/etc/coredns/Corefile"], "ports": DNS_PORTS,
                      "resources": {"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}},
                      "readinessProbe": {"failureThreshold": 3, "httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"},
                                         "periodSeconds": 10, "successThreshold": 1, "timeoutSeconds": 1},
                      "volumes": [{"configMap": {"defaultMode": 420, "items": [{"key": "Corefile", "path": "Corefile"}],
                                                 "name": "coredns"}, "name": "config-volume"}],
                      "mounts": [{"mountPath": "/etc/coredns", "name": "config-volume", "readOnly": True}]}],
                    owner=("ReplicaSet", "coredns-7db6d8ff4d"), created=ts(2, 9, 13),
                    tolerations=[{"key": "CriticalAddonsOnly", "operator": "Exists"},
                                 {"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}] + DEFAULT_TOLERATIONS,
                    priority="system-cluster-critical", sa="coredns", qos="Burstable", started=ts(2, 9, 26),
                    extra_spec={"dnsPolicy": "Default", "nodeSelector": {"kubernetes.io/os": "linux"}}))

for node_name, suffix in (("cp-1", "4xq7m"), ("worker-1", "9trbk"), ("worker-2", "vz2lp")):
    PODS.append(pod("kube-flannel", f"kube-flannel-ds-{suffix}", node_name, None,
                    {"app": "flannel", "controller-revision-hash": "5b8b4c6c7d", "pod-template-generation": "1",
                     "tier": "node"},
                    [{"name": "kube-flannel", "image": "docker.io/flannel/flannel:v0.26.1",
                      "command": ["/opt/bin/flanneld", "--ip-masq", "--kube-subnet-mgr"],
                      "resources": {"requests": {"cpu": "100m", "memory": "50Mi"}},
                      "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}, "privileged": False},
                      "volumes": [host_path("run", "/run/flannel"), host_path("cni-plugin", "/opt/cni/bin")],
                      "mounts": [{"mountPath": "/run/flannel", "name": "run"}]}],
                    owner=("DaemonSet", "kube-flannel-ds"), host_network=True, created=ts(2, 9, 15) if node_name == "cp-1" else T1,
                    tolerations=[{"effect": "NoSchedule", "operator": "Exists"}] + DEFAULT_TOLERATIONS,
                    priority="system-node-critical", sa="flannel", qos="Burstable"))

# MetalLB (L2 mode): the controller assigns LoadBalancer IPs, a speaker per node announces them
PODS.append(pod("metallb-system", "controller-86f5578878-wq5sk", "worker-1", "10.244.1.6",
                {"app": "metallb", "component": "controller", "pod-template-hash": "86f5578878"},
                [{"name": "controller", "image": "quay.io/metallb/controller:v0.14.8",
                  "args": ["--port=7472", "--log-level=info", "--tls-min-version=VersionTLS12"],
                  "ports": [{"containerPort": 7472, "name": "monitoring", "protocol": "TCP"},
                            {"containerPort": 9443, "name": "webhook-server", "protocol": "TCP"}]}],
                owner=("ReplicaSet", "controller-86f5578878"), created=ts(2, 9, 40), sa="controller",
                extra_spec={"nodeSelector": {"kubernetes.io/os": "linux"}}))
for node_name, suffix in (("cp-1", "7kzrb"), ("worker-1", "m4tnq"), ("worker-2", "fd8xs")):
    PODS.append(pod("metallb-system", f"speaker-{suffix}", node_name, None,
                    {"app": "metallb", "component": "speaker", "controller-revision-hash": "7c8f5b4d96",
                     "pod-template-generation": "1"},
                    [{"name": "speaker", "image": "quay.io/metallb/speaker:v0.14.8",
                      "args": ["--port=7472", "--log-level=info"],
                      "ports": [{"containerPort": 7472, "hostPort": 7472, "name": "monitoring", "protocol": "TCP"},
                                {"containerPort": 7946, "hostPort": 7946, "name": "memberlist-tcp", "protocol": "TCP"},
                                {"containerPort": 7946, "hostPort": 7946, "name": "memberlist-udp", "protocol": "UDP"}],
                      "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"add": ["NET_RAW"], "drop": ["ALL"]},
                                          "readOnlyRootFilesystem": True}}],
                    owner=("DaemonSet", "speaker"), host_network=True, created=ts(2, 9, 40), sa="speaker",
                    tolerations=[{"effect": "NoSchedule", "key": "node-role.kubernetes.io/master", "operator": "Exists"},
                                 {"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]
                    + DEFAULT_TOLERATIONS,
                    extra_spec={"nodeSelector": {"kubernetes.io/os": "linux"}}))

WEB = {"name": "web", "image": "nginx:1.27.0", "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
       "readinessProbe": {"failureThreshold": 3, "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                          "periodSeconds": 5, "successThreshold": 1, "timeoutSeconds": 1},
       "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}
for suffix, node_name, ip in (("2xkqp", "worker-1", "10.244.1.2"), ("8mzt4", "worker-2", "10.244.2.2"),
                              ("qr9vn", "worker-1", "10.244.1.3")):
    PODS.append(pod("shop", f"web-6b7f9c8d5f-{suffix}", node_name, ip, {"app": "web", "pod-template-hash": "6b7f9c8d5f"},
                    [WEB], owner=("ReplicaSet", "web-6b7f9c8d5f"), created=T3, qos="Burstable"))
# the last pod of the old ReplicaSet, still shutting down when the dump was taken
PODS.append(pod("shop", "web-5c8d7b9f4d-jj5wz", "worker-2", "10.244.2.3", {"app": "web", "pod-template-hash": "5c8d7b9f4d"},
                [dict(WEB, image="nginx:1.26.1")], owner=("ReplicaSet", "web-5c8d7b9f4d"), created=T2,
                terminating=ts(12, 10, 31, 35), qos="Burstable"))
API = {"name": "api", "image": "ghcr.io/example/shop-api:2.4.1",
       "ports": [{"containerPort": 9000, "name": "grpc", "protocol": "TCP"}],
       "readinessProbe": {"failureThreshold": 3, "grpc": {"port": 9000, "service": ""}, "periodSeconds": 10,
                          "successThreshold": 1, "timeoutSeconds": 1},
       "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "500m", "memory": "256Mi"}}}
PODS.append(pod("shop", "api-5d4f8b7c9-k7w2x", "worker-1", "10.244.1.4", {"app": "api", "pod-template-hash": "5d4f8b7c9"},
                [API], owner=("ReplicaSet", "api-5d4f8b7c9"), qos="Guaranteed"))
# its readiness probe fails: Running, not Ready
PODS.append(pod("shop", "api-5d4f8b7c9-t9p6z", "worker-2", "10.244.2.4", {"app": "api", "pod-template-hash": "5d4f8b7c9"},
                [API], owner=("ReplicaSet", "api-5d4f8b7c9"), ready=False, qos="Guaranteed", restarts=3))
FRONT = {"name": "frontend", "image": "ghcr.io/example/shop-frontend:1.9.0",
         "ports": [{"containerPort": 3000, "name": "http", "protocol": "TCP"}]}
for suffix, ip in (("hq2bd", "10.244.2.5"), ("zx7mt", "10.244.2.6")):
    PODS.append(pod("shop", f"frontend-7c6d9b8f5-{suffix}", "worker-2", ip,
                    {"app": "frontend", "pod-template-hash": "7c6d9b8f5"}, [FRONT],
                    owner=("ReplicaSet", "frontend-7c6d9b8f5")))
PODS.append(pod("shop", "db-0", "worker-1", "10.244.1.5",
                {"app": "db", "apps.kubernetes.io/pod-index": "0", "controller-revision-hash": "db-7b9f8c6d4",
                 "statefulset.kubernetes.io/pod-name": "db-0"},
                [{"name": "postgres", "image": "postgres:16.3",
                  "ports": [{"containerPort": 5432, "name": "postgres", "protocol": "TCP"}]}],
                owner=("StatefulSet", "db"), hostname="db-0", subdomain="db"))
PODS.append(pod("shop", "debug", "worker-1", "10.244.1.7", {"run": "debug"},
                [{"name": "debug", "image": "nicolaka/netshoot:v0.13", "args": ["sleep", "infinity"]}],
                created=ts(12, 10, 20)))


# ---- services and their slices -------------------------------------------------------------------------
SERVICES, SLICES = [], []


def service(ns, name, spec, labels=None, annotations=None, status=None, created=T2):
    md = {"creationTimestamp": created, "name": name, "namespace": ns, "resourceVersion": rv(),
          "uid": uid(f"svc/{ns}/{name}")}
    if labels:
        md["labels"] = labels
    if annotations:
        md["annotations"] = annotations
    full = {"internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "sessionAffinity": "None"}
    if spec.get("type") == "ExternalName":
        full = {"sessionAffinity": "None"}
    full.update(spec)
    if full.get("clusterIP"):
        full["clusterIPs"] = [full["clusterIP"]]
    SERVICES.append({"apiVersion": "v1", "kind": "Service", "metadata": md, "spec": full,
                     "status": status or {"loadBalancer": {}}})
    return md


def ep_for(p, hostname=None):
    pd = next(x for x in PODS if x["metadata"]["name"] == p)
    ready = next(c["status"] == "True" for c in pd["status"]["conditions"] if c["type"] == "Ready")
    term = "deletionTimestamp" in pd["metadata"]
    node_name = pd["spec"]["nodeName"]
    out = {"addresses": [pd["status"]["podIP"]],
           "conditions": {"ready": ready and not term, "serving": ready, "terminating": term}}
    if hostname:
        out["hostname"] = hostname
    out.update({"nodeName": node_name,
                "targetRef": {"kind": "Pod", "name": p, "namespace": pd["metadata"]["namespace"],
                              "uid": pd["metadata"]["uid"]},
                "zone": NODE[node_name][3]})
    return out


def eslice(ns, svc, name, endpoints, ports, svc_labels=None, managed=True, headless=False, created=T2):
    labels = dict(svc_labels or {})
    if managed:
        labels["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io"
    labels["kubernetes.io/service-name"] = svc
    if headless:
        labels["service.kubernetes.io/headless"] = ""
    md = {"creationTimestamp": created, "labels": labels, "name": name, "namespace": ns,
          "resourceVersion": rv(), "uid": uid(f"slice/{ns}/{name}")}
    if managed:
        md["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": ts(12, 10, 31, 5)}
        md["generateName"] = svc + "-"
        md["ownerReferences"] = [{"apiVersion": "v1", "blockOwnerDeletion": True, "controller": True,
                                  "kind": "Service", "name": svc, "uid": uid(f"svc/{ns}/{svc}")}]
    SLICES.append({"addressType": "IPv4", "apiVersion": "discovery.k8s.io/v1", "endpoints": endpoints,
                   "kind": "EndpointSlice", "metadata": md, "ports": ports})


service("default", "kubernetes", {"clusterIP": "10.96.0.1", "ports": [
    {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}], "type": "ClusterIP"},
    labels={"component": "apiserver", "provider": "kubernetes"}, created=T0)
eslice("default", "kubernetes", "kubernetes", [{"addresses": ["10.0.1.10"], "conditions": {"ready": True}}],
       [{"name": "https", "port": 6443, "protocol": "TCP"}], managed=False, created=T0)

dns_labels = {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}
service("kube-system", "kube-dns", {"clusterIP": "10.96.0.10", "ports": [
    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
    {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}],
    "selector": {"k8s-app": "kube-dns"}, "type": "ClusterIP"}, labels=dns_labels,
    annotations={"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}, created=T0)
eslice("kube-system", "kube-dns", "kube-dns-t5vwq",
       [ep_for("coredns-7db6d8ff4d-5xkqv"), ep_for("coredns-7db6d8ff4d-hwk8t")],
       [{"name": "dns-tcp", "port": 53, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "metrics", "port": 9153, "protocol": "TCP"}], svc_labels=dns_labels, created=T0)

service("metallb-system", "metallb-webhook-service", {"clusterIP": "10.96.144.7", "ports": [
    {"port": 443, "protocol": "TCP", "targetPort": 9443}], "selector": {"component": "controller"},
    "type": "ClusterIP"}, created=ts(2, 9, 40))
eslice("metallb-system", "metallb-webhook-service", "metallb-webhook-service-b7r2c",
       [ep_for("controller-86f5578878-wq5sk")], [{"name": "", "port": 9443, "protocol": "TCP"}], created=ts(2, 9, 40))

service("shop", "web", {"clusterIP": "10.96.37.120", "ports": [
    {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}], "selector": {"app": "web"},
    "type": "ClusterIP"}, labels={"app": "web"})
eslice("shop", "web", "web-7xk2p", [ep_for(p) for p in ("web-5c8d7b9f4d-jj5wz", "web-6b7f9c8d5f-2xkqp",
                                                         "web-6b7f9c8d5f-8mzt4", "web-6b7f9c8d5f-qr9vn")],
       [{"name": "http", "port": 8080, "protocol": "TCP"}], svc_labels={"app": "web"})

service("shop", "api", {"clusterIP": "10.96.112.33", "externalTrafficPolicy": "Cluster", "ports": [
    {"name": "grpc", "nodePort": 30900, "port": 9000, "protocol": "TCP", "targetPort": 9000}],
    "selector": {"app": "api"}, "type": "NodePort"}, labels={"app": "api"})
eslice("shop", "api", "api-9qz4m", [ep_for("api-5d4f8b7c9-k7w2x"), ep_for("api-5d4f8b7c9-t9p6z")],
       [{"name": "grpc", "port": 9000, "protocol": "TCP"}], svc_labels={"app": "api"})

service("shop", "frontend", {"allocateLoadBalancerNodePorts": True, "clusterIP": "10.96.208.91",
                             "externalTrafficPolicy": "Local", "healthCheckNodePort": 32415, "ports": [
    {"name": "http", "nodePort": 31380, "port": 80, "protocol": "TCP", "targetPort": "http"}],
    "selector": {"app": "frontend"}, "type": "LoadBalancer"},
    annotations={"metallb.universe.tf/ip-allocated-from-pool": "public"},
    status={"loadBalancer": {"ingress": [{"ip": "203.0.113.10", "ipMode": "VIP"}]}})
eslice("shop", "frontend", "frontend-hx6wd", [ep_for("frontend-7c6d9b8f5-hq2bd"), ep_for("frontend-7c6d9b8f5-zx7mt")],
       [{"name": "http", "port": 3000, "protocol": "TCP"}])

service("shop", "db", {"clusterIP": "None", "ports": [
    {"name": "postgres", "port": 5432, "protocol": "TCP", "targetPort": 5432}], "selector": {"app": "db"},
    "type": "ClusterIP"}, labels={"app": "db"})
eslice("shop", "db", "db-4bm8r", [ep_for("db-0", hostname="db-0")],
       [{"name": "postgres", "port": 5432, "protocol": "TCP"}], svc_labels={"app": "db"}, headless=True)

service("shop", "payments", {"externalName": "api.payments.example.com", "type": "ExternalName"})

# a Service without a selector, and the slice its owners maintain by hand (a VM outside the cluster)
service("shop", "legacy-billing", {"clusterIP": "10.96.201.15", "ports": [
    {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}], "type": "ClusterIP"})
eslice("shop", "legacy-billing", "legacy-billing-1",
       [{"addresses": ["10.0.2.50"], "conditions": {"ready": True}}],
       [{"name": "http", "port": 8080, "protocol": "TCP"}], managed=False)
SLICES[-1]["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] = "staff"


def key(o):
    return (o["metadata"].get("namespace", ""), o["metadata"]["name"])


items = [node(*n) for n in NODES] + sorted(PODS, key=key) + sorted(SERVICES, key=key) + sorted(SLICES, key=key)
doc = {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


class KubectlDumper(yaml.SafeDumper):
    """go-yaml's choice: a string that would read back as another type is double-quoted."""


def _str(dumper, value):
    tag = dumper.resolve(yaml.ScalarNode, value, (True, False))
    style = '"' if tag != "tag:yaml.org,2002:str" or value == "" else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


KubectlDumper.add_representer(str, _str)
text = yaml.dump(doc, Dumper=KubectlDumper, sort_keys=True, default_flow_style=False, width=10_000)
with open(OUT, "w") as f:
    f.write(text)
print(OUT, len(items), "objects,", len(text.splitlines()), "lines")
