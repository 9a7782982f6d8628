"""Every subcommand is one typed dataclass config: this module turns it into a command line.

For a config class it registers ``--config FILE|NAME`` (a YAML file, or the name of a config
shipped with the package), ``--print-config``, one ``--section.field VALUE`` option per leaf
field (``--section.field-name`` is accepted too; booleans also take ``--field`` / ``--no-field``)
and positional arguments where a field asks for them (`positional`). The ``--help`` text is
generated from the fields: type, default and the field's own comment in the source, so no
default or description is written twice. Values are read as YAML (``3e-4``, ``[1, 2]``,
``{6: 0.0}``), text fields keep the text as typed, and `world_model.configuration` checks every
key and type with a one-line error.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import re
import sys
import textwrap
import tokenize
import types
import typing
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import yaml

from vjepa_wm.world_model.configuration import ConfigError, default_tree, load_config, parse_overrides, to_dict

OPTION_PREFIX = "config:"


def positional(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING, nargs: str | None = None):
    """A dataclass field that the command line takes as a positional argument (``nargs`` as argparse)."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"positional": nargs or "?"})


# ---------------------------------------------------------------------------- field documentation


@lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """One line of documentation per field: its trailing ``# comment``, else an attribute docstring,
    else a ``name: text`` entry of the class docstring (base classes included)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_docstring_entries(klass.__doc__ or ""))
            docs.update(_source_comments(klass))
    return docs


def _source_comments(cls: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    docs, lines = {}, source.splitlines()
    body = ast.parse(source).body[0].body
    for index, node in enumerate(body):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            text = comments.get(node.end_lineno, "")
            following = body[index + 1] if index + 1 < len(body) else None
            if not text and isinstance(following, ast.Expr) and isinstance(getattr(following, "value", None), ast.Constant) \
                    and isinstance(following.value.value, str):
                text = following.value.value.strip().splitlines()[0]
            if not text:  # a block of comment lines right above the field
                above, line = [], node.lineno - 1
                while line >= 1 and lines[line - 1].strip().startswith("#"):
                    above.insert(0, comments[line])
                    line -= 1
                text = " ".join(above)
            if text:
                docs[node.target.id] = text
    return docs


def _docstring_entries(doc: str) -> dict[str, str]:
    entries: dict[str, str] = {}
    current: list[str] = []
    for line in inspect.cleandoc(doc).splitlines():
        match = re.match(r"^([a-z_][a-z0-9_]*(?:\s*/\s*[a-z_][a-z0-9_]*)*):\s+(.+)$", line)
        if match:
            current = [name.strip() for name in match.group(1).split("/")]
            for name in current:
                entries[name] = match.group(2).strip()
        elif line.startswith(" ") and current:
            for name in current:
                entries[name] += " " + line.strip()
        else:
            current = []
    return entries


# ---------------------------------------------------------------------------- leaves


@dataclasses.dataclass(frozen=True)
class Leaf:
    dotted: str
    annotation: Any
    default: Any
    doc: str
    positional: str | None = None


def _is_section(annotation: Any) -> bool:
    return dataclasses.is_dataclass(annotation) and isinstance(annotation, type)


def leaves(cls: type, tree: dict | None = None, prefix: str = "") -> list[Leaf]:
    """Every settable field of `cls`, nested sections flattened to dotted names."""
    tree = default_tree(cls) if tree is None else tree
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        annotation = hints[f.name]
        default = tree.get(f.name)
        if _is_section(annotation) and isinstance(default, dict):
            out.extend(leaves(annotation, default, f"{prefix}{f.name}."))
        else:
            out.append(Leaf(prefix + f.name, annotation, default, docs.get(f.name, ""), f.metadata.get("positional")))
    return out


@lru_cache(maxsize=None)
def command_leaves(cls: type) -> tuple[Leaf, ...]:
    """`leaves` of a command's config class, computed once per process."""
    return tuple(leaves(cls))


def type_label(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        names = [type_label(a) for a in args if a is not type(None)]
        return "|".join(names) + ("|null" if type(None) in args else "")
    if origin is typing.Literal:
        return "{" + ",".join(map(str, args)) + "}"
    if origin in (list, tuple):
        return "LIST"
    if origin is dict:
        return "MAP"
    return {bool: "BOOL", int: "INT", float: "FLOAT", str: "TEXT"}.get(annotation, getattr(annotation, "__name__", "VALUE").upper())


def _takes_text(annotation: Any) -> bool:
    """Fields whose command-line value is kept as typed (not parsed as YAML)."""
    if annotation is str:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    return origin in (typing.Union, types.UnionType) and str in args and all(a in (str, type(None)) for a in args)


def _is_bool(annotation: Any) -> bool:
    return annotation is bool


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if value == "":
        return '""'
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return str(value)


# ---------------------------------------------------------------------------- registration


@dataclasses.dataclass(frozen=True)
class ConfigCommand:
    """A subcommand: its config class, what runs it, and where its shipped configs are."""

    config_class: type
    run: Callable[[Any], int | None]
    shipped: str | None = None  # folder under vjepa_wm/configs holding NAME.yaml presets

    def shipped_names(self) -> list[str]:
        folder = shipped_folder(self.shipped)
        return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")) if folder else []

    def config_path(self, choice: str | None) -> str | Path | None:
        """A YAML path as given, or the shipped config of that name."""
        if choice is None:
            return None
        if Path(choice).is_file() or choice.endswith((".yaml", ".yml")) or "/" in choice:
            return choice
        folder = shipped_folder(self.shipped)
        if folder is not None and (folder / f"{choice}.yaml").is_file():
            return folder / f"{choice}.yaml"
        shipped = ", ".join(self.shipped_names()) or "none"
        raise ConfigError(f"{choice}: no such config file, nor a shipped config of that name (shipped: {shipped})")


def shipped_folder(name: str | None) -> Path | None:
    """The folder of configs shipped with the package (found after a pip install as in a checkout)."""
    if name is None:
        return None
    folder = Path(str(resources.files("vjepa_wm") / "configs" / name))
    return folder if folder.is_dir() else None


def add_config_command(subparsers, name: str, command: ConfigCommand, help: str, description: str | None = None):
    """Register `name` with one option per field of the command's config class; returns the parser."""
    cls = command.config_class
    positionals = " ".join(leaf.dotted.upper() for leaf in command_leaves(cls) if leaf.positional)
    usage = f"%(prog)s {positionals + ' ' if positionals else ''}[--config FILE|NAME] [--section.field VALUE ...]"
    parser = subparsers.add_parser(name, help=help, description=description or help, allow_abbrev=False, usage=usage,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    shipped = command.shipped_names()
    config_help = "YAML file with the settings below" + (f", or a shipped config: {', '.join(shipped)}" if shipped else "")
    parser.add_argument("--config", metavar="FILE|NAME", help=config_help + "; options given here override it")
    parser.add_argument("--print-config", action="store_true", help="print the resolved settings as YAML and exit")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for leaf in command_leaves(cls):
        if leaf.positional:
            parser.add_argument(OPTION_PREFIX + leaf.dotted, metavar=leaf.dotted.upper(), nargs=leaf.positional,
                                default=argparse.SUPPRESS, help=leaf.doc)
            continue
        section = leaf.dotted.rpartition(".")[0]
        if section not in groups:
            title = f"{section} settings" if section else "settings"
            groups[section] = parser.add_argument_group(title, _section_doc(cls, section))
        _add_leaf(groups[section], leaf)
    parser.set_defaults(func=lambda args: run_config_command(command, args), config_command=command)
    return parser


def _section_doc(cls: type, section: str) -> str | None:
    """First line of the section's class docstring (not the signature dataclasses write when it has none)."""
    if not section:
        return None
    node = cls
    for part in section.split("."):
        node = typing.get_type_hints(node)[part]
    doc = (node.__doc__ or "").strip()
    if not doc or doc.startswith(f"{node.__name__}("):
        return None
    return doc.splitlines()[0]


def _add_leaf(group, leaf: Leaf) -> None:
    names = {f"--{leaf.dotted}", f"--{leaf.dotted.replace('_', '-')}"}
    dest = OPTION_PREFIX + leaf.dotted
    text = f"{leaf.doc} " if leaf.doc else ""
    text = (text + f"(default: {_shown(leaf.default)})").replace("%", "%%")  # argparse formats help with %
    if _is_bool(leaf.annotation):
        group.add_argument(*sorted(names), dest=dest, nargs="?", const="true", default=argparse.SUPPRESS, metavar="BOOL",
                           help=text)
        last = leaf.dotted.rpartition(".")
        negated = {f"--{last[0]}{last[1]}no_{last[2]}", f"--{last[0]}{last[1]}no-{last[2].replace('_', '-')}"}
        group.add_argument(*sorted(negated), dest=dest, action="store_const", const="false", default=argparse.SUPPRESS,
                           help=argparse.SUPPRESS)
        return
    group.add_argument(*sorted(names), dest=dest, default=argparse.SUPPRESS, metavar=type_label(leaf.annotation), help=text)


def given_settings(command: ConfigCommand, args: argparse.Namespace) -> dict[str, Any]:
    """The settings typed on the command line, as {dotted: value} (text fields as typed, the rest as YAML)."""
    by_name = {leaf.dotted: leaf for leaf in command_leaves(command.config_class)}
    settings: dict[str, Any] = {}
    for key, raw in vars(args).items():
        if not key.startswith(OPTION_PREFIX):
            continue
        dotted = key[len(OPTION_PREFIX):]
        settings[dotted] = _value(raw, by_name[dotted].annotation, dotted)
    return settings


def _value(raw: Any, annotation: Any, dotted: str) -> Any:
    if isinstance(raw, list):  # a positional taking several values
        return [_value(item, typing.get_args(annotation)[0] if typing.get_args(annotation) else str, dotted) for item in raw]
    if _takes_text(annotation):
        return None if raw in ("null", "~") and type(None) in typing.get_args(annotation) else raw
    try:
        return yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        return raw


def run_config_command(command: ConfigCommand, args: argparse.Namespace) -> int:
    settings = given_settings(command, args)
    settings.update(parse_overrides(list(getattr(args, "extra", []))))  # unknown keys fail with their name
    config = load_config(command.config_class, command.config_path(args.config), settings)
    if args.print_config:
        sys.stdout.write(yaml.safe_dump(to_dict(config), sort_keys=False))
        return 0
    return int(command.run(config) or 0)
