"""One loader for every rules file: YAML with positions, a pydantic schema per file name, and
positioned errors (`path:line:col: message`).

PyYAML's composer gives a node tree where every node keeps its start mark; we convert nodes to
plain data ourselves (so duplicate keys are errors instead of silently keeping the last one,
and YAML decimals become exact `Decimal`s) and keep a map *data path -> position*, so that
pydantic validation errors and expression errors point at the offending node.

The loader is a plain compiler: it knows no file kind. Each call is handed the `RuleFileSpec`s
to load (file name -> schema + how to build the runtime object); Cobro's own list, in order,
is `cobro.rules.ruleset.Ruleset.SPECS`. Fields typed `Expression` are parsed and type-checked
against the file's environment, fields typed `MessageTemplate` are checked as Jinja2
templates; both are collected in `LoadedFile.exprs` / `LoadedFile.templates` by data path. A
spec's `check` hook adds semantic errors; its `build` hook compiles the loaded file into what
the engine runs.
"""

from __future__ import annotations

import hashlib
import re
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from cobro.rules.errors import RuleError, RuleMessage, did_you_mean
from cobro.rules.expr import Checked, Env, TextPos, check_expression

Loc = tuple[str | int, ...]


# ---------------------------------------------------------------------------- field markers


@dataclass(frozen=True)
class ExprField:
    """Marks a string field as a rule expression of the given result type."""

    kind: str = "bool"


@dataclass(frozen=True)
class TemplateField:
    """Marks a string field as a Jinja2 message template."""


Expression = typing.Annotated[str, ExprField("bool")]
MessageTemplate = typing.Annotated[str, TemplateField()]

_DURATION_RE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: Any) -> timedelta:
    """`30m`, `12h`, `7d`, `2w` (or a timedelta) -> timedelta."""
    if isinstance(value, timedelta):
        return value
    m = _DURATION_RE.match(value) if isinstance(value, str) else None
    if not m:
        raise ValueError(
            f"invalid duration {value!r}: expected a whole number followed by m, h, d or w "
            "(e.g. 7d)"
        )
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


# ---------------------------------------------------------------------------- YAML with positions


@dataclass
class Located:
    """Plain data parsed from YAML plus where each piece came from."""

    path: str
    text: str
    data: Any
    pos: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    keypos: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    nodes: dict[Loc, yaml.Node] = field(default_factory=dict)
    errors: list[RuleMessage] = field(default_factory=list)  # e.g. duplicate keys

    def position(self, loc: Loc, key: bool = False) -> tuple[int, int]:
        """Position of `loc`, or of its longest known prefix."""
        loc = tuple(loc)
        if key and loc in self.keypos:
            return self.keypos[loc]
        while loc:
            if loc in self.pos:
                return self.pos[loc]
            loc = loc[:-1]
        return self.pos.get((), (1, 1))

    def message(self, loc: Loc, message: str, key: bool = False) -> RuleMessage:
        line, col = self.position(loc, key)
        return RuleMessage(self.path, line, col, message)

    def text_pos(self, loc: Loc) -> TextPos:
        """Character-level positions of a scalar string (follows folding and block styles)."""
        node = self.nodes.get(tuple(loc))
        value = self.data_at(loc)
        if not isinstance(node, yaml.ScalarNode) or not isinstance(value, str):
            line, col = self.position(loc)
            return TextPos.simple(self.path, line, col, value if isinstance(value, str) else "")
        raw = self.text[node.start_mark.index : node.end_mark.index]
        line0, col0 = node.start_mark.line + 1, node.start_mark.column + 1
        raw_pos: list[tuple[int, int]] = []
        ln, c = line0, col0
        for ch in raw:
            raw_pos.append((ln, c))
            ln, c = (ln + 1, 1) if ch == "\n" else (ln, c + 1)
        raw_pos.append((ln, c))
        j = 1 if node.style in ("'", '"') else 0
        if node.style in ("|", ">"):
            j = raw.find("\n") + 1 if "\n" in raw else len(raw)
        out: list[tuple[int, int]] = []
        for ch in value:
            k = raw.find(ch, j)
            if k == -1 or (
                ch != "\n" and "\n" in raw[j:k] and node.style in ("'", '"', None) and ch not in " "
            ):
                k = j if k == -1 else k
            out.append(raw_pos[min(k, len(raw_pos) - 1)])
            j = min(k + 1, len(raw))
        out.append(raw_pos[min(j, len(raw_pos) - 1)])
        return TextPos(self.path, value, tuple(out))

    def data_at(self, loc: Loc) -> Any:
        cur = self.data
        for part in loc:
            try:
                cur = cur[part]
            except (KeyError, IndexError, TypeError):
                return None
        return cur


YAML_HINTS = {
    "mapping values are not allowed here": "is this line indented more than the key above?",
    "found character '\\t' that cannot start any token": "YAML indents with spaces, not tabs",
    "expected <block end>, but found '-'": "is this list item indented like the ones above?",
    "expected <block end>, but found '<block mapping start>'": (
        "is this line indented less than its siblings?"
    ),
    "could not find expected ':'": "a `key: value` line is missing its colon",
}


def parse_yaml(text: str, path: str) -> Located:
    """Parse YAML text into plain data with positions. A YAML syntax error raises `RuleError`;
    duplicate keys (all of them) are listed in `Located.errors` (the first value is kept)."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            problem = exc.problem or exc.context or "invalid YAML"
            hint = YAML_HINTS.get(problem)
            if hint:
                problem = f"{problem} ({hint})"
            raise RuleError(
                [RuleMessage(path, line, col, f"YAML syntax error: {problem}")]
            ) from None
        except yaml.YAMLError as exc:
            raise RuleError([RuleMessage(path, 1, 1, f"YAML error: {exc}")]) from None
        located = Located(path, text, None)
        errors: list[RuleMessage] = []
        if root is None:
            located.pos[()] = (1, 1)
            return located
        located.data = _convert(root, (), located, loader, errors, 0)
        located.errors = errors
        return located
    finally:
        loader.dispose()


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _convert(
    node: yaml.Node,
    loc: Loc,
    out: Located,
    loader: yaml.SafeLoader,
    errors: list[RuleMessage],
    depth: int,
) -> Any:
    out.pos[loc] = _mark(node)
    out.nodes[loc] = node
    if depth > 50:
        errors.append(RuleMessage(out.path, *_mark(node), "YAML nested too deeply"))
        return None
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        first: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                errors.append(RuleMessage(out.path, *_mark(key_node), "a key must be a scalar"))
                continue
            key = _scalar(key_node, loader, out, errors)
            try:
                hash(key)
            except TypeError:
                key = str(key)
            if key_node.tag == "tag:yaml.org,2002:merge":
                errors.append(
                    RuleMessage(out.path, *_mark(key_node), "merge keys (<<) are not supported")
                )
                continue
            if key in first:
                line, _ = _mark(first[key])
                errors.append(
                    RuleMessage(
                        out.path, *_mark(key_node), f"duplicate key `{key}` (first at line {line})"
                    )
                )
                continue
            first[key] = key_node
            out.keypos[(*loc, key)] = _mark(key_node)
            result[key] = _convert(value_node, (*loc, key), out, loader, errors, depth + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(item, (*loc, i), out, loader, errors, depth + 1)
            for i, item in enumerate(node.value)
        ]
    return _scalar(node, loader, out, errors)


def _scalar(
    node: yaml.Node, loader: yaml.SafeLoader, out: Located, errors: list[RuleMessage]
) -> Any:
    if node.tag == "tag:yaml.org,2002:float":
        text = node.value.replace("_", "")
        try:
            d = Decimal(text)
            if d.is_finite():
                return d
        except InvalidOperation:
            pass
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        errors.append(RuleMessage(out.path, *_mark(node), f"invalid value: {exc}"))
        return None


# ---------------------------------------------------------------------------- file specs


@dataclass
class LoadedFile:
    """A validated rules file: its model, checked expressions and templates by data path."""

    name: str
    path: str
    content: bytes
    located: Located
    model: BaseModel
    env: Env
    exprs: dict[Loc, Checked] = field(default_factory=dict)
    templates: dict[Loc, Any] = field(default_factory=dict)
    built: Any = None


class FileContext:
    """Handed to a spec's hooks: positioned errors and cross-file shared values."""

    def __init__(self, located: Located, shared: dict[str, Any]) -> None:
        self.located = located
        self.shared = shared
        self.errors: list[RuleMessage] = []

    def error(self, loc: Loc, message: str, key: bool = False) -> None:
        self.errors.append(self.located.message(loc, message, key))


@dataclass(frozen=True)
class RuleFileSpec:
    """How one rules file is validated and built.

    * `model`: the pydantic schema of the whole file (use `extra="forbid"` models).
    * `env(model, ctx)`: the names its expressions and templates may read.
    * `check(loaded, ctx)`: extra semantic checks (report with `ctx.error(loc, msg)`).
    * `build(loaded, ctx)`: the runtime object (compiled evaluator), stored as `loaded.built`.
    """

    filename: str
    model: type[BaseModel]
    description: str
    env: Callable[[BaseModel, FileContext], Env] = lambda model, ctx: Env.from_facts()
    check: Callable[[LoadedFile, FileContext], None] | None = None
    build: Callable[[LoadedFile, FileContext], Any] | None = None
    required: bool = False


def unknown_file(display: str, name: str, specs: Sequence[RuleFileSpec]) -> RuleMessage:
    """The error for a file that no spec describes (with a did-you-mean)."""
    known = [spec.filename for spec in specs]
    return RuleMessage(
        display,
        1,
        1,
        f"unknown rules file `{name}`{did_you_mean(name, known)}; known: {', '.join(known)}",
    )


# ---------------------------------------------------------------------------- validation


def _fmt_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The pydantic model class describing the mapping at `loc` (for did-you-mean)."""
    current: Any = model
    for part in loc:
        ann = _unwrap(current)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            f = ann.model_fields.get(str(part))
            if f is None:
                return None
            current = f.annotation
        else:
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if not args:
                return None
            current = args[-1]
    ann = _unwrap(current)
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _unwrap(ann: Any) -> Any:
    while True:
        origin = typing.get_origin(ann)
        if origin is typing.Annotated:
            ann = typing.get_args(ann)[0]
            continue
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if len(args) == 1:
                ann = args[0]
                continue
        return ann


def _marker(ann: Any) -> ExprField | TemplateField | None:
    if typing.get_origin(ann) is typing.Annotated:
        for meta in typing.get_args(ann)[1:]:
            if isinstance(meta, ExprField | TemplateField):
                return meta
    for arg in typing.get_args(ann):
        found = _marker(arg)
        if found:
            return found
    return None


def _pydantic_messages(exc: ValidationError, located: Located, model: type[BaseModel]) -> list:
    out: list[RuleMessage] = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if isinstance(p, int | str))
        on_key = bool(loc) and loc[-1] == "[key]"  # a mapping key failed: point at the key
        loc = loc[:-1] if on_key else loc
        where = _fmt_loc(loc)
        kind = err["type"]
        msg = err["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            fields = list(parent.model_fields) if parent else []
            hint = did_you_mean(loc[-1], fields)
            text = f"unknown field `{loc[-1]}`{hint}"
            if fields and not hint:
                text += f"; expected one of: {', '.join(fields)}"
            out.append(located.message(loc, text, key=True))
            continue
        if kind == "missing":
            out.append(
                located.message(
                    loc[:-1], f"{_fmt_loc(loc[:-1]) or 'file'}: missing field `{loc[-1]}`"
                )
            )
            continue
        if kind.startswith("literal_error"):
            expected = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
            msg += did_you_mean(err.get("input"), expected)
        out.append(located.message(loc, f"{where}: {msg}" if where else msg, key=on_key))
    return out


def load_file(
    path: str | Path,
    spec: RuleFileSpec,
    shared: dict[str, Any] | None = None,
    display: str | None = None,
) -> LoadedFile:
    """Load, validate and build one rules file; raise `RuleError` with every problem."""
    path = Path(path)
    content = path.read_bytes()
    return load_text(content, spec, display or str(path), shared if shared is not None else {})


def load_text(
    content: bytes, spec: RuleFileSpec, display: str, shared: dict[str, Any]
) -> LoadedFile:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RuleError([RuleMessage(display, 1, 1, f"not UTF-8: {exc}")]) from None
    located = parse_yaml(text, display)
    if located.data is None:
        raise RuleError([RuleMessage(display, 1, 1, "the file is empty")])
    ctx = FileContext(located, shared)
    ctx.errors.extend(located.errors)
    try:
        model = spec.model.model_validate(located.data)
    except ValidationError as exc:
        ctx.errors.extend(_pydantic_messages(exc, located, spec.model))
        # still check the expressions and templates we can find, to report everything at once
        try:
            partial = spec.model.model_construct(**located.data)
            env = spec.env(partial, ctx)
        except Exception:
            env = Env.from_facts()
        stub = LoadedFile(spec.filename, display, content, located, None, env)  # type: ignore
        _check_raw_fields(spec.model, located.data, (), stub, ctx)
        raise RuleError(ctx.errors) from None
    env = spec.env(model, ctx)
    loaded = LoadedFile(spec.filename, display, content, located, model, env)
    _check_marked_fields(model, (), loaded, ctx)
    if spec.check:
        spec.check(loaded, ctx)
    if ctx.errors:
        raise RuleError(ctx.errors)
    if spec.build:
        loaded.built = spec.build(loaded, ctx)
        if ctx.errors:
            raise RuleError(ctx.errors)
    return loaded


def _field_marker(info: Any) -> ExprField | TemplateField | None:
    for meta in info.metadata:
        if isinstance(meta, ExprField | TemplateField):
            return meta
    return _marker(info.annotation)


def _check_one(
    marker: ExprField | TemplateField, text: str, loc: Loc, loaded: LoadedFile, ctx: FileContext
) -> None:
    from cobro.rules.templates import check_template

    where = loaded.located.text_pos(loc)
    try:
        if isinstance(marker, ExprField):
            loaded.exprs[loc] = check_expression(text, loaded.env, where, marker.kind)
        else:
            loaded.templates[loc] = check_template(text, loaded.env, where)
    except RuleError as exc:
        ctx.errors.extend(exc.messages)


def _check_marked_fields(value: Any, loc: Loc, loaded: LoadedFile, ctx: FileContext) -> None:
    if isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            sub = getattr(value, name)
            key = info.alias or name
            marker = _field_marker(info)
            if marker is not None and isinstance(sub, str):
                _check_one(marker, sub, (*loc, key), loaded, ctx)
            elif marker is not None and isinstance(sub, dict):  # one per language, say
                for name_, text in sub.items():
                    if isinstance(text, str):
                        _check_one(marker, text, (*loc, key, name_), loaded, ctx)
            else:
                _check_marked_fields(sub, (*loc, key), loaded, ctx)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_marked_fields(item, (*loc, i), loaded, ctx)


def _check_raw_fields(
    model: Any, data: Any, loc: Loc, loaded: LoadedFile, ctx: FileContext
) -> None:
    """Like `_check_marked_fields`, on raw data that failed validation."""
    ann = _unwrap(model)
    if isinstance(ann, type) and issubclass(ann, BaseModel) and isinstance(data, dict):
        for name, info in ann.model_fields.items():
            key = info.alias or name
            if key not in data:
                continue
            marker = _field_marker(info)
            if marker is not None:
                if isinstance(data[key], str):
                    _check_one(marker, data[key], (*loc, key), loaded, ctx)
                elif isinstance(data[key], dict):
                    for name_, text in data[key].items():
                        if isinstance(text, str):
                            _check_one(marker, text, (*loc, key, name_), loaded, ctx)
            else:
                _check_raw_fields(info.annotation, data[key], (*loc, key), loaded, ctx)
    elif isinstance(data, list):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if args:
            for i, item in enumerate(data):
                _check_raw_fields(args[0], item, (*loc, i), loaded, ctx)


# ---------------------------------------------------------------------------- directories


def content_hash(files: dict[str, bytes]) -> str:
    """sha256 over the files' names and bytes, in name order (stable across machines)."""
    h = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        h.update(name.encode("utf-8") + b"\0" + str(len(data)).encode() + b"\0" + data)
    return h.hexdigest()


def load_directory(directory: str | Path, specs: Sequence[RuleFileSpec]) -> dict[str, LoadedFile]:
    """Load the `*.yaml` files of a rules directory that `specs` describe, in the order of
    `specs` (a file may read what an earlier one put in `FileContext.shared`). Every problem in
    every file, and every file no spec describes, is reported in one `RuleError`."""
    directory = Path(directory)
    by_name = {spec.filename: spec for spec in specs}
    if len(by_name) != len(specs):
        raise ValueError(f"two rules file specs have the same file name: {list(by_name)}")
    errors: list[RuleMessage] = []
    if not directory.is_dir():
        raise RuleError([RuleMessage(str(directory), 1, 1, "not a directory")])
    present = {p.name: p for p in sorted(directory.glob("*.y*ml"))}
    for name, p in present.items():
        if name not in by_name:
            errors.append(unknown_file(str(p), name, specs))
    shared: dict[str, Any] = {}
    loaded: dict[str, LoadedFile] = {}
    for name, spec in by_name.items():
        p = present.get(name)
        if p is None:
            if spec.required:
                errors.append(
                    RuleMessage(str(directory / name), 1, 1, "required rules file is missing")
                )
            continue
        try:
            loaded[name] = load_file(p, spec, shared)
        except RuleError as exc:
            errors.extend(exc.messages)
    if errors:
        raise RuleError(errors)
    return loaded
