"""``condgan prepare``: the store of every reader's layout, pixels against PIL, resumption after kills, and
``condgan train`` on a prepared (and an unprepared) dataset."""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_main, tiny_train_args
from condgan.config import DataConfig
from condgan.data import DataError, load_dataset
from condgan.data.base import data_identity
from condgan.data.prepared import prepare, store_key
from condgan.data.store import CHUNK, read_manifest
from layouts import make_afhq, make_cub, make_imagenet, make_tiny_imagenet, write_class_list


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONDGAN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def pil_reference(path: Path, resolution: int, resample=Image.Resampling.LANCZOS) -> np.ndarray:
    """uint8 [3, R, R]: the file decoded, centre-cropped to its short side and resized, by PIL directly."""
    img = Image.open(path).convert("RGB")
    side = min(img.size)
    box = ((img.width - side) // 2, (img.height - side) // 2)
    img = img.crop((*box, box[0] + side, box[1] + side))
    if side != resolution:
        img = img.resize((resolution, resolution), resample)
    return np.asarray(img).transpose(2, 0, 1)


def data_cfg(name: str, root: Path, resolution: int, *sets: str) -> DataConfig:
    """A data config (not a whole run's: its nets need not exist at this resolution)."""
    cfg = DataConfig(name=name, root=str(root), resolution=resolution)
    for key, value in (s.removeprefix("data.").split("=", 1) for s in sets):
        setattr(cfg, key, type(getattr(cfg, key))(value))
    return cfg


def fabricate(kind: str, root: Path):
    """(dataset name, fake source as the reader should list it, extra prepare arguments)."""
    if kind == "tiny_imagenet":
        return kind, make_tiny_imagenet(root), []
    if kind == "cub200":
        return kind, make_cub(root), []
    if kind == "afhq":
        return kind, make_afhq(root), []
    fake = make_imagenet(root, wnids=("n01530575", "n01440764", "n01443537", "n02085620"), val_layout="flat_devkit")
    if kind == "imagenet":
        return kind, fake, []
    listed = ("n02085620", "n01440764")
    return kind, fake.subset(listed), ["--classes", str(write_class_list(root / "classes143.txt", listed))]


@pytest.mark.parametrize("kind", ["tiny_imagenet", "cub200", "imagenet", "imagenet143", "afhq"])
def test_prepare_gives_the_counts_classes_order_and_pixels_of_every_split(tmp_path, capsys, kind):
    name, fake, extra = fabricate(kind, tmp_path / "src")
    code, out, err = run_main(capsys, "prepare", "--data", name, "--root", str(fake.root), "--resolution", "32",
                              "--no-progress", "--workers", "2", *extra)
    assert code == 0, err
    held_out = next(s for s in fake.splits if s != "train")
    assert f"{name} train: {len(fake.splits['train'])} images of {len(fake.classes)} classes at 32 px" in out
    sets = [f"data.classes={extra[1]}"] if extra else []
    for split, source_split in (("train", "train"), ("test", held_out)):
        data = load_dataset(data_cfg(name, fake.root, 32, *sets), split)
        assert data.classes == fake.classes and data.num_classes == len(fake.classes)
        assert data.labels.tolist() == fake.labels(source_split)
        expected = np.stack([pil_reference(path, 32) for path in fake.files(source_split)])
        assert np.array_equal(data.images.numpy(), expected)
        assert data.identity == data_identity(data.images, data.labels, data.num_classes)


def test_no_resize_at_the_target_size_and_the_crop_is_centred(tmp_path, capsys):
    fake = make_afhq(tmp_path / "src", suffix=".png", size=(70, 50))  # PNG: the saved arrays come back exactly
    assert run_main(capsys, "prepare", "--data", "afhq", "--root", str(fake.root), "--resolution", "50",
                    "--no-progress", "--split", "train")[0] == 0
    data = load_dataset(data_cfg("afhq", fake.root, 50), "train")
    for image, path in zip(data.images.numpy(), fake.files("train")):
        assert np.array_equal(image, fake.pixels(path)[:, 10:60].transpose(2, 0, 1))


def test_the_resizer_is_in_the_key_and_the_manifest(tmp_path):
    fake = make_afhq(tmp_path / "src", per_class=1, val_per_class=1)
    (_, lanczos, m1), = prepare("afhq", str(fake.root), 24, "lanczos", splits=("train",), progress=False)
    (_, bicubic, m2), = prepare("afhq", str(fake.root), 24, "bicubic", splits=("train",), progress=False)
    assert lanczos != bicubic and (m1["resizer"], m2["resizer"]) == ("lanczos", "bicubic")
    data = load_dataset(data_cfg("afhq", fake.root, 24, "data.resizer=bicubic"), "train")
    first = fake.files("train")[0]
    assert np.array_equal(data.images[0].numpy(), pil_reference(first, 24, Image.Resampling.BICUBIC))
    assert not np.array_equal(data.images[0].numpy(), pil_reference(first, 24))


def test_a_changed_source_is_prepared_again_and_an_unchanged_one_is_kept(tmp_path):
    fake = make_afhq(tmp_path / "src", per_class=2, val_per_class=1)
    (_, folder, before), = prepare("afhq", str(fake.root), 16, "lanczos", splits=("train",), progress=False)
    stamp = (folder / "images.u8").stat().st_mtime_ns
    assert prepare("afhq", str(fake.root), 16, "lanczos", splits=("train",), progress=False)[0][2] == before
    assert (folder / "images.u8").stat().st_mtime_ns == stamp
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(fake.root / "train" / "cat" / "added.png")
    (_, again, after), = prepare("afhq", str(fake.root), 16, "lanczos", splits=("train",), progress=False)
    assert again == folder and after["count"] == before["count"] + 1 and after["source_hash"] != before["source_hash"]
    assert not list(folder.parent.glob("*.partial")) and not list(folder.parent.glob("*.stale"))


def store_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in ("images.u8", "labels.npy"):
        digest.update((folder / name).read_bytes())
    digest.update(json.dumps(read_manifest(folder), sort_keys=True).encode())
    return digest.hexdigest()


def test_killed_prepare_finishes_on_rerun_with_the_same_store(tmp_path, monkeypatch):
    # 6 chunks of decoding; each round SIGKILLs `condgan prepare` at a random point (after a random number of
    # finished chunks, or while hashing and sealing), reruns it, and compares the store with one made in one go
    # (by one process, where the CLI uses every core); 5 kills of a running process are required.
    fake = make_afhq(tmp_path / "src", classes=("cat", "dog"), per_class=3 * CHUNK, val_per_class=1, junk=False)
    env = {**os.environ, "CONDGAN_CACHE": str(tmp_path / "reference")}
    whole = prepare("afhq", str(fake.root), 24, "lanczos", splits=("train",), workers=1, progress=False)[0][1]
    reference = store_digest(whole)
    rng = random.Random(0)
    command = [sys.executable, "-m", "condgan", "prepare", "--data", "afhq", "--root", str(fake.root),
               "--resolution", "24", "--split", "train", "--no-progress"]
    kills, round_ = 0, 0
    while kills < 5 and round_ < 8:  # a kill drawn after the last chunk may come once the job is done: draw again
        round_ += 1
        env["CONDGAN_CACHE"] = str(tmp_path / f"round{round_}")
        monkeypatch.setenv("CONDGAN_CACHE", env["CONDGAN_CACHE"])  # for the rerun: the same code, in this process
        partial = store_key("afhq", str(fake.root), 24, "lanczos").folder() / "train.partial"
        after_chunks = rng.randint(0, 6)
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline:
            done = (partial / "done.log").read_text().count("\n") if (partial / "done.log").exists() else -1
            if done >= after_chunks:
                time.sleep(rng.uniform(0, 0.05))
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        proc.wait()
        kills += proc.returncode == -signal.SIGKILL
        rerun = prepare("afhq", str(fake.root), 24, "lanczos", splits=("train",), workers=2, progress=False)
        assert store_digest(rerun[0][1]) == reference
        assert not partial.exists()
    assert kills == 5, f"only {kills} of {round_} rounds killed a running prepare"


def test_an_interrupted_seal_is_finished_by_the_rerun(tmp_path, monkeypatch):
    fake = make_afhq(tmp_path / "src", per_class=2, val_per_class=1)
    reference = store_digest(prepare("afhq", str(fake.root), 16, "lanczos", splits=("train",), progress=False)[0][1])
    for store in tmp_path.glob("cache/stores/*"):
        shutil.rmtree(store)
    renames = []

    def interrupted_rename(self, target):  # the split folder's move into place is cut short
        renames.append(target)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(Path, "rename", interrupted_rename)
        prepare("afhq", str(fake.root), 16, "lanczos", splits=("train",), progress=False)
    assert renames and any(tmp_path.glob("cache/stores/*/train.partial/manifest.json"))
    folder = prepare("afhq", str(fake.root), 16, "lanczos", splits=("train",), progress=False)[0][1]
    assert store_digest(folder) == reference


def test_train_on_an_unprepared_dataset_says_the_exact_command_that_then_works(tmp_path, capsys):
    fake = make_tiny_imagenet(tmp_path / "my data")  # a space: the command must quote it
    sets = ["data.name=tiny_imagenet", f"data.root={fake.root}", "data.resolution=32", "train.steps=2",
            "train.batch_size=4", "data.residency=stream"]
    code, _, err = run_main(capsys, *tiny_train_args(tmp_path / "run", *sets))
    assert code == 2 and err.count("\n") == 1
    command = err.split("run: ", 1)[1].strip()
    assert command == f"condgan prepare --data tiny_imagenet --root '{fake.root}' --resolution 32 --resizer lanczos"
    words = __import__("shlex").split(command)[1:] + ["--no-progress"]
    assert run_main(capsys, *words)[0] == 0
    code, out, err = run_main(capsys, *tiny_train_args(tmp_path / "run", *sets))
    assert code == 0, err
    assert "training done: 2 steps" in out


def test_a_store_folder_can_be_the_root_and_must_match_the_config(tmp_path, capsys):
    fake = make_afhq(tmp_path / "src", per_class=2, val_per_class=1)
    store = prepare("afhq", str(fake.root), 16, "bicubic", progress=False)[0][1].parent
    copy = tmp_path / "fast disk" / "afhq-store"
    shutil.copytree(store, copy)
    data = load_dataset(data_cfg("afhq", copy, 16, "data.resizer=bicubic"), "test")
    assert data.labels.tolist() == fake.labels("val")
    for sets, culprit in ((["data.resizer=lanczos"], "holds resizer 'bicubic', the config asks for 'lanczos'"),
                          (["data.resizer=bicubic", "data.resolution=32"], "holds 16 px images")):
        with pytest.raises(Exception) as e:
            load_dataset(data_cfg("afhq", copy, int(sets[-1].split("=")[1]) if "resolution" in sets[-1] else 16,
                                  *sets), "train")
        assert culprit in str(e.value) and "\n" not in str(e.value)


def one_line_error(capsys, *argv: str) -> str:
    try:
        code, _, err = run_main(capsys, *argv)
    except SystemExit as exit_:  # argparse's own checks exit from inside the parser
        code, err = exit_.code, capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_hostile_prepare_inputs_are_one_line_errors(tmp_path, capsys):
    fake = make_afhq(tmp_path / "src", per_class=2, val_per_class=1)
    base = ["prepare", "--data", "afhq", "--root", str(fake.root), "--no-progress"]
    assert "--resolution must be an integer >= 4" in one_line_error(capsys, *base, "--resolution", "2")
    assert "--workers must be >= 0" in one_line_error(capsys, *base, "--resolution", "16", "--workers", "-1")
    assert "afhq has no split 'test'; its splits are train, val" in one_line_error(
        capsys, *base, "--resolution", "16", "--split", "test")
    assert "invalid choice: 'sinc'" in one_line_error(capsys, *base, "--resolution", "16", "--resizer", "sinc")
    assert "imagenet143 needs data.classes" in one_line_error(
        capsys, "prepare", "--data", "imagenet143", "--root", str(fake.root), "--resolution", "16")
    with pytest.raises(DataError, match="selects ImageNet classes for imagenet143; afhq takes none"):
        load_dataset(data_cfg("afhq", fake.root, 16, f"data.classes={tmp_path / 'list.txt'}"))
    missing = tmp_path / "nowhere"
    assert str(missing) in one_line_error(capsys, "prepare", "--data", "cub200", "--root", str(missing),
                                          "--resolution", "16")
    broken = fake.files("train")[1]
    broken.write_bytes(broken.read_bytes()[:200])  # a truncated download
    err = one_line_error(capsys, *base, "--resolution", "16", "--workers", "2")
    assert f"cannot read image {broken}" in err
    Image.fromarray(fake.pixels(broken)).save(broken, format="JPEG")  # fixed: the rerun finishes the job
    assert run_main(capsys, *base, "--resolution", "16")[0] == 0


@pytest.mark.parametrize("name,ref", [("cub200", "train"), ("afhq", "train"), ("imagenet", "test"),
                                      ("tiny_imagenet", "test"), ("cifar10", "test"), ("mnist5k", "test")])
def test_eval_ref_auto_is_the_papers_reference_split(name, ref):
    from condgan.config import build_config, from_dict, to_dict

    cfg = build_config(None, [f"data.name={name}"])
    assert cfg.eval.ref == ref  # resolved when the config is built, so a saved config says which split
    assert from_dict(to_dict(cfg)).eval.ref == ref
    assert build_config(None, [f"data.name={name}", "eval.ref=test"]).eval.ref == "test"


def test_a_second_prepare_of_the_same_store_is_refused_while_the_first_runs(tmp_path):
    from condgan.files import try_lock

    fake = make_afhq(tmp_path / "src", per_class=1, val_per_class=1)
    folder = store_key("afhq", str(fake.root), 16, "lanczos").folder()
    folder.mkdir(parents=True)
    (folder / ".lock").write_text("4242\n")
    held = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'r+'); "
                             "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
                             str(folder / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert held.stdout.readline().strip() == "locked"
        with pytest.raises(DataError, match=r"is being written by another condgan prepare \(pid 4242\)"):
            prepare("afhq", str(fake.root), 16, "lanczos", progress=False)
    finally:
        held.kill()
        held.wait()
    assert prepare("afhq", str(fake.root), 16, "lanczos", progress=False)[0][2]["count"] == 3
    fd = os.open(folder / ".lock", os.O_RDWR)
    assert try_lock(fd)  # given back
    os.close(fd)


def test_a_damaged_store_is_a_one_line_error_naming_the_file(tmp_path):
    fake = make_afhq(tmp_path / "src", per_class=1, val_per_class=1)
    folder = prepare("afhq", str(fake.root), 16, "lanczos", splits=("train",), progress=False)[0][1]
    cfg = data_cfg("afhq", fake.root, 16)
    manifest = (folder / "manifest.json").read_text()
    for name, damage, culprit in (
            ("images.u8", lambda p: p.write_bytes(p.read_bytes()[:-1]), "has 2303 bytes, its manifest says 2304"),
            ("labels.npy", lambda p: p.write_bytes(b"\x93NUMPY garbage"), "labels.npy is unreadable"),
            ("labels.npy", lambda p: np.save(p, np.array([0, 1, 7])), "is not int64 [3] in [0, 3)"),
            ("manifest.json", lambda p: p.write_text(manifest.replace('"count"', '"cnt"')),
             "does not match its checksum"),  # an edit by hand (tests/test_hostile_data.py)
            ("manifest.json", lambda p: p.write_text("{"), "unreadable store manifest")):
        backup = (folder / name).read_bytes()
        damage(folder / name)
        with pytest.raises(DataError) as e:
            load_dataset(cfg, "train")
        assert culprit in str(e.value) and str(folder) in str(e.value) and "\n" not in str(e.value)
        (folder / name).write_bytes(backup)
    assert len(load_dataset(cfg, "train")) == 3
