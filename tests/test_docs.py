"""Every command of the README and the manual runs as written: a renamed flag or config key fails here.

Each page's bash and python blocks run in order in a fresh folder holding ``runs/demo`` (a finished run of the
demo preset); ``condgan`` lines run in this process (fast), anything else through bash. Training is kept tiny
without touching the text: every ``condgan train`` gets ``--smoke 1`` (one step on fabricated images of the
preset's shape) and narrow nets appended, so a command for ImageNet runs here too. Blocks marked
``<!-- illustrative: REASON -->`` are only checked for that reason (conventions: tests/doc_blocks.py).
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from condgan.cli import main, make_parser, resolve_config
from condgan.config import build_config
from condgan.config.schema import Config
from condgan.presets import with_base
from doc_blocks import LANGUAGES, RUNNABLE, Block, blocks, pages

# Appended to every `condgan train` of the docs: one step on fabricated data, a small batch and narrow nets
SMOKE = ["--smoke", "1", "--set", "train.batch_size=8"]
NARROW = {"stylegan2": ["model.channel_max=16", "model.w_dim=16", "model.mapping_layers=2"],
          "other": ["model.g_width=8", "model.d_width=8"]}
CONFIG_SECTIONS = set(Config.__dataclass_fields__) | {"base", "description", "reproduces"}


def all_blocks() -> list[Block]:
    return [b for p in pages() for b in blocks(p)]


def runnable_pages() -> list[str]:
    return sorted({b.page for b in all_blocks() if b.lang in RUNNABLE and b.illustrative is None})


def test_every_fence_names_its_language_and_every_skipped_block_says_why():
    for b in all_blocks():
        assert b.lang in LANGUAGES, f"{b.where}: a fence needs one of {', '.join(LANGUAGES)}, got {b.lang!r}"
        if b.illustrative is not None:
            assert b.lang in RUNNABLE and len(b.illustrative) > 5, f"{b.where}: illustrative needs a reason"
        assert b.file is None or b.lang == "yaml", f"{b.where}: only a yaml block is written to a file"


def test_the_site_lists_every_page():
    """mkdocs.yml's nav holds every page of docs/ (``mkdocs build --strict``, a CI step, checks the links)."""
    root = Path(__file__).resolve().parent.parent
    nav = yaml.safe_load((root / "mkdocs.yml").read_text())["nav"]

    def leaves(item) -> list[str]:
        if isinstance(item, str):
            return [item]
        items = item.values() if isinstance(item, dict) else item
        return [leaf for i in items for leaf in leaves(i)]

    assert sorted(leaves(nav)) == sorted(p.name for p in (root / "docs").glob("*.md"))


def test_every_yaml_config_block_is_a_valid_config():
    for b in (b for b in all_blocks() if b.lang == "yaml"):
        tree = yaml.safe_load(b.text)
        if isinstance(tree, dict) and set(tree) <= CONFIG_SECTIONS:  # a config: every key must exist
            tree = {k: v for k, v in tree.items() if k not in ("description", "reproduces")}
            build_config(with_base(tree), [])


@pytest.fixture(scope="session")
def docs_env(tmp_path_factory) -> dict:
    """A cache the pages share (fabricated data, the evaluation classifier) and a finished tiny demo run to copy."""
    root = tmp_path_factory.mktemp("docs")
    demo, cache = root / "demo", str(root / "cache")
    with pytest.MonkeyPatch.context() as patch:  # the other test files keep their own cache
        patch.setenv("CONDGAN_CACHE", cache)
        demo_args = ["train", "--preset", "mnist5k-reacgan", "--out", str(demo)]
        assert main(demo_args + tiny_train(demo_args)) == 0
    return {"demo": demo, "cache": cache}


@pytest.mark.parametrize("page", runnable_pages())
def test_page_runs_as_written(page, docs_env, tmp_path, monkeypatch, capsys):
    shutil.copytree(docs_env["demo"], tmp_path / "runs" / "demo")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONDGAN_CACHE", docs_env["cache"])
    for b in blocks(Path(__file__).resolve().parent.parent / page):
        if b.file is not None:
            (tmp_path / b.file).write_text(b.text)
        elif b.lang == "python" and b.illustrative is None:
            exec(compile(b.text, b.where, "exec"), {"__name__": "__docs__"})  # noqa: S102 - our own docs
        elif b.lang == "bash" and b.illustrative is None:
            for line in command_lines(b.text):
                run_line(line, b, capsys)


def command_lines(text: str) -> list[str]:
    """The block's commands: continuation lines joined, blank and comment-only lines left out."""
    joined = text.replace("\\\n", " ")
    return [line for line in joined.splitlines() if shlex.split(line, comments=True)]


def tiny_train(words: list[str]) -> list[str]:
    """What a documented ``condgan train ...`` (``words``) gets appended: smoke, small batch, narrow nets."""
    try:  # condgan's own parser reads the command's preset, config and overrides
        args = make_parser().parse_args(words[words.index("condgan") + 1:])
        arch = resolve_config(args.preset, args.config, args.set).model.arch
    except (SystemExit, Exception):  # noqa: BLE001 - the command itself will say what is wrong with it
        arch = "other"
    return SMOKE + [a for s in NARROW.get(arch, NARROW["other"]) for a in ("--set", s)]


def run_line(line: str, block: Block, capsys) -> None:
    """Run one documented command (condgan in this process, the rest in bash); it must succeed."""
    words = shlex.split(line, comments=True)
    trains = "condgan" in words and words[words.index("condgan") + 1:words.index("condgan") + 2] == ["train"]
    if words[0] == "condgan":
        capsys.readouterr()
        try:
            code = main(words[1:] + (tiny_train(words) if trains else []))
        except SystemExit as stop:  # argparse: an unknown flag or a missing argument
            code = stop.code
        err = capsys.readouterr().err
        assert code == 0, f"{block.where}: `{line.strip()}` exited {code}: {err[-2000:]}"
        return
    # as written (pipes, globs); a training command loses its comment and gets the tiny arguments appended
    command = " ".join(shlex.quote(w) for w in words + tiny_train(words)) if trains else line
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", command], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{block.where}: `{line.strip()}` exited {done.returncode}: {done.stderr[-2000:]}"


def test_a_renamed_flag_fails_the_page(docs_env, tmp_path, monkeypatch, capsys):
    """The check above can fail: a flag the parser does not know stops its block, naming the page and line."""
    shutil.copytree(docs_env["demo"], tmp_path / "runs" / "demo")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONDGAN_CACHE", docs_env["cache"])
    block = Block("docs/x.md", 7, "bash", "condgan sample runs/demo --per_class 2 --out runs/demo/x\n")
    with pytest.raises(AssertionError, match="docs/x.md:7.*exited 2.*unrecognized arguments: --per_class"):
        run_line(command_lines(block.text)[0], block, capsys)
    block.text = "condgan train --preset mnist5k-reacgan --out runs/x --set train.stesp=5\n"
    with pytest.raises(AssertionError, match="docs/x.md:7.*train.stesp"):
        run_line(command_lines(block.text)[0], block, capsys)
