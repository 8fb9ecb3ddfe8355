"""Evaluation classifier: learning, determinism, disk cache, conditional accuracy and quantisation."""
from __future__ import annotations

import pytest
import torch

import condgan.metrics.classifier as clf_mod
from condgan.data import ImageDataset, to_float, to_uint8
from condgan.data.base import make_dataset
from condgan.metrics.classifier import (
    EvalClassifier,
    accuracy,
    conditional_accuracy,
    load_or_train_classifier,
    predict,
    random_shift,
    train_classifier,
)

NUM_CLASSES = 4
SIDE = 16


def synthetic(n_per_class: int, seed: int, name: str = "toy") -> ImageDataset:
    """Four 16x16 one-channel classes: horizontal bar, vertical bar, diagonal, centre square.

    Each sample is jittered by up to 3 px and carries pixel noise, so the classes are learnable
    but not identical copies.
    """
    gen = torch.Generator().manual_seed(seed)
    images, labels = [], []
    idx = torch.arange(SIDE)
    for cls in range(NUM_CLASSES):
        for _ in range(n_per_class):
            oy, ox = (torch.randint(-3, 4, (2,), generator=gen)).tolist()
            img = torch.zeros(SIDE, SIDE)
            if cls == 0:
                img[6 + oy:10 + oy, :] = 1
            elif cls == 1:
                img[:, 6 + ox:10 + ox] = 1
            elif cls == 2:
                img[(idx[:, None] - idx[None, :] - ox).abs() <= 1] = 1
            else:
                img[5 + oy:11 + oy, 5 + ox:11 + ox] = 1
            img = (img * 200 + torch.rand(SIDE, SIDE, generator=gen) * 55).round()
            images.append(img.to(torch.uint8))
            labels.append(cls)
    return make_dataset(torch.stack(images)[:, None], torch.tensor(labels), NUM_CLASSES, name)


@pytest.fixture(scope="module")
def toy_train() -> ImageDataset:
    return synthetic(24, seed=0)


@pytest.fixture(scope="module")
def toy_test() -> ImageDataset:
    return synthetic(25, seed=1)


@pytest.fixture(scope="module")
def model(toy_train: ImageDataset) -> EvalClassifier:
    return train_classifier(toy_train, epochs=20, width=8, progress=False)


def test_shapes_any_channels_and_size() -> None:
    net = EvalClassifier(img_channels=3, num_classes=7, width=8)
    x = torch.rand(5, 3, 20, 20) * 2 - 1
    assert net.features(x).shape == (5, net.feature_dim) == (5, 32)
    assert net(x).shape == (5, 7)


def test_random_shift_moves_content_and_keeps_shape() -> None:
    x = torch.rand(6, 2, 9, 9)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(random_shift(x, 0, gen), x)
    shifted = random_shift(x, 2, gen)
    assert shifted.shape == x.shape and not torch.equal(shifted, x)
    # Each output's centre 5x5 is a translate (by at most 2 px) of the input's centre 7x7 region.
    for out, src in zip(shifted, x):
        windows = [src[:, 2 + dy:7 + dy, 2 + dx:7 + dx] for dy in (-2, -1, 0, 1, 2) for dx in (-2, -1, 0, 1, 2)]
        assert any(torch.equal(out[:, 2:7, 2:7], w) for w in windows)


def test_learns_toy_classes(model: EvalClassifier, toy_test: ImageDataset) -> None:
    assert not model.training
    assert accuracy(model, toy_test.images, toy_test.labels) >= 0.9


def test_predict_uint8_matches_float(model: EvalClassifier, toy_test: ImageDataset) -> None:
    preds = predict(model, toy_test.images, batch_size=7)
    assert preds.dtype == torch.int64 and preds.shape == (len(toy_test),)
    assert torch.equal(preds, predict(model, to_float(toy_test.images)))


def test_deterministic_given_seed(toy_train: ImageDataset) -> None:
    small = make_dataset(toy_train.images[::3], toy_train.labels[::3], NUM_CLASSES, "small")
    runs = [train_classifier(small, epochs=2, width=4, seed=s, progress=False) for s in (3, 3, 4)]
    a, b, c = (r.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def _counting_trainer(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = clf_mod.train_classifier

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **{**kwargs, "epochs": 3})

    monkeypatch.setattr(clf_mod, "train_classifier", counted)
    return calls


def test_cache_round_trip(monkeypatch: pytest.MonkeyPatch, tmp_path, toy_train, toy_test) -> None:
    monkeypatch.setenv("CONDGAN_CACHE", str(tmp_path))
    calls = _counting_trainer(monkeypatch)
    first = load_or_train_classifier(toy_train, progress=False)
    path = clf_mod.cache_path(toy_train)
    assert path.parent == tmp_path / "classifiers" and path.is_file()
    assert toy_train.identity in path.name
    second = load_or_train_classifier(toy_train, progress=False)
    assert len(calls) == 1 and not second.training
    assert torch.equal(predict(first, toy_test.images), predict(second, toy_test.images))
    assert list(tmp_path.joinpath("classifiers").iterdir()) == [path]  # no temp files left behind


def test_corrupt_cache_is_retrained(monkeypatch: pytest.MonkeyPatch, tmp_path, toy_train) -> None:
    monkeypatch.setenv("CONDGAN_CACHE", str(tmp_path))
    calls = _counting_trainer(monkeypatch)
    path = clf_mod.cache_path(toy_train)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="retraining"):
        load_or_train_classifier(toy_train, progress=False)
    assert len(calls) == 1
    load_or_train_classifier(toy_train, progress=False)  # the rewritten file now loads
    assert len(calls) == 1


def _sampler(data: ImageDataset, offset: int):
    """generator_fn returning real images of class (y + offset) % C, as floats in [-1, 1]."""
    pools = [to_float(data.images[data.labels == c]) for c in range(data.num_classes)]
    gen = torch.Generator().manual_seed(0)

    def generate(y: torch.Tensor) -> torch.Tensor:
        out = []
        for label in y.tolist():
            pool = pools[(label + offset) % data.num_classes]
            out.append(pool[torch.randint(len(pool), (1,), generator=gen)])
        return torch.cat(out)

    return generate


def test_conditional_accuracy_right_and_wrong_class(model: EvalClassifier, toy_test: ImageDataset) -> None:
    right = conditional_accuracy(_sampler(toy_test, 0), model, NUM_CLASSES, 98, batch_size=30)
    wrong = conditional_accuracy(_sampler(toy_test, 1), model, NUM_CLASSES, 98, batch_size=30)
    assert right >= 0.9
    assert wrong <= 0.2


def test_conditional_accuracy_quantises_samples(model: EvalClassifier, toy_test: ImageDataset) -> None:
    def make_noisy():
        # Off-grid generator outputs: real images plus noise from the global RNG, some out of range.
        base = _sampler(toy_test, 0)
        return lambda y: base(y) + (torch.rand(y.shape[0], 1, SIDE, SIDE) - 0.5) * 0.2

    seen: list[torch.Tensor] = []
    handle = model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    try:
        score = conditional_accuracy(make_noisy(), model, NUM_CLASSES, 40, batch_size=40, seed=5)
    finally:
        handle.remove()
    levels = (seen[0] + 1) * 127.5
    assert torch.allclose(levels, levels.round(), atol=1e-3)  # the classifier only saw PNG-exact pixels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)  # conditional_accuracy seeds the global RNG like this: replay its draws
        x = make_noisy()(torch.arange(40) % NUM_CLASSES)
    assert not torch.equal(x, to_float(to_uint8(x)))
    assert torch.equal(predict(model, to_uint8(x)), predict(model, to_float(to_uint8(x))))
    assert score == float((predict(model, to_uint8(x)) == torch.arange(40) % NUM_CLASSES).float().mean())


def test_to_uint8_matches_png_rounding() -> None:
    x = torch.tensor([-1.5, -1.0, -0.999, 0.0, 0.5, 1.0, 2.0])
    assert to_uint8(x).tolist() == [0, 0, 0, 128, 191, 255, 255]
