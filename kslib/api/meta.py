"""ObjectMeta, and reading typed fields out of a manifest the way the API server's decoder does.

A field of the wrong JSON type is an error naming the field (the API server answers
``json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32``);
here it is a ValidationError at that field path.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import FieldError, Path, ValidationError, invalid

_TYPE_NAMES = {int: "an integer", str: "a string", bool: "a boolean", dict: "an object", list: "a list"}


class Reader:
    """Collects decoding errors for one object; ``done()`` raises them all at once."""

    def __init__(self, kind: str, name):
        self.kind, self.name = kind, name if isinstance(name, str) else ""
        self.errors: list[FieldError] = []

    def get(self, d: dict, key: str, typ, path: Path, default=None, bits: int = 32):
        """``d[key]`` if it has the JSON type ``typ`` (an int must fit the Go field's int32, or int64
        with ``bits=64``, as the API server's decoder demands); else an error at ``path.key``."""
        if not isinstance(d, dict) or key not in d or d[key] is None:
            return default
        value = d[key]
        ok = isinstance(value, typ) and not (isinstance(value, bool) and typ is not bool)
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            want = _TYPE_NAMES.get(typ, "an integer or a string") if not isinstance(typ, tuple) else \
                "an integer or a string"
            self.errors.append(invalid(path.child(key), value, f"must be {want}"))
            return default
        if isinstance(value, int) and not isinstance(value, bool) and typ is not float:
            lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
            if not lo <= value <= hi:
                # the decoder answers "cannot unmarshal number ... of type int32" before validation
                self.errors.append(invalid(path.child(key), value, f"must be an integer between {lo} and {hi} "
                                                                   f"(int{bits})"))
                return default
        return value

    def check(self, d: dict, path: Path, typ, *keys: str) -> None:
        """Type-check fields kslib keeps as given (``d`` stays a dict): each of ``keys`` must be a ``typ``."""
        for key in keys:
            self.get(d, key, typ, path)

    def obj(self, d: dict, key: str, path: Path) -> dict:
        return self.get(d, key, dict, path, {}) or {}

    def items(self, d: dict, key: str, path: Path) -> list:
        return self.get(d, key, list, path, []) or []

    def strs(self, d: dict, key: str, path: Path) -> list[str]:
        """A list of strings (a JSON null item decodes to "", as into a Go []string)."""
        out = []
        for i, v in enumerate(self.items(d, key, path)):
            if v is not None and not isinstance(v, str):
                self.errors.append(invalid(path.child(key).index(i), v, "must be a string"))
            else:
                out.append(v or "")
        return out

    def objects(self, d: dict, key: str, path: Path) -> list[tuple[Path, dict]]:
        """A list of objects with the path of each."""
        out = []
        for i, v in enumerate(self.items(d, key, path)):
            p = path.child(key).index(i)
            if not isinstance(v, dict):
                self.errors.append(invalid(p, v, "must be an object"))
            else:
                out.append((p, v))
        return out

    def strmap(self, d: dict, key: str, path: Path) -> dict[str, str] | None:
        raw = self.get(d, key, dict, path, None)
        if raw is None:
            return None
        out = {}
        for k, v in raw.items():
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                self.errors.append(invalid(path.child(key).key(str(k)), v, "must be a string"))
            elif not isinstance(v, str):
                # YAML turns `version: 1` into an int; the API server would refuse it
                self.errors.append(invalid(path.child(key).key(str(k)), v,
                                           "must be a string (quote it in YAML)"))
            else:
                out[str(k)] = v
        return out

    def done(self):
        if self.errors:
            raise ValidationError(self.kind, self.name, self.errors)


@dataclass
class ObjectMeta:
    name: str = ""
    namespace: str = "default"
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    uid: str = ""
    generate_name: str = ""
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    owner_references: list[dict] = field(default_factory=list)

    @classmethod
    def read(cls, r: Reader, d: dict, namespaced: bool = True) -> "ObjectMeta":
        p = Path("metadata")
        m = r.obj(d, "metadata", Path(""))
        return cls(
            name=r.get(m, "name", str, p, ""),
            namespace=(r.get(m, "namespace", str, p, "default") or "default") if namespaced else "",
            labels=r.strmap(m, "labels", p) or {},
            annotations=r.strmap(m, "annotations", p) or {},
            uid=r.get(m, "uid", str, p, ""),
            generate_name=r.get(m, "generateName", str, p, ""),
            creation_timestamp=r.get(m, "creationTimestamp", str, p, None),
            deletion_timestamp=r.get(m, "deletionTimestamp", str, p, None),
            owner_references=[_owner_reference(r, o, op) for op, o in r.objects(m, "ownerReferences", p)],
        )

    def to_dict(self) -> dict:
        out: dict = {"name": self.name}
        if self.generate_name:
            out["generateName"] = self.generate_name
        if self.namespace:
            out["namespace"] = self.namespace
        if self.uid:
            out["uid"] = self.uid
        if self.creation_timestamp:
            out["creationTimestamp"] = self.creation_timestamp
        if self.deletion_timestamp:
            out["deletionTimestamp"] = self.deletion_timestamp
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.owner_references:
            out["ownerReferences"] = [dict(o) for o in self.owner_references]
        return out

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


def _owner_reference(r: Reader, o: dict, p: Path) -> dict:
    """An ownerReference: the fields kslib's controllers read, type-checked, the rest kept as given."""
    r.check(o, p, str, "apiVersion", "kind", "name", "uid")
    r.check(o, p, bool, "controller", "blockOwnerDeletion")
    return dict(o)


class Named:
    """name, namespace and key ("namespace/name", or the name of a cluster-scoped object),
    for every kind that carries ``metadata``."""

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @property
    def key(self) -> str:
        return self.metadata.key
