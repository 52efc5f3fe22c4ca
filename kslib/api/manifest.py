"""Real Kubernetes manifests in and out: multi-document YAML, JSON, ``kind: List`` (what
``kubectl get -o yaml`` prints), file paths, dicts, and lists of any of these."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path as FsPath

import yaml

from .endpointslice import EndpointSlice
from .node import Node
from .pod import Pod
from .service import Service
from .workloads import Deployment, StatefulSet

KINDS = {"Node": Node, "Pod": Pod, "Service": Service, "EndpointSlice": EndpointSlice,
         "Deployment": Deployment, "StatefulSet": StatefulSet}
# Kinds a manifest may carry that have no bearing on Service networking: accepted and left out.
IGNORED_KINDS = {"Namespace", "ConfigMap", "Secret", "ServiceAccount", "Endpoints", "ReplicaSet",
                 "ControllerRevision", "Event", "Ingress", "IngressClass", "NetworkPolicy", "Role",
                 "RoleBinding", "ClusterRole", "ClusterRoleBinding", "PodDisruptionBudget",
                 "HorizontalPodAutoscaler", "DaemonSet", "Job", "CronJob", "PersistentVolumeClaim",
                 "PersistentVolume", "StorageClass", "CustomResourceDefinition", "Lease"}


class ManifestError(ValueError):
    """Text that is not a manifest: names the source, the document and the line."""


def _documents(text: str, source: str):
    """Yield (document number, first line, data) for each YAML/JSON document in ``text``."""
    loader = yaml.SafeLoader(text)
    n = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            n += 1
            line = node.start_mark.line + 1 if node is not None else 0
            yield n, line, loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = e.problem or e.context or "not valid YAML"
        raise ManifestError(f"{source}: document {n + 1}{where}: {problem}") from None
    except yaml.YAMLError as e:
        raise ManifestError(f"{source}: document {n + 1}: {e}") from None
    finally:
        loader.dispose()


def _flatten(data, source: str, doc: int, line: int, out: list):
    """A document may hold one object, a ``kind: List`` or a bare list of objects."""
    where = f"{source}: document {doc} (line {line})"
    if data is None:
        return
    if isinstance(data, list):
        for item in data:
            _flatten(item, source, doc, line, out)
        return
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected a Kubernetes object (a mapping with apiVersion and kind), "
                            f"got {type(data).__name__} {str(data)[:40]!r}")
    kind = data.get("kind")
    if kind is None:
        raise ManifestError(f"{where}: object has no 'kind'")
    if kind == "List" or (isinstance(kind, str) and kind.endswith("List") and "items" in data):
        for item in data.get("items") or []:
            _flatten(item, source, doc, line, out)
        return
    if "apiVersion" not in data:
        raise ManifestError(f"{where}: {kind} has no 'apiVersion'")
    out.append((data, where))


def read_manifests(manifests) -> list[tuple[dict, str]]:
    """Every object dict in ``manifests`` with a note of where it came from."""
    out: list[tuple[dict, str]] = []
    if isinstance(manifests, dict):
        _flatten(manifests, "manifest", 1, 1, out)
    elif isinstance(manifests, (list, tuple)):
        for m in manifests:
            out += read_manifests(m)
    elif isinstance(manifests, os.PathLike) or (isinstance(manifests, str) and _looks_like_path(manifests)):
        path = FsPath(manifests)
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json")) \
            if path.is_dir() else [path]
        for f in files:
            out += _read_text(f.read_text(), str(f))
    elif isinstance(manifests, str):
        out += _read_text(manifests, "manifest")
    elif hasattr(manifests, "to_dict"):
        _flatten(manifests.to_dict(), "object", 1, 1, out)
    else:
        raise ManifestError(f"cannot read manifests from {type(manifests).__name__}: give YAML or JSON text, "
                            "a path, a dict or a list of these")
    return out


def _looks_like_path(s: str) -> bool:
    if "\n" in s or ": " in s or s.lstrip().startswith(("{", "[")):
        return False
    if os.path.exists(s):
        return True
    if s.endswith((".yaml", ".yml", ".json")):
        raise ManifestError(f"manifest file {s!r} does not exist")
    return False


def _read_text(text: str, source: str) -> list[tuple[dict, str]]:
    out: list[tuple[dict, str]] = []
    if text.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ManifestError(f"{source}: document 1, line {e.lineno}, column {e.colno}: {e.msg}") from None
        _flatten(data, source, 1, 1, out)
        return out
    for n, line, data in _documents(text, source):
        _flatten(data, source, n, line, out)
    return out


def decode(data: dict, where: str = "manifest"):
    """One object dict -> the kslib object of its kind (None for kinds kslib leaves out)."""
    kind = data.get("kind")
    cls = KINDS.get(kind)
    if cls is None:
        if kind not in IGNORED_KINDS:
            warnings.warn(f"{where}: kind {kind!r} is not modelled by kslib and was left out", stacklevel=3)
        return None
    return cls.from_dict(data)


def load(manifests) -> list:
    """Parse manifests into kslib objects (Pods, Services, Nodes, ...), in document order."""
    objs = []
    for data, where in read_manifests(manifests):
        obj = decode(data, where)
        if obj is not None:
            objs.append(obj)
    return objs


def dump(objects, as_list: bool = False) -> str:
    """YAML text for objects: multi-document, or one ``kind: List`` as ``kubectl get -o yaml`` prints."""
    dicts = [o.to_dict() if hasattr(o, "to_dict") else o for o in objects]
    if as_list:
        return yaml.safe_dump({"apiVersion": "v1", "items": dicts, "kind": "List",
                               "metadata": {"resourceVersion": ""}}, sort_keys=False)
    return yaml.safe_dump_all(dicts, sort_keys=False, explicit_start=True)
