"""YAML presets shipped with condgan: partial configs applied over the defaults of condgan.config.

A preset may start from another with ``base: NAME``: its own keys are merged over the base's tree (section
by section), so a paper row that changes one loss setting is a few lines.
"""
from __future__ import annotations

from importlib import resources

from ..config import ConfigError, did_you_mean, load_yaml

DEFAULT_PRESET = "mnist5k-reacgan"


def _files() -> dict[str, object]:
    root = resources.files(__package__)
    return {p.name[:-5]: p for p in root.iterdir() if p.name.endswith(".yaml")}


def list_presets() -> dict[str, tuple[str, str]]:
    """Preset name -> (the paper row it reproduces, its one-line description), sorted by name."""
    out = {}
    for name in sorted(_files()):
        tree = load_preset(name)
        out[name] = (str(tree.get("reproduces", "")), str(tree.get("description", "")))
    return out


def load_preset(name: str, _chain: tuple[str, ...] = ()) -> dict:
    """The preset's YAML tree (its ``base`` resolved); an unknown name is a one-line error with the closest."""
    files = _files()
    if name not in files:
        raise ConfigError(f"unknown preset '{name}'{did_you_mean(name, files)}; `condgan presets` lists them")
    if name in _chain:
        raise ConfigError(f"preset '{name}' is its own base (via {' -> '.join(_chain)})")
    with resources.as_file(files[name]) as f:
        tree = load_yaml(f)
    return with_base(tree, _chain + (name,))


def with_base(tree: dict, _chain: tuple[str, ...] = ()) -> dict:
    """``tree`` (a preset's or a user's config file) merged over the preset its ``base: NAME`` names, if any."""
    tree = dict(tree)
    base = tree.pop("base", None)
    if base is None:
        return tree
    if not isinstance(base, str) or not base:
        raise ConfigError(f"'base' must name a preset (see `condgan presets`); got {base!r}")
    return _merge(load_preset(base, _chain), tree)


def _merge(base: dict, over: dict) -> dict:
    """``over`` merged into a copy of ``base``, recursively for nested sections."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
