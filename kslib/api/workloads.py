"""Deployment and StatefulSet: pod templates that controllers expand into Pods.

A Service never sees these; it selects the Pods they create by label.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from . import names
from .errors import Path, invalid, required
from .meta import Named, ObjectMeta, Reader
from .pod import Pod, label_selector
from .validation import validate_meta

_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass
class LabelSelector:
    """metav1.LabelSelector: matchLabels AND every matchExpression."""
    match_labels: dict[str, str] = field(default_factory=dict)
    match_expressions: list[dict] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict) -> "LabelSelector":
        """From a selector dict whose types were checked when it was read (pod.label_selector)."""
        return cls(d.get("matchLabels") or {}, d.get("matchExpressions") or [])

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def __str__(self) -> str:
        """Go's %#v of the *metav1.LabelSelector, as the API server prints it in an error."""
        labels = ", ".join(f'"{k}":"{v}"' for k, v in sorted(self.match_labels.items()))
        exprs = ("[]v1.LabelSelectorRequirement(nil)" if not self.match_expressions else
                 "[]v1.LabelSelectorRequirement{" + ", ".join(
                     f'v1.LabelSelectorRequirement{{Key:"{e.get("key", "")}", Operator:"{e.get("operator", "")}", '
                     f'Values:[]string{{{", ".join(chr(34) + str(v) + chr(34) for v in e.get("values", []))}}}}}'
                     for e in self.match_expressions) + "}")
        return f"&v1.LabelSelector{{MatchLabels:map[string]string{{{labels}}}, MatchExpressions:{exprs}}}"

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for e in self.match_expressions:
            key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
            if op == "In" and labels.get(key) not in values:
                return False
            if op == "NotIn" and key in labels and labels[key] in values:
                return False
            if op == "Exists" and key not in labels:
                return False
            if op == "DoesNotExist" and key in labels:
                return False
        return True

    def to_dict(self) -> dict:
        out: dict = {}
        if self.match_labels:
            out["matchLabels"] = dict(self.match_labels)
        if self.match_expressions:
            out["matchExpressions"] = copy.deepcopy(self.match_expressions)
        return out


@dataclass
class Workload(Named):
    """What Deployment and StatefulSet share: replicas, a selector and a pod template."""
    metadata: ObjectMeta
    replicas: int = 1
    selector: LabelSelector | None = None
    template_meta: ObjectMeta = field(default_factory=ObjectMeta)
    template: Pod | None = None
    service_name: str = ""          # StatefulSet only: the governing (headless) Service

    kind = "Workload"

    @classmethod
    def from_dict(cls, d: dict):
        md = d.get("metadata") if isinstance(d.get("metadata"), dict) else {}
        r = Reader(cls.kind, md.get("name", ""))
        meta = ObjectMeta.read(r, d)
        spec = r.obj(d, "spec", Path(""))
        sp = Path("spec")
        s = label_selector(r, spec, "selector", sp)      # a type error is raised by r.done() below
        sel = LabelSelector.from_dict(s) if s is not None else None
        tpl = r.obj(spec, "template", sp)
        tp = sp.child("template")
        tmeta = ObjectMeta(namespace=meta.namespace,
                           labels=r.strmap(r.obj(tpl, "metadata", tp), "labels", tp.child("metadata")) or {},
                           annotations=r.strmap(r.obj(tpl, "metadata", tp), "annotations",
                                                tp.child("metadata")) or {})
        template = Pod.read_spec(r, r.obj(tpl, "spec", tp), tp.child("spec"), tmeta)
        w = cls(metadata=meta, replicas=r.get(spec, "replicas", int, sp, 1), selector=sel,
                template_meta=tmeta, template=template,
                service_name=r.get(spec, "serviceName", str, sp, "") if cls.kind == "StatefulSet" else "")
        r.done()
        return w

    def validate(self) -> list:
        """The checks of apps validation that matter here (pkg/apis/apps/validation)."""
        sp = Path("spec")
        errs = validate_meta(self.metadata, names.is_dns1123_subdomain)     # ValidateObjectMeta
        errs += self._pod_names()
        if self.replicas < 0:
            errs.append(invalid(sp.child("replicas"), self.replicas, "must be greater than or equal to 0"))
        if self.selector is None:
            errs.append(required(sp.child("selector"), ""))
        else:
            for i, e in enumerate(self.selector.match_expressions):
                if e.get("operator") not in _OPERATORS:
                    errs.append(invalid(sp.child("selector", "matchExpressions").index(i).child("operator"),
                                        e.get("operator"), "not a valid selector operator"))
            if self.selector.empty:
                errs.append(invalid(sp.child("selector"), "{}", f"empty selector is invalid for {self.kind.lower()}"))
            elif not self.selector.matches(self.template_meta.labels):
                errs.append(invalid(sp.child("template", "metadata", "labels"), str(self.template_meta.labels),
                                    "`selector` does not match template `labels`"))
        return errs

    def _pod_names(self) -> list:
        """kslib's controllers create a workload's Pods inside the apply that creates it, so a name its
        Pods could never be valid with is refused here. (A real API server takes the workload; its
        controller then fails to create the Pods and says why in the Events.)"""
        p, errs = Path("metadata.name"), []
        if self.kind == "Deployment" and len(self.name) > 236:
            errs.append(invalid(p, self.name, "kslib takes at most 236 characters: the Pods are named "
                                              "<name>-<pod-template-hash>-<5 characters>, at most 253"))
        if self.kind == "StatefulSet":
            if self.name and (len(self.name) > 52 or names.is_dns1123_label(self.name)):
                errs.append(invalid(p, self.name, "kslib takes a DNS label of at most 52 characters: each Pod's "
                                                  "hostname is <name>-<ordinal> and its controller-revision-hash "
                                                  "label <name>-<10-character hash>, at most 63"))
            errs += [invalid(Path("spec.serviceName"), self.service_name, m)     # the Pods' subdomain
                     for m in (names.is_dns1123_label(self.service_name) if self.service_name else [])]
        return errs

    def to_dict(self) -> dict:
        spec: dict = {"replicas": self.replicas}
        if self.selector is not None:
            spec["selector"] = self.selector.to_dict()
        if self.service_name:
            spec["serviceName"] = self.service_name
        tmeta = {k: v for k, v in (("labels", self.template_meta.labels),
                                   ("annotations", self.template_meta.annotations)) if v}
        spec["template"] = {"metadata": tmeta, "spec": self.template.spec_dict() if self.template else {}}
        return {"apiVersion": "apps/v1", "kind": self.kind, "metadata": self.metadata.to_dict(), "spec": spec}


class Deployment(Workload):
    kind = "Deployment"


class StatefulSet(Workload):
    kind = "StatefulSet"
