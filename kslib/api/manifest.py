"""Real Kubernetes manifests in and out: multi-document YAML, JSON, ``kind: List`` (what
``kubectl get -o yaml`` prints), file paths, dicts, and lists of any of these."""
from __future__ import annotations

import json
import os
import re
import reprlib
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
# kind -> the apiVersion kslib serves it as (the only one a current API server serves)
API_VERSIONS = {"Node": "v1", "Pod": "v1", "Service": "v1", "EndpointSlice": "discovery.k8s.io/v1",
                "Deployment": "apps/v1", "StatefulSet": "apps/v1"}
# Kinds a manifest may carry that have no bearing on Service networking: accepted and left out.
IGNORED_KINDS = {"Namespace", "ConfigMap", "Secret", "ServiceAccount", "Endpoints", "ReplicaSet",
                 "ControllerRevision", "Event", "Ingress", "IngressClass", "NetworkPolicy", "Role",
                 "RoleBinding", "ClusterRole", "ClusterRoleBinding", "PodDisruptionBudget",
                 "HorizontalPodAutoscaler", "DaemonSet", "Job", "CronJob", "PersistentVolumeClaim",
                 "PersistentVolume", "StorageClass", "CustomResourceDefinition", "Lease"}


class ManifestError(ValueError):
    """Text that is not a manifest: names the source, the document and the line."""


# The API server refuses a request body over 3 MiB (k8s.io/apiserver pkg/server/config.go
# MaxRequestBodyBytes; handlers/rest.go limitedReadBody: "Request entity too large: limit is 3145728").
# kubectl sends one object per request, so the limit is per object: a document's text is measured
# before it is parsed (PyYAML reads about 150 KB/s, so a 10 MB document is refused, not parsed), and
# each object's JSON size, aliases expanded, after.
MAX_OBJECT_BYTES = 3 * 1024 * 1024
# go-yaml (what sigs.k8s.io/yaml decodes with) refuses "exceeded max depth of 10000"; PyYAML's composer
# and Python's copy and repr recurse, so kslib stops far sooner. No object kslib models nests past 12.
MAX_DEPTH = 100
TOO_LARGE = f"Request entity too large: limit is {MAX_OBJECT_BYTES}"


def _line_col(text: str, pos: int) -> tuple[int, int]:
    """1-based line and column of ``text[pos]``."""
    start = text.rfind("\n", 0, pos) + 1
    return text.count("\n", 0, pos) + 1, pos - start + 1


def _excessive_aliasing(decoded: int, aliased: int) -> bool:
    """go-yaml's guard against alias bombs (decode.go allowedAliasRatio, the fix of CVE-2019-11253):
    past 100 aliased and 1,000 decoded nodes, at most 99% of a document may come from expanding
    aliases, scaling down to 10% between 400,000 and 4,000,000 decoded nodes."""
    if aliased <= 100 or decoded <= 1000:
        return False
    lo, hi = 400_000, 4_000_000
    allowed = 0.99 if decoded <= lo else 0.10 if decoded >= hi else 0.99 - 0.89 * (decoded - lo) / (hi - lo)
    return aliased / decoded > allowed


class _Loader(yaml.SafeLoader):
    """PyYAML's SafeLoader with go-yaml's defences: a nesting limit, no anchor whose value holds an
    alias of itself, no document that is mostly alias expansion (the billion laughs); and a scalar
    it cannot construct (a date 2026-13-45, an integer of more than 4300 digits) is an error at its line."""

    def __init__(self, text: str):
        super().__init__(text)
        self._depth = 0
        self._open: set[str] = set()

    def compose_document(self):
        self._sizes: dict[int, int] = {}            # id(node) -> nodes it expands to
        self._decoded = self._aliased = 0
        return super().compose_document()

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise yaml.composer.ComposerError(None, None, f"anchor {event.anchor!r} value contains itself",
                                                  event.start_mark)
            node = super().compose_node(parent, index)
            n = self._size(node)
            self._decoded, self._aliased = self._decoded + n, self._aliased + n
            if _excessive_aliasing(self._decoded, self._aliased):
                raise yaml.composer.ComposerError(None, None, "document contains excessive aliasing",
                                                  event.start_mark)
            return node
        if self._depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"exceeded max depth of {MAX_DEPTH}", event.start_mark)
        self._depth += 1
        if event.anchor is not None:
            self._open.add(event.anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open.discard(event.anchor)
        self._decoded += 1
        return node

    def _size(self, node) -> int:
        n = self._sizes.get(id(node))
        if n is None:
            if isinstance(node, yaml.SequenceNode):
                n = 1 + sum(self._size(c) for c in node.value)
            elif isinstance(node, yaml.MappingNode):
                n = 1 + sum(self._size(k) + self._size(v) for k, v in node.value)
            else:
                n = 1
            self._sizes[id(node)] = n
        return n

    def construct_yaml_timestamp(self, node):
        # sigs.k8s.io/yaml turns YAML into JSON, where a timestamp stays the string it was written as
        return self.construct_scalar(node)

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as e:
            shown = node.value if isinstance(node.value, str) else ""
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot decode {shown!r} as {node.tag.rsplit(':', 1)[-1]}: {str(e).split(';')[0]}",
                node.start_mark) from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def _documents(text: str, source: str):
    """Yield (document number, first line, data) for each YAML/JSON document in ``text``."""
    loader, n = None, 0
    try:
        loader = _Loader(text)            # refuses a control character at once
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
    except yaml.reader.ReaderError as e:
        # a control character: PyYAML names its offset only
        line, col = _line_col(text, e.position)
        raise ManifestError(f"{source}: document {n + 1}, line {line}, column {col}: "
                            f"control character U+{e.character:04X} is not allowed") from None
    except yaml.YAMLError as e:
        raise ManifestError(f"{source}: document {n + 1}, line {loader.line + 1 if loader else 1}: {e}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _shape(data, where: str) -> dict[int, int]:
    """Check a decoded document's nesting and find each container's JSON size, shared parts counted
    as often as they appear (so a small text that expands to much is large); id -> bytes."""
    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}
    open_: set[int] = set()
    stack = [(data, False)]
    while stack:
        obj, done = stack.pop()
        if not isinstance(obj, (dict, list, tuple)):
            continue
        oid = id(obj)
        children = list(obj.values()) if isinstance(obj, dict) else obj
        if done:
            open_.discard(oid)
            size, height = 2 + len(children), 1
            for c in children:
                if isinstance(c, (dict, list, tuple)):
                    size, height = size + sizes[id(c)], max(height, heights[id(c)] + 1)
                else:
                    size += _leaf_size(c)
            if isinstance(obj, dict):
                size += sum(_leaf_size(k) + 1 for k in obj)
            sizes[oid], heights[oid] = size, height
            if height > MAX_DEPTH:
                raise ManifestError(f"{where}: exceeded max depth of {MAX_DEPTH}")
            continue
        if oid in sizes:
            continue
        if oid in open_:
            raise ManifestError(f"{where}: the object contains itself")
        open_.add(oid)
        stack.append((obj, True))
        for c in children:
            if isinstance(c, (dict, list, tuple)):
                if id(c) not in sizes:
                    stack.append((c, False))
            elif not isinstance(c, JSON_LEAVES):
                _not_json(data, where)
        if isinstance(obj, dict) and not all(isinstance(k, JSON_LEAVES) for k in obj):
            _not_json(data, where)
    return sizes


# What a JSON body can carry (a dict given to apply may hold anything; the API server gets JSON)
JSON_LEAVES = (str, int, float, bool, type(None))


def _not_json(data, where: str):
    """Name the first value (or key) in ``data`` that JSON cannot carry."""
    stack = [(data, "")]
    while stack:
        obj, path = stack.pop()
        items = obj.items() if isinstance(obj, dict) else enumerate(obj)
        for k, v in items:
            p = f"{path}[{k}]" if not isinstance(obj, dict) else f"{path}.{k}" if path else str(k)
            if isinstance(obj, dict) and not isinstance(k, JSON_LEAVES):
                raise ManifestError(f"{where}: {path or '.'}: Invalid value: key {_excerpt(k)}: "
                                    "a JSON object's keys are strings")
            if isinstance(v, (dict, list, tuple)):
                stack.append((v, p))
            elif not isinstance(v, JSON_LEAVES):
                raise ManifestError(f"{where}: {p}: Invalid value: {_excerpt(v)}: not a JSON value "
                                    "(a string, number, boolean, null, list or object)")


def _leaf_size(v) -> int:
    if isinstance(v, str):
        return len(v) + 2
    if isinstance(v, int) and not isinstance(v, bool):
        return v.bit_length() * 3 // 10 + 2
    return 8


def _flatten(data, source: str, doc: int, line: int, out: list, sizes: dict | None = None):
    """A document may hold one object, a ``kind: List`` or a bare list of objects."""
    where = f"{source}: document {doc} (line {line})"
    if sizes is None:
        sizes = _shape(data, where)
    if data is None:
        return
    if isinstance(data, (list, tuple)):
        for item in data:
            _flatten(item, source, doc, line, out, sizes)
        return
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected a Kubernetes object (a mapping with apiVersion and kind), "
                            f"got {type(data).__name__} {_excerpt(data)}")
    kind = data.get("kind")
    if kind is None:
        raise ManifestError(f"{where}: object has no 'kind'")
    if not isinstance(kind, str):
        # the decoder: "json: cannot unmarshal array into Go struct field .kind of type string"
        raise ManifestError(f"{where}: kind: Invalid value: {_excerpt(kind)}: must be a string")
    version = data.get("apiVersion")
    if version is not None and not isinstance(version, str):
        raise ManifestError(f"{where}: apiVersion: Invalid value: {_excerpt(version)}: must be a string")
    if kind == "List" or (kind.endswith("List") and "items" in data):
        items = data.get("items")
        if items is not None and not isinstance(items, list):
            raise ManifestError(f"{where}: items: Invalid value: {_excerpt(items)}: must be a list")
        for i, item in enumerate(items or []):
            if not isinstance(item, dict):
                raise ManifestError(f"{where}: items[{i}]: Invalid value: {_excerpt(item)}: must be an object")
            _flatten(item, source, doc, line, out, sizes)
        return
    if version is None:
        raise ManifestError(f"{where}: {kind} has no 'apiVersion'")
    if kind in API_VERSIONS and version != API_VERSIONS[kind]:
        # kubectl's REST mapping finds no such resource before anything is sent
        raise ManifestError(f'{where}: resource mapping not found: no matches for kind "{kind}" in version '
                            f'"{version}" (kslib serves {kind} as {API_VERSIONS[kind]})')
    if sizes[id(data)] > MAX_OBJECT_BYTES:
        raise ManifestError(f"{where}: {TOO_LARGE}")
    out.append((data, where))


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 40, 40


def _excerpt(value) -> str:
    """A bad value in a message: its repr, cut at 40 characters (and at 3 levels and a few items)."""
    try:
        text = _REPR.repr(value)
    except ValueError:              # an integer of more than 4300 digits
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."


def read_manifests(manifests, _depth: int = 0) -> list[tuple[dict, str]]:
    """Every object dict in ``manifests`` with a note of where it came from."""
    out: list[tuple[dict, str]] = []
    if isinstance(manifests, dict):
        _flatten(manifests, "manifest", 1, 1, out)
    elif isinstance(manifests, (list, tuple)):
        if _depth >= MAX_DEPTH:
            raise ManifestError(f"manifest: document 1 (line 1): exceeded max depth of {MAX_DEPTH}")
        for m in manifests:
            out += read_manifests(m, _depth + 1)
    elif isinstance(manifests, os.PathLike) or (isinstance(manifests, str) and _looks_like_path(manifests)):
        path = FsPath(manifests)
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json")) \
            if path.is_dir() else [path]
        for f in files:
            out += _read_text(_read_file(f), str(f))
    elif isinstance(manifests, str):
        out += _read_text(manifests, "manifest")
    elif hasattr(manifests, "to_dict"):
        _flatten(manifests.to_dict(), "object", 1, 1, out)
    else:
        raise ManifestError(f"cannot read manifests from {type(manifests).__name__}: give YAML or JSON text, "
                            "a path, a dict or a list of these")
    return out


def _read_file(path: FsPath) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        # sigs.k8s.io/yaml answers "yaml: invalid leading UTF-8 octet"
        line, col = _line_col(data.decode("utf-8", "replace"), len(data[:e.start].decode("utf-8", "replace")))
        raise ManifestError(f"{path}: line {line}, column {col}: invalid UTF-8 (byte 0x{data[e.start]:02x})") from None


def _looks_like_path(s: str) -> bool:
    if "\n" in s or ": " in s or s.lstrip().startswith(("{", "[")):
        return False
    if os.path.exists(s):
        return True
    if s.endswith((".yaml", ".yml", ".json")):
        raise ManifestError(f"manifest file {s!r} does not exist")
    return False


_SURROGATE = re.compile("[\ud800-\udfff]")
_DOC_START = re.compile(r"^---(?=[ \t\r\n]|$)", re.M)
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_LONG_INT = re.compile(r"[0-9]{4301,}")
_CONTENT = re.compile(r"^[ \t]*[^#\s]", re.M)


def _read_text(text: str, source: str) -> list[tuple[dict, str]]:
    bad = _SURROGATE.search(text)
    if bad:
        # bytes that are not UTF-8 (a str decoded with errors="surrogateescape" keeps them as U+DC80-U+DCFF)
        line, col = _line_col(text, bad.start())
        ch = ord(bad.group())
        what = f"byte 0x{ch - 0xDC00:02x}" if 0xDC80 <= ch <= 0xDCFF else f"lone surrogate U+{ch:04X}"
        raise ManifestError(f"{source}: line {line}, column {col}: invalid UTF-8 ({what})")
    out: list[tuple[dict, str]] = []
    if text.lstrip().startswith(("{", "[")):
        depth = 0
        for m in _JSON_TOKEN.finditer(text):
            depth += (m.group() in "[{") - (m.group() in "]}") if len(m.group()) == 1 else 0
            if depth > MAX_DEPTH:
                line, col = _line_col(text, m.start())
                raise ManifestError(f"{source}: document 1, line {line}, column {col}: "
                                    f"exceeded max depth of {MAX_DEPTH}")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ManifestError(f"{source}: document 1, line {e.lineno}, column {e.colno}: {e.msg}") from None
        except ValueError as e:     # an integer of more than 4300 digits (sys.get_int_max_str_digits)
            m = _LONG_INT.search(text)
            line, col = _line_col(text, m.start() if m else 0)
            raise ManifestError(f"{source}: document 1, line {line}, column {col}: {str(e).split(';')[0]}") from None
        _flatten(data, source, 1, 1, out)
        return out
    # each document's size, before parsing any: split at the "---" lines (text before the first one
    # is a document only if it holds more than comments)
    starts = [0] + [m.start() for m in _DOC_START.finditer(text) if m.start() > 0] + [len(text)]
    k = 0
    for a, b in zip(starts, starts[1:]):
        k += text.startswith("---", a) or bool(_CONTENT.search(text, a, b))
        if b - a > MAX_OBJECT_BYTES // 4 and len(text[a:b].encode("utf-8")) > MAX_OBJECT_BYTES:
            raise ManifestError(f"{source}: document {max(k, 1)} (line {_line_col(text, a)[0]}): {TOO_LARGE}")
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
