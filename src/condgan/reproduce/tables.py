"""The papers' tables as data: each row names its preset and the paper's figures; each table its protocol.

A paper table with several dataset columns is split into one :class:`Table` per column (``reacgan-t1-tiny``
is ReACGAN Table 1's Tiny-ImageNet column), since each column is its own protocol and its own set of runs.
The figures are the papers' as printed (ReACGAN: mean of the best of 3 seeds; FastGAN: one run).
"""
from __future__ import annotations

from dataclasses import dataclass, field

# paper metric -> the key of condgan's eval record holding the same quantity (None: condgan does not compute it)
CONDGAN_KEYS: dict[str, str | None] = {
    "IS": "is_mean", "FID": "fid", "acc": "acc_top1",
    "F1/8": None, "F8": None,  # Sajjadi et al.'s PRD F-scores; condgan's prdc is Naeem et al.'s (not the same)
    "time_s": None,  # the paper's wall clock on its own GPUs
}
FEATURE_SPACE_KEYS = ("FID",)  # the paper metrics a further backbone also measures (IS and acc are not per space)


@dataclass(frozen=True)
class Protocol:
    """How the table's numbers are measured; the arguments of ``condgan eval``."""
    metrics: str  # condgan eval --metrics
    num_samples: int  # generated images (the papers: as many as the reference split holds)
    backbone: str = "inception"  # or a comma list: the first is the paper's, the others are reported beside it
    ref: str = "auto"  # the dataset's reference split (condgan.data.registry.reference_split)
    resize: str = "bilinear"
    is_splits: int = 10  # StudioGAN (ReACGAN's tables) reports one split
    note: str = ""

    @property
    def backbones(self) -> list[str]:
        return self.backbone.split(",")

    def eval_args(self) -> list[str]:
        args = ["--metrics", self.metrics, "--num", str(self.num_samples), "--backbone", self.backbone,
                "--ref", self.ref]
        args += ["--resize", self.resize] if "inception" in self.backbones else []
        return args + (["--is-splits", str(self.is_splits)] if "is" in self.metrics.split(",") else [])


@dataclass(frozen=True)
class Row:
    label: str  # the row as the paper prints it
    preset: str
    paper: dict[str, float] = field(default_factory=dict)  # paper metric -> value ({} : not in the paper)
    note: str = ""


@dataclass(frozen=True)
class Table:
    name: str
    title: str  # the paper, table and column
    columns: tuple[str, ...]  # the paper's metrics, in the paper's order
    protocol: Protocol
    rows: tuple[Row, ...]
    sets: tuple[str, ...] = ()  # --set overrides given to every row's `condgan train`
    note: str = ""


def rows(columns: tuple[str, ...], *specs: tuple) -> tuple[Row, ...]:
    """Rows from ``(label, preset, *values)`` tuples, values in ``columns`` order (None: not printed)."""
    out = []
    for label, preset, *values in specs:
        if values and len(values) != len(columns):
            raise ValueError(f"row {label!r}: {len(values)} values for columns {columns}")
        out.append(Row(label, preset, {c: v for c, v in zip(columns, values) if v is not None}))
    return tuple(out)


# ------------------------------------------------------------------ at mnist5k scale (runs on a CPU)
MNIST_PROTOCOL = Protocol("fid,acc", 2000, backbone="classifier", ref="test",
                          note="the evaluation classifier's features (FID) and predictions (conditional accuracy "
                               "of class-balanced EMA-G samples), 2,000 samples vs the 1,000 held-out digits")
PAIRS_PROTOCOL = Protocol("fid,acc", 2000, backbone="classifier", ref="test",
                          note="the evaluation classifier's features (FID) and predictions (conditional accuracy "
                               "of class-balanced EMA-G samples), 2,000 samples vs the 2,000 held-out pairs")
MNIST_SETS = ("eval.every=500",)  # FID along training, for the Fig. 2 view (every checkpoint)

SMALL_TABLES = (
    Table("mnist5k-t3", "ReACGAN Table 3 (conditioning losses) at mnist5k scale; paper figures: its Tiny-ImageNet "
          "FID", ("acc", "FID"), MNIST_PROTOCOL, (
              Row("w/o condition", "mnist5k-uncond", {"FID": 76.15}),
              Row("AC", "mnist5k-acgan", {"FID": 96.04}),
              Row("PD", "mnist5k-pd", {"FID": 32.03}),
              Row("MH", "mnist5k-mhgan", {"FID": 140.74}),
              Row("2C", "mnist5k-contragan", {"FID": 28.55}),
              Row("D2D-CE (ReACGAN)", "mnist5k-reacgan", {"FID": 27.10})),
          sets=MNIST_SETS,
          note="the small DCGAN pair of the demo preset, hinge loss, 2,500 G steps; only the conditioning changes"),
    Table("mnist5k-t6", "ReACGAN Table 6 (ablations of D2D-CE) at mnist5k scale; paper figures: its Tiny-ImageNet "
          "FID", ("acc", "FID"), MNIST_PROTOCOL, (
              Row("ACGAN", "mnist5k-acgan", {"FID": 96.04}),
              Row("+ Normalization", "mnist5k-ablation-normalization", {"FID": 30.33}),
              Row("+ Data-to-data (Eq. 5)", "mnist5k-ablation-data-to-data", {"FID": 28.71}),
              Row("+ Suppression (Eq. 6)", "mnist5k-ablation-suppression", {"FID": 27.10},
                  note="D2D-CE in the paper's form; the paper's row is its reference-form run (next row)"),
              Row("- Data-to-data", "mnist5k-ablation-margins-only", {"FID": 30.79}),
              Row("ReACGAN (reference form)", "mnist5k-reacgan", {"FID": 27.10})),
          sets=MNIST_SETS,
          note="the demo pair; the ablations change only loss.data_to_data / loss.margins (reference_form false)"),
    Table("mnist5k-fig2", "ReACGAN Fig. 2 (AC's feature and gradient norms vs normalised AC and D2D-CE) at mnist5k "
          "scale, 40 training digits per class", ("acc", "FID"), MNIST_PROTOCOL, (
              Row("AC", "mnist5k-acgan"), Row("AC + Normalization", "mnist5k-ablation-normalization"),
              Row("D2D-CE (ReACGAN)", "mnist5k-reacgan")),
          sets=(*MNIST_SETS, "data.subset=40"),
          note="limited data, where D overfits its classifier: the Fig. 2 diagnostics are the point, not the FID"),
    Table("mnist5k-pairs-fig2", "ReACGAN Fig. 2 (AC's early collapse with many classes) on mnist5k_pairs: 100 "
          "two-digit classes, 50 training images each", ("acc", "FID"), PAIRS_PROTOCOL, (
              Row("AC", "mnist5k-acgan"), Row("AC + Normalization", "mnist5k-ablation-normalization"),
              Row("D2D-CE (ReACGAN)", "mnist5k-reacgan")),
          sets=(*MNIST_SETS, "data.name=mnist5k_pairs"),
          note="the demo pair and its 2,500 G steps on 100 classes: the Fig. 2 diagnostics and FID along training "
               "are the point"),
)
