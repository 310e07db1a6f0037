"""Conductor's `${...}` parameter resolution, as a pure function over JSON values.

`resolve(value, context)` returns a resolved deep copy of `value`: every string inside it (at
any depth in dicts and lists) is scanned for `${...}` expressions, each evaluated as a JsonPath
over `context` (the evaluation document of conductor-oss.md 3.1). The rules follow Conductor's
`ParametersUtils`:

- An expression is `${...}` not preceded by `$`; braces nest and inner expressions are resolved
  first (`${workflow.input.list[${workflow.input.idx}]}`).
- A string that is exactly one expression keeps the value's JSON type; otherwise each expression
  is replaced by Java's `toString` of the value (`null`, `{a={b=5}}`, `[1, 2, 3]`, `2.0`).
- A missing path or unknown task reference is `None` (whole value) or `"null"` (interpolated).
- `${}` and `${  }` become `""`.
- After interpolation `$${` becomes `${`, so `$${x}` passes on as the literal `${x}`.
- A leading `$.` is optional; wildcards and filters (`[*]`, `[?(@.id == 2)]`, `..`) return a
  list, plain paths return the single value.
- `${CPEWF_TASK_ID}` is the task id; without one the text is left as it is.
- As in Conductor's regex, scanning stops at the first `${` that has no closing brace; the rest
  of the string is left as literal text.

Secrets and environment values:

- `${workflow.secrets.NAME}` / `${workflow.secrets.NAME.json.path}`: without a `secrets`
  resolver the expression is left as its exact original text, so stored task input never holds a
  secret value; with one, the value is looked up just in time and a missing secret raises
  `SecretNotAvailable` instead of silently becoming null (Conductor OSS yields null). An
  expression whose inner part is a deferred secret is kept literal as a whole too.
- `${workflow.env.NAME[.json.path]}` reads `context["workflow"]["env"]`, if the caller put an
  env map there.

Deliberate difference from Conductor: OS environment variables, JVM-style system properties and
`${NETFLIX_ENV}` / `${NETFLIX_STACK}` are NOT resolved (Conductor exposes the server's process
environment, e.g. `${HOME}`, to any workflow definition). Such a name resolves like any unknown
reference: `None` / `"null"`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final, Protocol

from jsonpath_ng.ext.parser import parse as _jsonpath_parse
from jsonpath_ng.jsonpath import Child, Fields, Index, JSONPath, Root, This

__all__ = [
    "SecretNotAvailable",
    "SecretResolver",
    "has_expressions",
    "java_str",
    "references_secrets",
    "resolve",
]


class SecretResolver(Protocol):
    def __call__(self, name: str) -> str | None:
        """Return the secret's value, or None when it is missing or not readable."""
        ...


class SecretNotAvailable(Exception):
    """A `${workflow.secrets.NAME}` reference could not be resolved."""

    name: str

    def __init__(self, name: str) -> None:
        super().__init__(f"Secret '{name}' not found or not accessible")
        self.name = name


# --------------------------------------------------------------------------- public helpers


def resolve(
    value: Any,
    context: Mapping[str, Any],
    *,
    task_id: str | None = None,
    secrets: SecretResolver | None = None,
) -> Any:
    """Return a resolved deep copy of the JSON value `value` (the input is never mutated)."""
    return _Resolver(context, task_id, secrets).value(value)


def has_expressions(value: Any) -> bool:
    """Cheap check: does any string inside `value` contain `${` (so resolving may change it)?"""
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, Mapping):
        return any(has_expressions(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_expressions(v) for v in value)
    return False


# `$${workflow.secrets.` is an escape, not a reference, so the lookbehind excludes it.
_SECRET_REF: Final = re.compile(r"(?<!\$)\$\{\s*(?:\$\.)?workflow\.secrets\.")


def references_secrets(value: Any) -> bool:
    """True if any string inside `value` holds a `${workflow.secrets.` reference."""
    # Exact types first: isinstance() against the Mapping ABC is the slow check, and this
    # runs on every task hand-off.
    kind = type(value)
    if kind is str:
        return "workflow.secrets." in value and _SECRET_REF.search(value) is not None
    if kind is dict or kind is list:
        items = value.values() if kind is dict else value
        return any(references_secrets(v) for v in items)
    if kind is int or kind is float or kind is bool or value is None:
        return False
    if isinstance(value, str):
        return "workflow.secrets." in value and _SECRET_REF.search(value) is not None
    if isinstance(value, Mapping):
        return any(references_secrets(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(references_secrets(v) for v in value)
    return False


# --------------------------------------------------------------------------- template parsing


@dataclass(frozen=True, slots=True)
class _Expr:
    raw: str  # the original `${...}` text, kept verbatim when a secret is deferred
    inner: str  # text between the braces
    parts: tuple[str | _Expr, ...] | None  # parsed `inner` when it nests expressions


_Parts = tuple[str | _Expr, ...]
_BRACE: Final = re.compile(r"[{}]")


def _parse(s: str) -> _Parts:
    """Split `s` into literal text (already unescaped) and expressions."""
    parts: list[str | _Expr] = []
    literal_from = 0
    start = s.find("${")
    while start >= 0:
        if start > 0 and s[start - 1] == "$":  # `$${` is an escape, not an expression
            start = s.find("${", start + 2)
            continue
        depth = 0
        end = -1
        pos = start + 1
        while (m := _BRACE.search(s, pos)) is not None:
            pos = m.end()
            if m.group() == "{":
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    end = pos
                    break
        if end < 0:
            # Conductor's balanced-brace regex finds nothing after an unclosed `${`.
            break
        if literal_from < start:
            parts.append(s[literal_from:start].replace("$${", "${"))
        inner = s[start + 2 : end - 1]
        parts.append(_Expr(s[start:end], inner, _parse_cached(inner) if "${" in inner else None))
        literal_from = end
        start = s.find("${", end)
    if literal_from < len(s):
        parts.append(s[literal_from:].replace("$${", "${"))
    return tuple(parts)


_parse_cached: Final = lru_cache(maxsize=8192)(_parse)
_MAX_CACHED_TEMPLATE: Final = 4096  # longer strings are likely data, not templates: don't pin them


def _parse_template(s: str) -> _Parts:
    return _parse_cached(s) if len(s) <= _MAX_CACHED_TEMPLATE else _parse(s)


# --------------------------------------------------------------------------- path evaluation


@dataclass(frozen=True, slots=True)
class _JsonPath:
    expr: JSONPath
    definite: bool  # Jayway returns the single value for definite paths, a list otherwise


_Compiled = tuple[str | int, ...] | _JsonPath | None
_MISSING: Final = object()

# Simple dotted paths with `[n]` indexes skip jsonpath-ng entirely (the common case).
_SEG = r"[^\W\d][\w-]*"
_FAST_PATH: Final = re.compile(rf"(?:\$\.)?{_SEG}(?:\[[0-9]+\])*(?:\.{_SEG}(?:\[[0-9]+\])*)*")
_FAST_STEP: Final = re.compile(rf"({_SEG})|\[([0-9]+)\]")


def _is_definite(node: JSONPath) -> bool:
    if isinstance(node, Root | This):
        return True
    if isinstance(node, Child):
        return _is_definite(node.left) and _is_definite(node.right)
    if isinstance(node, Fields):
        return len(node.fields) == 1 and node.fields[0] != "*"
    if isinstance(node, Index):
        # jsonpath-ng < 1.7 has `.index`, later versions `.indices`.
        indices = getattr(node, "indices", None)
        return indices is None or len(indices) == 1
    return False


@lru_cache(maxsize=4096)
def _compile(path: str) -> _Compiled:
    if path == "$":
        return ()
    if _FAST_PATH.fullmatch(path):
        body = path[2:] if path.startswith("$.") else path
        return tuple(name if name else int(index) for name, index in _FAST_STEP.findall(body))
    try:
        expr = _jsonpath_parse(path)
    except Exception:  # Conductor suppresses path errors: the value is just null
        return None
    return _JsonPath(expr, _is_definite(expr))


def _read_fast(doc: Any, steps: tuple[str | int, ...]) -> Any:
    cur = doc
    for step in steps:
        if isinstance(step, str):
            if type(cur) is not dict and not isinstance(cur, Mapping):
                return None
            cur = cur.get(step, _MISSING)
            if cur is _MISSING:
                return None
        else:
            if type(cur) is not list and not isinstance(cur, tuple):
                return None
            if step >= len(cur):
                return None
            cur = cur[step]
    return cur


def _read_path(doc: Any, path: str) -> Any:
    compiled = _compile(path)
    if compiled is None:
        return None
    if isinstance(compiled, tuple):
        return _read_fast(doc, compiled)
    try:
        matches = compiled.expr.find(doc)
    except Exception:  # e.g. a filter comparing incomparable types
        return None
    if compiled.definite:
        return matches[0].value if matches else None
    return [m.value for m in matches]


def _read_json_path(raw: Any, path: str) -> Any:
    """Apply `path` to a stored value that is JSON text (secrets, env) or already parsed."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    return _read_path(raw, path)


# --------------------------------------------------------------------------- Java toString


def java_str(value: Any) -> str:
    """Java's `Objects.toString` for a JSON value, as Conductor interpolates it."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{java_str(k)}={java_str(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(java_str(v) for v in value) + "]"
    return str(value)


def _java_double(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    if 1e-3 <= abs(x) < 1e7:
        return repr(x)  # Python's fixed notation matches Java's in this range ("2.0", "0.001")
    # Java switches to computerized scientific notation: d.dddE±n, shortest digits.
    sign, digit_tuple, exponent = Decimal(repr(x)).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    power = exponent + len(digits) - 1
    digits = digits.rstrip("0") or "0"
    return f"{'-' if sign else ''}{digits[0]}.{digits[1:] or '0'}E{power}"


# --------------------------------------------------------------------------- resolution

_SECRETS_PREFIX: Final = "workflow.secrets."
_ENV_PREFIX: Final = "workflow.env."
_TASK_ID_PARAM: Final = "CPEWF_TASK_ID"
_SECRET_NAME: Final = re.compile(r"[A-Za-z0-9_-]+")
_NAME_AND_PATH: Final = re.compile(r"([^.\[]*)(.*)", re.DOTALL)

# How an expression's result goes into the output.
_VALUE: Final = 0  # a resolved value
_KEEP: Final = 1  # no replacement: the original text stays (CPEWF_TASK_ID without a task id)
_DEFERRED: Final = 2  # a secret left for just-in-time resolution: original text stays
_SECRET: Final = 3  # a secret's value: inserted verbatim, never unescaped


# Exact-type checks first: isinstance() against the ABCs costs more than the work on a hot path.
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def _copy(value: Any) -> Any:
    # Resolved values must not alias the context: callers store and mutate the result.
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict or isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if kind is list or isinstance(value, tuple):
        return [_copy(v) for v in value]
    return value


def _split_name(ref: str) -> tuple[str, str | None]:
    """`NAME.a.b` -> (`NAME`, `a.b`); `NAME[0]` -> (`NAME`, `$[0]`); `NAME` -> (`NAME`, None)."""
    m = _NAME_AND_PATH.fullmatch(ref)
    assert m is not None  # the pattern matches every string
    name, rest = m.group(1), m.group(2)
    if not rest:
        return name, None
    return name, rest[1:] if rest[0] == "." else "$" + rest


class _Resolver:
    __slots__ = ("context", "secret_cache", "secrets", "task_id")

    def __init__(
        self, context: Mapping[str, Any], task_id: str | None, secrets: SecretResolver | None
    ) -> None:
        self.context = context
        self.task_id = task_id
        self.secrets = secrets
        self.secret_cache: dict[str, str] = {}  # one lookup per name per resolve() call

    def value(self, value: Any) -> Any:
        kind = type(value)
        if kind is str:
            return self.string(value) if "${" in value else value
        if kind is dict:
            return {k: self.value(v) for k, v in value.items()}
        if kind is list:
            return [self.value(v) for v in value]
        if kind in _SCALARS:
            return value
        if isinstance(value, str):
            return self.string(value) if "${" in value else value
        if isinstance(value, Mapping):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def string(self, s: str) -> Any:
        parts = _parse_template(s)
        if len(parts) == 1 and isinstance(parts[0], _Expr):
            # Rule 2: exactly one expression spanning the string keeps the value's type.
            expr = parts[0]
            kind, result = self.expr(expr)
            if kind == _KEEP:
                return expr.raw.replace("$${", "${")
            if kind == _DEFERRED:
                return expr.raw
            return _copy(result)
        text, _ = self.interpolate(parts)
        return text

    def interpolate(self, parts: _Parts) -> tuple[str, bool]:
        """Render `parts` as a string; the flag says a secret inside was deferred."""
        out: list[str] = []
        deferred = False
        for part in parts:
            if isinstance(part, str):
                out.append(part)
                continue
            kind, result = self.expr(part)
            if kind == _VALUE:
                out.append(java_str(result).replace("$${", "${"))
            elif kind == _SECRET:
                out.append(java_str(result))
            else:
                deferred = deferred or kind == _DEFERRED
                out.append(part.raw.replace("$${", "${"))
        return "".join(out), deferred

    def expr(self, expr: _Expr) -> tuple[int, Any]:
        if expr.parts is None:
            path = expr.inner
        else:
            path, deferred = self.interpolate(expr.parts)
            if deferred:
                # The path depends on a secret we may not read yet: keep the whole expression.
                return _DEFERRED, None
        path = path.strip()
        if not path:
            return _VALUE, ""
        if path == _TASK_ID_PARAM:
            return (_KEEP, None) if self.task_id is None else (_VALUE, self.task_id)
        bare = path[2:] if path.startswith("$.") else path
        if bare.startswith(_SECRETS_PREFIX):
            if self.secrets is None:
                return _DEFERRED, None
            return _SECRET, self.secret(bare[len(_SECRETS_PREFIX) :])
        if bare.startswith(_ENV_PREFIX):
            return _VALUE, self.env(bare[len(_ENV_PREFIX) :])
        return _VALUE, _read_path(self.context, path)

    def secret(self, ref: str) -> Any:
        assert self.secrets is not None
        name, path = _split_name(ref)
        raw = self.secret_cache.get(name)
        if raw is None:
            found = self.secrets(name) if _SECRET_NAME.fullmatch(name) else None
            if found is None:
                raise SecretNotAvailable(name)
            raw = self.secret_cache[name] = found
        return raw if path is None else _read_json_path(raw, path)

    def env(self, ref: str) -> Any:
        workflow = self.context.get("workflow")
        env = workflow.get("env") if isinstance(workflow, Mapping) else None
        if not isinstance(env, Mapping):
            return None
        name, path = _split_name(ref)
        raw = env.get(name)
        if raw is None or path is None:
            return raw
        return _read_json_path(raw, path)
