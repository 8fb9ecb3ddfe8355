"""Dotted keys over the config tree: the flat view, type-checked setting, overrides, comparison."""
from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import typing
from typing import Any

import yaml

from ..nets.registry import same_architecture
from .schema import Config, ConfigError

# ---------------------------------------------------------------------------------------------------
# flat view: dotted key -> (section object, field)

@functools.lru_cache(maxsize=None)
def _type_hints(cls: type) -> dict[str, Any]:
    """A section class's resolved field types (resolving the string annotations is the costly part of a key)."""
    return typing.get_type_hints(cls)


def _fields(obj: Any, prefix: str = "") -> dict[str, tuple[Any, dataclasses.Field, Any]]:
    """Dotted key -> (owning section object, its dataclass field, the field's resolved type)."""
    out: dict[str, tuple[Any, dataclasses.Field, Any]] = {}
    hints = _type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out.update(_fields(value, f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = (obj, f, hints[f.name])
    return out


def section_fields() -> dict[str, tuple[Any, dataclasses.Field, Any]]:
    """Every config key of the defaults: dotted key -> (its section object, dataclass field, resolved type)."""
    return _fields(Config())


def valid_keys() -> list[str]:
    return sorted(section_fields())


def did_you_mean(name: str, choices, cutoff: float = 0.4) -> str:
    """`` (did you mean 'X'?)`` for the closest of ``choices`` to a misspelt ``name``, or ""."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=cutoff)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unknown_key(key: str) -> ConfigError:
    return ConfigError(f"unknown config key '{key}'{did_you_mean(key, valid_keys(), 0.5)}")


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the field type ``hint``; YAML strings like '1e-4' become floats."""
    args = typing.get_args(hint)
    if type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None:
            if not math.isfinite(number):  # no setting means anything with NaN or infinity
                raise ConfigError(f"config key '{key}' must be a finite number; got {value!r}")
            return number
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):  # YAML read "--set train.grid_classes=3" as 3
            return str(value)
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"config key '{key}' expects {name}, got {value!r}")


def set_value(cfg: Config, key: str, value: Any) -> None:
    """Set dotted ``key`` to ``value`` with a type and choice check."""
    table = _fields(cfg)
    if key not in table:
        if any(k.startswith(key + ".") for k in table):
            raise ConfigError(f"config key '{key}' is a section; set one of its keys, e.g. '{key}.…'")
        raise _unknown_key(key)
    obj, f, hint = table[key]
    value = _coerce(key, value, hint)
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        shown = ", ".join(c or '""' for c in choices)  # "" (off) shown as such
        raise ConfigError(f"config key '{key}' must be one of {shown}; got {value!r}")
    setattr(obj, f.name, value)


def apply_tree(cfg: Config, tree: dict, prefix: str = "") -> None:
    """Apply a nested dict (a parsed YAML preset) over ``cfg``."""
    if not isinstance(tree, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.') or '<root>'}' must be a mapping")
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            apply_tree(cfg, v, key + ".")
        else:
            set_value(cfg, key, v)


class _Loader(yaml.SafeLoader):
    """YAML with YAML 1.2's numbers: plain decimal integers and floats only. PyYAML's YAML 1.1 reads ``010`` as
    8, ``0x10`` as 16 and ``12:30`` as 750; here they stay strings, so a number field reports them as errors."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?(0|[1-9][0-9_]*)$"),
                              list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)"
               r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def yaml_load(text: str) -> Any:
    """Parse YAML text (safe: plain data only; YAML 1.2 numbers, see :class:`_Loader`)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader


def parse_override(text: str) -> tuple[str, Any]:
    """Parse a ``key=value`` override; the value is read as YAML (``true``, ``3``, ``null``, ``abc``)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


# ---------------------------------------------------------------------------------------------------
# conversion

def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def to_flat(cfg: Config) -> dict[str, Any]:
    return {k: getattr(obj, f.name) for k, (obj, f, _h) in _fields(cfg).items()}


def _same(a: Any, b: Any) -> bool:
    """Equal values, NaN equal to NaN (a value read back from a checkpoint must match itself)."""
    both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return both_nan or a == b


def diff(a: Config, b: Config) -> list[str]:
    """Dotted keys whose values differ between two configs."""
    fa, fb = to_flat(a), to_flat(b)
    return [k for k in fa if not _same(fa[k], fb[k])]


# What a resumed run may change: how long it runs and how it reports, never what it computes. Descriptive keys
# are not compared at all. data.resize only allows resizing: the images it gives are checked by their identity.
RESUMABLE_KEYS = ("train.steps", "train.log_every", "train.sample_every", "train.ckpt_every", "train.keep_ckpts",
                  "train.grid_classes", "data.residency", "data.resize")
RESUMABLE_SECTIONS = ("eval.", "log.", "dist.")
DESCRIPTIVE_KEYS = ("description", "reproduces")


def with_legacy_keys(tree: dict) -> dict:
    """A saved config ``tree`` (a checkpoint's, a run's config.yaml) given the values its run had of keys added
    since: before data.resize, images of another size were resized without being asked."""
    data = tree.get("data")
    if isinstance(data, dict) and "resize" not in data:
        tree = {**tree, "data": {**data, "resize": True}}
    return tree


def resume_conflicts(saved: Config, requested: Config) -> list[str]:
    """``key (saved -> requested)`` for every key that differs and may not change when a run resumes."""
    fa, fb = to_flat(saved), to_flat(requested)
    return [f"{k} ({fa[k]!r} -> {fb[k]!r})" for k in diff(saved, requested)
            if k not in RESUMABLE_KEYS + DESCRIPTIVE_KEYS and not k.startswith(RESUMABLE_SECTIONS)
            and not (k == "model.arch" and same_architecture(fa[k], fb[k]))]
