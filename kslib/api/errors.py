"""Field errors and the API server's "is invalid" error.

The text follows apimachinery: ``field.Error.Error()`` prints ``<path>: <type>: <value>: <detail>``
(pkg/util/validation/field/errors.go), several errors are aggregated as ``[a, b]``
(pkg/util/errors), and the API server wraps them as ``<Kind> "<name>" is invalid: ...``
(pkg/api/errors NewInvalid); kubectl prefixes "The ".
"""
from __future__ import annotations

import json
from dataclasses import dataclass


class Path(str):
    """A field path such as ``spec.ports[0].nodePort``, built the way field.NewPath does."""

    def child(self, *names: str) -> "Path":
        out = str(self)
        for name in names:
            out = f"{out}.{name}" if out else name
        return Path(out)

    def index(self, i: int) -> "Path":
        return Path(f"{self}[{i}]")

    def key(self, k: str) -> "Path":
        return Path(f"{self}[{k}]")


def _show(value) -> str:
    """How ErrorBody prints a bad value: strings quoted, numbers and bools bare, Go-ish otherwise."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _text(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[]string{" + ", ".join(json.dumps(_text(v)) for v in value) + "}"
    return _text(value)


def _text(value) -> str:
    try:
        return str(value)
    except ValueError:
        # str() refuses an integer over 4300 digits (sys.get_int_max_str_digits), even inside a list
        return f"<{type(value).__name__} too large to print>"


@dataclass(frozen=True)
class FieldError:
    type: str            # "Required value", "Invalid value", "Forbidden", ...
    field: str
    detail: str = ""
    value: object = None
    has_value: bool = False

    def __str__(self) -> str:
        body = self.type
        if self.has_value:
            body = f"{self.type}: {_show(self.value)}"
        if self.detail:
            body += f": {self.detail}"
        return f"{self.field}: {body}"


def required(path: str, detail: str = "") -> FieldError:
    return FieldError("Required value", str(path), detail)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError("Forbidden", str(path), detail)


def invalid(path: str, value, detail: str) -> FieldError:
    return FieldError("Invalid value", str(path), detail, value, True)


def duplicate(path: str, value) -> FieldError:
    return FieldError("Duplicate value", str(path), "", value, True)


def not_supported(path: str, value, supported: list[str]) -> FieldError:
    detail = "supported values: " + ", ".join(json.dumps(s) for s in supported)
    return FieldError("Unsupported value", str(path), detail, value, True)


def too_long(path: str, max_len: int) -> FieldError:
    return FieldError("Too long", str(path), f"may not be more than {max_len} bytes")


class ValidationError(ValueError):
    """What the API server answers with HTTP 422: the object is invalid.

    ``str(err)`` reads as ``kubectl apply`` prints it (k8s.io/kubectl cmd/util/helpers.go): one
    error on one line; several as a header line and one ``* `` bullet per error, duplicates
    dropped. ``err.errors`` holds each FieldError; ``err.status_message`` is the server's own
    text (``Service "web" is invalid: [a, b]``).
    """

    def __init__(self, kind: str, name: str, errors: list[FieldError]):
        self.kind, self.name = kind, name
        # ToAggregate drops errors whose text repeats (values may be lists, so compare text)
        by_text = {str(e): e for e in reversed(list(errors))}
        lines = list(dict.fromkeys(str(e) for e in errors))
        self.errors = [by_text[line] for line in lines]
        if len(lines) == 1:
            text = f'The {kind} "{name}" is invalid: {lines[0]}'
        else:
            text = f'The {kind} "{name}" is invalid: \n' + "\n".join(f"* {line}" for line in lines)
        self.status_message = f'{kind} "{name}" is invalid: ' + (
            lines[0] if len(lines) == 1 else "[" + ", ".join(lines) + "]")
        super().__init__(text)

    @property
    def fields(self) -> list[str]:
        return [e.field for e in self.errors]


class InternalError(ValueError):
    """HTTP 500 from the API server (an exhausted range, a health-check port it cannot take)."""

    def __init__(self, detail: str):
        self.detail = detail
        super().__init__(f"Internal error occurred: {detail}")
