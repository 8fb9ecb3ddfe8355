"""YAML presets shipped with condgan: partial configs applied over the defaults of condgan.config."""
from __future__ import annotations

import difflib
from importlib import resources

from ..config import ConfigError, load_yaml

DEFAULT_PRESET = "mnist5k-reacgan"


def _files() -> dict[str, object]:
    root = resources.files(__package__)
    return {p.name[:-5]: p for p in root.iterdir() if p.name.endswith(".yaml")}


def list_presets() -> dict[str, tuple[str, str]]:
    """Preset name -> (the paper row it reproduces, its one-line description), sorted by name."""
    out = {}
    for name, path in sorted(_files().items()):
        with resources.as_file(path) as f:
            tree = load_yaml(f)
        out[name] = (str(tree.get("reproduces", "")), str(tree.get("description", "")))
    return out


def load_preset(name: str) -> dict:
    """The preset's YAML tree; an unknown name is a one-line error with the closest preset."""
    files = _files()
    if name not in files:
        close = difflib.get_close_matches(name, files, n=1, cutoff=0.4)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown preset '{name}'{hint}; `condgan presets` lists them")
    with resources.as_file(files[name]) as f:
        return load_yaml(f)
