"""Typed run configuration: dataclasses, YAML presets, ``--set`` overrides and validation.

A config is a tree of dataclasses addressed by dotted keys (``train.steps``). Presets are partial YAML
trees applied over the defaults; ``--set key=value`` overrides are type-checked against the field types.
Every error is a one-line :class:`ConfigError` that names the offending key.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from ..data.registry import reference_split
from .keys import (apply_tree, did_you_mean, diff, parse_override, set_value, to_dict, to_flat, valid_keys,
                   with_legacy_keys, yaml_load)
from .schema import (AugConfig, Config, ConfigError, DataConfig, DistConfig, EvalConfig, LogConfig, LossConfig, ModelConfig,
                     OptimConfig, RegConfig, RobustConfig, SpeedConfig, TrainConfig)
from .validate import validate


def from_dict(tree: dict) -> Config:
    """A saved config (a checkpoint's, a run's config.yaml), older ones with their keys' values of the time."""
    cfg = Config()
    apply_tree(cfg, with_legacy_keys(tree))
    return _resolved(cfg)


def _resolved(cfg: Config) -> Config:
    """``cfg`` validated, with ``eval.ref: auto`` made the dataset's reference split (so a saved config says
    which split it used)."""
    validate(cfg)
    if cfg.eval.ref == "auto":
        cfg.eval.ref = reference_split(cfg.data.name)
    return cfg


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def load_yaml(path: str | Path) -> dict:
    """The mapping in a YAML config file; a missing, unreadable, binary or non-YAML file is a ConfigError."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder: give the YAML file's path")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
        tree = yaml_load(text) or {}
    except OSError as e:
        raise ConfigError(f"config file {path} cannot be read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not a UTF-8 text file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections")
    return tree


def build_config(base_tree: dict | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then a preset/config tree, then ``key=value`` overrides; validated."""
    cfg = Config()
    if base_tree:
        apply_tree(cfg, base_tree)
    for text in overrides or []:
        set_value(cfg, *parse_override(text))
    return _resolved(cfg)


__all__ = ["AugConfig", "Config", "ConfigError", "DataConfig", "DistConfig", "EvalConfig", "LogConfig", "LossConfig", "ModelConfig",
           "OptimConfig", "RegConfig", "RobustConfig", "SpeedConfig", "TrainConfig", "apply_tree", "build_config",
           "did_you_mean", "diff", "from_dict", "load_yaml", "parse_override", "set_value", "to_dict", "to_flat",
           "to_yaml", "valid_keys", "validate"]
