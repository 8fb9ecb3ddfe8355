"""A hostile user against ``condgan prepare`` and the data layer (issue 28): bounds, disk space, replaced source
files, duplicated or hand-edited metadata, links, read-only caches, interrupts, warnings, and images that are
not at data.resolution. Every bad input is a one-line error naming the culprit (exit 2), never a traceback."""
from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import one_line_error, run_main, tiny_train_args
from layouts import make_afhq, make_cub, make_imagenet, write_class_list
from PIL import Image

import condgan.data.store as store_mod
from condgan.config import DataConfig, build_config, from_dict, to_dict
from condgan.config.keys import resume_conflicts
from condgan.data import DataError, load_dataset
from condgan.data.prepared import prepare, store_key
from condgan.data.readers import list_source
from condgan.data.store import CHUNK


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONDGAN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"




def prepare_args(root: Path, *extra: str, data: str = "afhq", resolution: str = "16") -> list[str]:
    return ["prepare", "--data", data, "--root", str(root), "--resolution", resolution, "--no-progress", *extra]


def bmp_afhq(root: Path, side: int = 20) -> dict[str, Path]:
    """A tiny AFHQ of BMP files (one per class and split): every file has the same byte size."""
    files = {}
    for split in ("train", "val"):
        for k, name in enumerate(("cat", "dog")):
            path = root / split / name / f"{name}.bmp"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((side, side, 3), 40 + 60 * k, np.uint8)).save(path)
            files[f"{split}/{name}"] = path
    return files


# -- finding 5: resolution bound and disk space -------------------------------------------------------------

def test_prepare_resolution_beyond_the_largest_net_is_refused_naming_the_bound(tmp_path, capsys, monkeypatch):
    fake = make_afhq(tmp_path / "src", per_class=1, val_per_class=1)

    def no_store(*args):  # a regression fails here, before a 180 GB sparse file and 30 GB images
        raise AssertionError("a store was started")

    monkeypatch.setattr(store_mod, "_new_partial", no_store)
    code, _, err = run_main(capsys, *prepare_args(fake.root, resolution="100000"))
    assert code == 2
    one_line_error(err, "--resolution", "100000", "512")
    with pytest.raises(DataError, match="resolution 100000 is larger than any condgan network takes: at most 512"):
        prepare("afhq", str(fake.root), 100000, "lanczos")  # the library call too
    with pytest.raises(DataError, match="data.resolution 1024"):
        load_dataset(DataConfig(resolution=1024, resize=True))


def test_prepare_checks_free_space_before_writing_the_store(tmp_path, capsys, monkeypatch):
    fake = make_afhq(tmp_path / "src", per_class=2, val_per_class=1)
    real = shutil.disk_usage
    monkeypatch.setattr(store_mod.shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    code, _, err = run_main(capsys, *prepare_args(fake.root))
    assert code == 2
    folder = store_key("afhq", str(fake.root), 16, "lanczos").folder()
    one_line_error(err, str(folder), "needs 4.7 kB", "1.0 kB are free")  # 6 images of 3 x 16 x 16, 6 labels
    assert not list(folder.rglob("images.u8"))


# -- finding 6: a replaced source file --------------------------------------------------------------------

def test_a_source_image_replaced_by_one_of_the_same_size_is_prepared_again(tmp_path):
    files = bmp_afhq(tmp_path / "src")
    cat = files["train/cat"]
    before = cat.stat()
    (_, folder, first), = prepare("afhq", str(tmp_path / "src"), 16, "lanczos", splits=("train",), progress=False)
    replacement = tmp_path / "new.bmp"
    Image.fromarray(np.full((20, 20, 3), 222, np.uint8)).save(replacement)
    os.replace(replacement, cat)  # as a copy tool does: a new file, of the same size, with a later time
    os.utime(cat, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    assert cat.stat().st_size == before.st_size
    (_, again, second), = prepare("afhq", str(tmp_path / "src"), 16, "lanczos", splits=("train",), progress=False)
    assert second["source_hash"] != first["source_hash"]
    data = load_dataset(DataConfig(name="afhq", root=str(tmp_path / "src"), resolution=16), "train")
    assert data.images[0].unique().tolist() == [222]


# -- finding 11: duplicated metadata lines, an edited manifest -----------------------------------------------

def test_cub_images_txt_listing_a_file_twice_with_two_labels_is_refused(tmp_path, capsys):
    fake = make_cub(tmp_path / "src")
    base = fake.extra["base"]
    first = fake.files("train")[0]
    listed = first.relative_to(base / "images").as_posix()
    for name, value in (("images.txt", listed), ("image_class_labels.txt", "3"), ("train_test_split.txt", "1")):
        with open(base / name, "a") as f:
            f.write(f"999 {value}\n")
    lines = (base / "images.txt").read_text().splitlines()
    where = [n for n, line in enumerate(lines, 1) if line.endswith(" " + listed)]
    code, _, err = run_main(capsys, *prepare_args(fake.root, data="cub200"))
    assert code == 2
    one_line_error(err, str(base / "images.txt"), f"line {where[1]}", f"line {where[0]}", listed)


def test_cub_classes_txt_naming_one_class_twice_is_refused(tmp_path, capsys):
    fake = make_cub(tmp_path / "src")
    classes = fake.extra["classes.txt"]
    classes.write_text(classes.read_text().replace("002.Laysan_Albatross", "001.Black_footed_Albatross"))
    lines = classes.read_text().splitlines()
    where = sorted(n for n, line in enumerate(lines, 1) if line.endswith(" 001.Black_footed_Albatross"))
    code, _, err = run_main(capsys, *prepare_args(fake.root, data="cub200"))
    assert code == 2
    one_line_error(err, str(classes), f"line {where[1]}", f"line {where[0]}", "001.Black_footed_Albatross")


def test_prepare_workers_beyond_reason_is_refused(tmp_path, capsys, monkeypatch):
    fake = make_afhq(tmp_path / "src", per_class=1, val_per_class=1)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    code, _, err = run_main(capsys, *prepare_args(fake.root, "--workers", "100000"))
    assert code == 2  # not thousands of forked decoders on a large dataset
    one_line_error(err, "--workers", "100000", "at most 8")


def test_a_hand_edited_store_manifest_is_refused_saying_how_to_rebuild(tmp_path, capsys):
    fake = make_afhq(tmp_path / "src", per_class=1, val_per_class=1)
    (_, folder, manifest), = prepare("afhq", str(fake.root), 16, "lanczos", splits=("train",), progress=False)
    path = folder / "manifest.json"
    edited = json.loads(path.read_text())
    edited["classes"] = edited["classes"][::-1]  # classes reordered by hand
    path.write_text(json.dumps(edited, indent=1))
    cfg = DataConfig(name="afhq", root=str(fake.root), resolution=16)
    with pytest.raises(DataError) as e:
        load_dataset(cfg, "train")
    message = str(e.value)
    assert "\n" not in message and str(path) in message and "checksum" in message
    assert "condgan prepare --data afhq" in message
    # the rerun of prepare rebuilds it, saying so, and the store reads again with the right classes
    code, _, err = run_main(capsys, *prepare_args(fake.root, "--split", "train"))
    assert code == 0 and err.count("condgan: warning:") == 1 and str(path) in err and "rebuilding" in err
    assert load_dataset(cfg, "train").classes == tuple(manifest["classes"])


def as_format_1(folder: Path, source_root: Path, **edits) -> Path:
    """Rewrite a store split's manifest as condgan wrote it before format 2 (no checksum, no labels hash, a
    source hash without modification times), with ``edits``; returns the manifest's path."""
    path = folder / "manifest.json"
    old = {k: v for k, v in json.loads(path.read_text()).items() if k not in ("checksum", "labels_sha1")}
    source = list_source("afhq", source_root, folder.name, None)
    old.update(format=1, source_hash=store_mod.source_hash(source, source_root, times=False), **edits)
    path.write_text(json.dumps(old, indent=1))
    return path


@pytest.mark.parametrize("edit", [{}, {"classes": ["dog", "cat"]}, {"identity": "0" * 16}])
def test_a_store_of_format_1_is_checked_and_upgraded_not_decoded_again(tmp_path, capsys, edit):
    """An unedited format-1 store of the same sources is brought to format 2 in place (the pixels are not
    decoded again: ImageNet's hour); one whose class list or pixel identity no longer agrees is rebuilt."""
    fake = make_afhq(tmp_path / "src", per_class=2, val_per_class=1)
    (_, folder, manifest), = prepare("afhq", str(fake.root), 16, "lanczos", splits=("train",), progress=False)
    as_format_1(folder, fake.root, **edit)
    images = (folder / "images.u8").stat()
    code, _, err = run_main(capsys, *prepare_args(fake.root, "--split", "train"))
    assert code == 0 and err.count("condgan: warning:") == 1, err
    kept = (folder / "images.u8").stat()
    assert ("brought to format 2" in err) == (not edit) and ("rebuilding" in err) == bool(edit)
    assert (kept.st_ino == images.st_ino) == (not edit)  # upgraded in place, or rebuilt into a new folder
    data = load_dataset(DataConfig(name="afhq", root=str(fake.root), resolution=16), "train")
    assert data.classes == tuple(manifest["classes"]) and data.identity == manifest["identity"]


def test_edited_store_labels_are_refused(tmp_path):
    fake = make_afhq(tmp_path / "src", per_class=2, val_per_class=1)
    (_, folder, _), = prepare("afhq", str(fake.root), 16, "lanczos", splits=("train",), progress=False)
    labels = np.load(folder / "labels.npy")
    np.save(folder / "labels.npy", labels[::-1].copy())  # the same counts, other images' labels
    with pytest.raises(DataError, match="labels.npy does not match its manifest") as e:
        load_dataset(DataConfig(name="afhq", root=str(fake.root), resolution=16), "train")
    assert str(folder / "labels.npy") in str(e.value)


# -- finding 12: errors that help ------------------------------------------------------------------------------

def test_a_self_looping_or_dangling_link_is_named(tmp_path, capsys):
    fake = make_afhq(tmp_path / "src", per_class=1, val_per_class=1)
    loop = fake.root / "train" / "cat" / "loop.jpg"
    loop.symlink_to(loop.name)
    code, _, err = run_main(capsys, *prepare_args(fake.root))
    assert code == 2
    one_line_error(err, str(loop))
    loop.unlink()
    dangling = fake.root / "train" / "dog" / "gone.jpg"
    dangling.symlink_to(tmp_path / "nowhere.jpg")
    code, _, err = run_main(capsys, *prepare_args(fake.root))
    assert code == 2
    one_line_error(err, str(dangling))
    dangling.unlink()
    # the in-memory folder dataset: the same
    folder_loop = fake.root / "train" / "wild" / "loop.png"
    folder_loop.symlink_to(folder_loop.name)
    with pytest.raises(DataError, match="loop.png") as e:
        load_dataset(DataConfig(name="folder", root=str(fake.root / "train"), resolution=16, resize=True))
    assert str(folder_loop) in str(e.value)


def test_a_finished_store_reads_from_a_read_only_cache(tmp_path, capsys):
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs unshare (a private read-only mount)")
    fake = make_afhq(tmp_path / "src", per_class=4, val_per_class=2)
    args = prepare_args(fake.root, resolution="32")
    assert run_main(capsys, *args)[0] == 0
    cache = tmp_path / "cache"
    train = tiny_train_args(tmp_path / "run", "data.name=afhq", f"data.root={fake.root}", "data.resolution=32",
                            "train.steps=1", "train.batch_size=4")
    # prepare again (a finished store: nothing to do), then train on it: in one process, to start torch once
    both = f"import sys; from condgan.cli import main; sys.exit(main({args!r}) or main({train!r}))"
    # a private read-only view of the cache (checked: nothing can be created in it), then the commands
    script = 'mount --bind -o ro "$0" "$0" || exit 98; touch "$0/x" 2>/dev/null && exit 99; exec "$@"'
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script, str(cache), sys.executable, "-c", both],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "CONDGAN_CACHE": str(cache)})
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and "training done: 1 steps" in done.stdout, done.stderr


def test_prepare_resolution_zero_names_the_flag_as_typed(tmp_path, capsys):
    fake = make_afhq(tmp_path / "src", per_class=1, val_per_class=1)
    code, _, err = run_main(capsys, *prepare_args(fake.root, resolution="0"))
    assert code == 2
    line = one_line_error(err, "--resolution", "0")
    assert "data.resolution" not in line


def test_the_train_hint_names_the_class_list_by_its_absolute_path(tmp_path, capsys, monkeypatch):
    fake = make_imagenet(tmp_path / "src", wnids=("n01440764", "n02085620"), per_class=1, val_per_class=1)
    write_class_list(tmp_path / "classes143.txt", ("n02085620",))
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(capsys, *prepare_args(fake.root, "--classes", "classes143.txt", data="imagenet143"))
    assert code == 0, err
    hint = out.split("train on it with: ", 1)[1].split()
    sets = [hint[i + 1] for i, word in enumerate(hint) if word == "--set"]
    assert f"data.classes={tmp_path / 'classes143.txt'}" in sets
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the hint works from any folder
    cfg = DataConfig()
    for setting in sets:
        key, value = setting.removeprefix("data.").split("=", 1)
        setattr(cfg, key, type(getattr(cfg, key))(value))
    assert load_dataset(cfg, "train").classes == ("n02085620",)


def test_no_space_left_during_prepare_names_the_store(tmp_path, capsys, monkeypatch):
    fake = make_afhq(tmp_path / "src", per_class=1, val_per_class=1)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as fdatasync reports it: no file name

    monkeypatch.setattr(store_mod, "_sync", full)
    code, _, err = run_main(capsys, *prepare_args(fake.root, "--workers", "1"))
    assert code == 2
    folder = store_key("afhq", str(fake.root), 16, "lanczos").folder()
    one_line_error(err, "No space left on device", str(folder), "rerun")


def test_third_party_warnings_are_condgan_warning_lines_naming_the_file(tmp_path, capsys, monkeypatch):
    fake = make_afhq(tmp_path / "src", per_class=1, val_per_class=1)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # 70 x 50 = 3500: PIL's decompression-bomb warning
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after main() replaces it
    code, _, err = run_main(capsys, *prepare_args(fake.root, "--workers", "1", "--split", "train"))
    assert code == 0, err
    lines = err.strip().splitlines()
    assert lines and all(line.startswith("condgan: warning: ") for line in lines), err
    assert str(fake.files("train")[0]) in lines[0] and "decompression bomb" in lines[0]
    warnings.warn("a library's own warning", RuntimeWarning)  # any other warning: one line too
    assert capsys.readouterr().err == "condgan: warning: a library's own warning (RuntimeWarning)\n"


def test_ctrl_c_in_prepare_leaves_one_line_and_the_rerun_resumes(tmp_path):
    root = tmp_path / "src"
    fake = make_afhq(root, classes=("cat", "dog"), per_class=1, val_per_class=1, junk=False)
    big = io.BytesIO()  # 512 px of noise: each chunk decodes for about a second, so Ctrl-C lands mid-store
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)).save(big, "JPEG")
    jpeg = big.getvalue()
    for k in range(6 * CHUNK):  # 6 chunks of decoding; one JPEG written many times is quick to fabricate
        (root / "train" / "cat" / f"copy_{k:05d}.jpg").write_bytes(jpeg)
    partial = store_key("afhq", str(root), 24, "lanczos").folder() / "train.partial"
    command = [sys.executable, "-m", "condgan", *prepare_args(root, "--split", "train", "--workers", "2",
                                                              resolution="24")]
    for attempt in range(3):  # a run that finished before the interrupt came proves nothing: go again
        shutil.rmtree(tmp_path / "cache", ignore_errors=True)
        # its own process group, as a terminal's job is; Ctrl-C's default action even where this test runs in
        # a background job (whose children start with SIGINT ignored)
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, preexec_fn=default_ctrl_c)
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline:
            if (partial / "done.log").exists() and (partial / "done.log").read_text().count("\n") >= 1:
                os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches every process of the group
                break
            time.sleep(0.005)
        err = proc.communicate(timeout=60)[1]
        if proc.returncode == 130:
            break
    assert proc.returncode == 130, err
    assert err.splitlines() == [err.splitlines()[0]] and err.startswith("condgan: interrupted"), err
    assert "finish the store" in err  # not train's "resume from the last checkpoint"
    done = (partial / "done.log").read_text().count("\n")
    assert 1 <= done < 7  # the interrupt left the finished chunks for the rerun
    (_, folder, manifest), = prepare("afhq", str(root), 24, "lanczos", splits=("train",), workers=2, progress=False)
    assert manifest["count"] == 6 * CHUNK + 2 and not partial.exists()


def default_ctrl_c() -> None:
    """In the child before exec: SIGINT's default disposition, so Python installs its KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# -- finding 14: images not at data.resolution -----------------------------------------------------------------

def test_npz_of_another_size_is_an_error_unless_data_resize(tmp_path, capsys):
    path = tmp_path / "small.npz"
    rng = np.random.default_rng(0)
    np.savez(path, images=rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8), labels=np.arange(40) % 10)
    sets = ["data.name=npz", f"data.root={path}", "train.steps=1"]
    code, _, err = run_main(capsys, *tiny_train_args(tmp_path / "run", *sets))
    assert code == 2
    one_line_error(err, str(path), "16x16", "data.resolution", "32", "data.resize=true")
    code, _, err = run_main(capsys, *tiny_train_args(tmp_path / "run", *sets, "data.resize=true"))
    assert code == 0, err
    assert "resize: true" in (tmp_path / "run" / "config.yaml").read_text()  # the run records it


def test_builtin_sources_at_another_resolution_need_data_resize(tmp_path):
    for name in ("mnist5k", "mnist5k_pairs"):
        with pytest.raises(DataError, match="data.resize") as e:
            load_dataset(DataConfig(name=name, resolution=64), "test")
        assert "\n" not in str(e.value) and name in str(e.value) and "32" in str(e.value)
        assert load_dataset(DataConfig(name=name, resolution=64, resize=True), "test").images.shape[-1] == 64
    from fakes import make_cifar_archive

    archive = make_cifar_archive(tmp_path / "cifar-10-python.tar.gz")
    with pytest.raises(DataError, match="data.resize"):
        load_dataset(DataConfig(name="cifar10", root=str(archive), resolution=64, download=False), "test")
    assert load_dataset(DataConfig(name="cifar10", root=str(archive), resolution=32, download=False), "test")


def test_a_folder_image_not_at_the_resolution_is_named(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (16, 16), (9, 9, 9)).save(tmp_path / name / "0.png")
    Image.new("RGB", (20, 16), (9, 9, 9)).save(tmp_path / "b" / "1.png")
    with pytest.raises(DataError, match="data.resize") as e:
        load_dataset(DataConfig(name="folder", root=str(tmp_path), resolution=16))
    assert str(tmp_path / "b" / "1.png") in str(e.value) and "20x16" in str(e.value)
    assert load_dataset(DataConfig(name="folder", root=str(tmp_path), resolution=16, resize=True)).images.shape == (
        3, 3, 16, 16)


def test_data_resize_is_documented_and_old_runs_keep_their_resizing():
    from condgan.config.docs import key_docs

    doc = next(d for d in key_docs() if d.key == "data.resize")
    assert doc.default is False and "bilinear" in doc.meaning and "bicubic" in doc.meaning
    cfg = build_config(None, ["data.resolution=32"])
    tree = to_dict(cfg)
    del tree["data"]["resize"]  # a config saved before the key existed: its data was resized silently
    old = from_dict(tree)
    assert old.data.resize is True
    assert resume_conflicts(old, cfg) == []  # the images are the same; the data identity guards them
    assert torch.equal(load_dataset(old.data, "test").images, load_dataset(cfg.data, "test").images)
