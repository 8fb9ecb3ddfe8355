"""ReACGAN's and FastGAN's tables, one per dataset column, with the papers' printed figures.

ReACGAN (Kang et al. 2021) reports IS, FID and Sajjadi et al.'s precision / recall F-scores (F1/8, F8) with as
many generated images as the reference split holds (CIFAR10 test 10k, Tiny-ImageNet val 10k, CUB200 train 5,994,
ImageNet val 50k), StudioGAN's Inception Score over one split; FastGAN (Zhong et al. 2020) IS over 50k samples
(10 splits, mean ± std) and FID. Rows marked * in the papers (figures copied from other papers) are not listed.
Table A4's masking probabilities and Table A5's clipping thresholds and lowered lambdas were lost from the
paper's text: Table A4's rows run condgan's own grid of probabilities (the paper's FIDs, in its column order, are
in the table's note; only the unmasked row can be matched to a figure), and Table A5's clipping rows run
thresholds of condgan's choosing (the presets say why). A5's figures follow the order of its text: lowered-lambda
ACGAN columns, then Normalization, Feature clipping, Gradient clipping, D2D-CE.
"""
from __future__ import annotations

from .tables import Protocol, Table, rows

RE = ("IS", "FID", "F1/8", "F8")  # ReACGAN's columns
FAST = ("IS", "FID", "time_s")  # FastGAN's columns (time: seconds on the paper's GPUs)
CIFAR10 = Protocol("fid,is", 10000, is_splits=1, note="10k CIFAR10 test images vs 10k fakes")
CIFAR100 = Protocol("fid,is", 10000, is_splits=1, note="10k CIFAR100 test images vs 10k fakes")
TINY = Protocol("fid,is", 10000, is_splits=1, note="Tiny-ImageNet's 10k validation images vs 10k fakes")
CUB = Protocol("fid,is", 5994, is_splits=1, note="CUB200's 5,994 training images vs as many fakes")
IMAGENET = Protocol("fid,is", 50000, is_splits=1, note="ImageNet's 50k validation images vs 50k fakes")
FAST_143 = Protocol("fid,is", 50000, note="50k fakes, IS over 10 splits; FID vs ImageNet-143 validation")
FAST_IMAGENET = Protocol("fid,is", 50000, note="50k fakes, IS over 10 splits; FID vs ImageNet validation")
FAST_CIFAR = Protocol("fid,is", 10000, note="IS over 10 splits; FID vs the 10k test images")
# Table 5 (StyleGAN2): its numbers come from StudioGAN's logs, which score against the training split
STYLEGAN2_CIFAR10 = Protocol("fid", 50000, ref="train", note="50k fakes vs the 50k CIFAR10 training images, as "
                             "StudioGAN's logs of these rows score them (the paper's footnote says the test split)")
STYLEGAN2_AFHQ = Protocol("fid", 14630, ref="train", note="as many fakes as AFHQ's 14,630 training images, against "
                          "them (StudioGAN's logs)")


def _re(name: str, title: str, protocol: Protocol, *specs: tuple, note: str = "") -> Table:
    return Table(name, "ReACGAN " + title, RE, protocol, rows(RE, *specs), note=note)


def _fast(name: str, title: str, protocol: Protocol, *specs: tuple, note: str = "") -> Table:
    return Table(name, "FastGAN " + title, FAST, protocol, rows(FAST, *specs), note=note)


def _table1(name: str, column: str, protocol: Protocol, p: str, figures: dict[str, tuple]) -> Table:
    """ReACGAN Table 1's column: the 12 StudioGAN rows over presets ``<p>-<method>``."""
    presets = {"ACGAN": "acgan", "SNGAN": "sngan", "SAGAN": "sagan", "BigGAN": "biggan", "ContraGAN": "contragan",
               "ReACGAN": "reacgan", "BigGAN + CR": "biggan-cr", "ContraGAN + CR": "contragan-cr",
               "ReACGAN + CR": "reacgan-cr", "BigGAN + DiffAug": "biggan-diffaug",
               "ContraGAN + DiffAug": "contragan-diffaug", "ReACGAN + DiffAug": "reacgan-diffaug"}
    special = {"cifar10": {"ACGAN": "cifar10-acgan-mod"}}.get(p, {})
    return _re(name, f"Table 1, {column}", protocol,
               *[(label, special.get(label, f"{p}-{suffix}"), *figures[label]) for label, suffix in presets.items()])


T1 = {  # label -> (CIFAR10, Tiny-ImageNet, CUB200) x (IS, FID, F1/8, F8)
    "ACGAN": ((9.84, 8.45, 0.993, 0.992), (6.00, 96.04, 0.656, 0.368), (6.09, 60.73, 0.726, 0.891)),
    "SNGAN": ((8.67, 13.33, 0.985, 0.976), (8.71, 51.15, 0.900, 0.702), (5.41, 47.75, 0.754, 0.912)),
    "SAGAN": ((8.66, 14.31, 0.983, 0.973), (8.74, 49.90, 0.872, 0.712), (5.48, 54.29, 0.728, 0.882)),
    "BigGAN": ((9.81, 8.08, 0.993, 0.992), (12.78, 32.03, 0.948, 0.868), (4.98, 18.30, 0.924, 0.967)),
    "ContraGAN": ((9.70, 8.22, 0.993, 0.991), (13.46, 28.55, 0.974, 0.881), (5.34, 21.16, 0.935, 0.942)),
    "ReACGAN": ((9.89, 7.88, 0.994, 0.992), (14.06, 27.10, 0.970, 0.894), (4.91, 15.40, 0.970, 0.954)),
    "BigGAN + CR": ((9.97, 7.18, 0.995, 0.993), (15.94, 19.96, 0.972, 0.950), (5.14, 11.97, 0.978, 0.981)),
    "ContraGAN + CR": ((9.59, 8.55, 0.992, 0.972), (15.81, 19.21, 0.983, 0.941), (4.90, 11.08, 0.984, 0.967)),
    "ReACGAN + CR": ((10.11, 7.20, 0.996, 0.994), (16.56, 19.69, 0.984, 0.940), (4.87, 10.72, 0.985, 0.971)),
    "BigGAN + DiffAug": ((9.94, 7.17, 0.995, 0.992), (18.08, 15.70, 0.980, 0.972), (5.53, 12.15, 0.967, 0.981)),
    "ContraGAN + DiffAug": ((9.95, 7.27, 0.995, 0.992), (18.20, 15.40, 0.986, 0.963), (5.39, 11.02, 0.978, 0.970)),
    "ReACGAN + DiffAug": ((10.22, 6.79, 0.996, 0.993), (20.60, 14.25, 0.988, 0.972), (5.22, 9.27, 0.985, 0.983)),
}
T3_EXTRA = {  # Table 3's rows that are not Table 1's: (CIFAR10, Tiny, CUB200)
    "w/o Condition": ((9.46, 12.21, 0.987, 0.982), (7.38, 76.15, 0.804, 0.576), (5.16, 35.17, 0.852, 0.936)),
    "MH": ((10.05, 7.94, 0.994, 0.990), (4.37, 140.74, 0.282, 0.156), (5.18, 245.69, 0.625, 0.832)),
}
T4 = {  # (adversarial loss, conditioning) -> (CIFAR10, Tiny)
    ("ns", "PD"): ((9.75, 8.29, 0.993, 0.991), (8.27, 58.85, 0.816, 0.713)),
    ("ns", "2C"): ((9.30, 10.47, 0.990, 0.959), (6.57, 84.27, 0.745, 0.556)),
    ("ns", "D2D-CE"): ((9.79, 8.27, 0.993, 0.991), (11.76, 39.32, 0.942, 0.852)),
    ("ls", "PD"): ((9.94, 8.26, 0.993, 0.992), (12.74, 37.14, 0.920, 0.900)),
    ("ls", "2C"): ((8.66, 12.18, 0.986, 0.941), (9.58, 53.10, 0.916, 0.706)),
    ("ls", "D2D-CE"): ((9.70, 9.56, 0.991, 0.987), (9.50, 57.67, 0.848, 0.692)),
    ("wgp", "PD"): ((5.71, 64.75, 0.792, 0.652), (6.67, 84.16, 0.696, 0.498)),
    ("wgp", "2C"): ((5.93, 55.99, 0.842, 0.709), (6.89, 74.45, 0.812, 0.536)),
    ("wgp", "D2D-CE"): ((7.30, 35.94, 0.942, 0.847), (8.92, 52.74, 0.856, 0.689)),
    ("hinge", "PD"): (T1["BigGAN"][0], T1["BigGAN"][1]),
    ("hinge", "2C"): (T1["ContraGAN"][0], T1["ContraGAN"][1]),
    ("hinge", "D2D-CE"): (T1["ReACGAN"][0], T1["ReACGAN"][1]),
}
T6 = {  # Table 6: (Tiny, CUB200, ImageNet); None: not run in the paper
    "ACGAN": (T1["ACGAN"][1], T1["ACGAN"][2], (62.99, 26.35, 0.935, 0.963)),
    "+ Normalization": ((13.46, 30.33, 0.955, 0.889), (4.78, 25.54, 0.883, 0.952), (18.16, 36.40, 0.879, 0.787)),
    "+ Data-to-data (Eq. 5)": ((12.96, 28.71, 0.967, 0.863), (5.08, 25.12, 0.894, 0.946), None),
    "+ Suppression (Eq. 6)": (T1["ReACGAN"][1], T1["ReACGAN"][2], (63.16, 14.59, 0.974, 0.974)),
    "- Data-to-data": ((12.96, 30.79, 0.960, 0.857), (5.39, 30.36, 0.863, 0.947), None),
}
_COND = {"w/o Condition": "biggan-uncond", "AC": "acgan", "PD": "biggan", "MH": "mhgan", "2C": "contragan",
         "D2D-CE": "reacgan"}
_T3_FIG = {"AC": "ACGAN", "PD": "BigGAN", "2C": "ContraGAN", "D2D-CE": "ReACGAN"}
_ABLATION = {"ACGAN": "acgan", "+ Normalization": "ablation-normalization",
             "+ Data-to-data (Eq. 5)": "ablation-data-to-data", "+ Suppression (Eq. 6)": "reacgan",
             "- Data-to-data": "ablation-margins-only"}


def _table3(name: str, column: str, protocol: Protocol, p: str, k: int) -> Table:
    specs = []
    for label, suffix in _COND.items():
        fig = T3_EXTRA[label][k] if label in T3_EXTRA else T1[_T3_FIG[label]][k]
        preset = "cifar10-acgan-mod" if (p, label) == ("cifar10", "AC") else f"{p}-{suffix}"
        specs.append((f"Big + {label}" if label != "w/o Condition" else "BigGAN w/o Condition", preset, *fig))
    return _re(name, f"Table 3 (conditioning losses), {column}", protocol, *specs)


def _table4(name: str, column: str, protocol: Protocol, p: str, k: int) -> Table:
    base = {"PD": "biggan", "2C": "contragan", "D2D-CE": "reacgan"}
    specs = [(f"{adv} / {cond}", f"{p}-{base[cond]}" + ("" if adv == "hinge" else f"-{adv}"), *fig[k])
             for (adv, cond), fig in T4.items()]
    return _re(name, f"Table 4 (adversarial losses), {column}", protocol, *specs)


def _table6(name: str, column: str, protocol: Protocol, p: str, k: int) -> Table:
    specs = [(label, f"{p}-{_ABLATION[label]}", *T6[label][k]) for label in _ABLATION if T6[label][k] is not None]
    return _re(name, f"Table 6 (ablations of D2D-CE), {column}", protocol, *specs,
               note="'+ Suppression' is ReACGAN itself (the reference-form run)")


def _table_a4(name: str, column: str, protocol: Protocol, p: str, fids: tuple[float, ...]) -> Table:
    """Table A4's column: D2D-CE with negatives dropped at condgan's grid of probabilities, then none dropped."""
    masked = [(f"masking p = {q / 100:g}", f"{p}-reacgan-drop{q:02d}") for q in (90, 70, 50, 30, 10)]
    return Table(name, f"ReACGAN Table A4 (dropped negatives), {column}", ("FID",), protocol, rows(
        ("FID",), *masked, ("no masking (ReACGAN)", f"{p}-reacgan", fids[-1])),
        note=f"the paper's probabilities were lost in the text; its FIDs from most to least masking: "
             f"{', '.join(f'{x:.2f}' for x in fids)}")


def _table_a5(name: str, column: str, protocol: Protocol, p: str, fids: tuple[float, ...],
              lowered: tuple[float, ...]) -> Table:
    """Table A5's column: the cures of AC's collapse (fids: Normalization, feature / gradient clipping, D2D-CE)."""
    normalization = "tiny-ablation-normalization" if p == "tiny" else f"{p}-ablation-normalization"
    return Table(name, f"ReACGAN Table A5 (cures of AC's early collapse), {column}", ("FID",), protocol, rows(
        ("FID",), ("ACGAN (lambda 1)", f"{p}-acgan"), ("Normalization", normalization, fids[0]),
        ("Feature clipping", f"{p}-acgan-feature-clip", fids[1]),
        ("Gradient clipping", f"{p}-acgan-grad-clip", fids[2]), ("D2D-CE (ReACGAN)", f"{p}-reacgan", fids[3])),
        note=f"lowered-lambda ACGAN columns (lambdas lost in the text) print FID {', '.join(map(str, lowered))}; "
             f"set loss.cond_weight on the ACGAN row to run them; the clipping thresholds are condgan's")


REACGAN_TABLES = (
    _table1("reacgan-t1-cifar10", "CIFAR10", CIFAR10, "cifar10", {k: v[0] for k, v in T1.items()}),
    _table1("reacgan-t1-tiny", "Tiny-ImageNet", TINY, "tiny", {k: v[1] for k, v in T1.items()}),
    _table1("reacgan-t1-cub200", "CUB200", CUB, "cub200", {k: v[2] for k, v in T1.items()}),
    _re("reacgan-t2-imagenet256", "Table 2, ImageNet 128 px, batch 256", IMAGENET,
        ("ACGAN", "imagenet128-acgan", 62.99, 26.35, 0.935, 0.963),
        ("SNGAN", "imagenet128-sngan", 32.25, 26.79, 0.938, 0.913),
        ("SAGAN", "imagenet128-sagan", 29.85, 34.73, 0.849, 0.914),
        ("BigGAN", "imagenet128-biggan", 43.97, 16.36, 0.964, 0.955),
        ("ContraGAN", "imagenet128-contragan", 25.25, 25.16, 0.947, 0.855),
        ("ReACGAN", "imagenet128-reacgan", 68.27, 13.98, 0.976, 0.977),
        ("BigGAN + DiffAug", "imagenet128-biggan-diffaug", 36.97, 18.57, 0.956, 0.941),
        ("ReACGAN + DiffAug", "imagenet128-reacgan-diffaug", 69.74, 11.95, 0.977, 0.975),
        note="one run per row in the paper"),
    _re("reacgan-t2-imagenet2048", "Table 2, ImageNet 128 px, batch 2048", IMAGENET,
        ("BigGAN", "imagenet128-biggan-2048", 99.71, 7.89, 0.985, 0.989),
        ("ReACGAN", "imagenet128-reacgan-2048", 92.74, 8.23, 0.991, 0.990),
        note="one run per row in the paper; batch 2048 = 512 per micro-batch x 4 accumulated (StudioGAN's "
             "batch 512, acml_steps 4)"),
    _table3("reacgan-t3-cifar10", "CIFAR10", CIFAR10, "cifar10", 0),
    _table3("reacgan-t3-tiny", "Tiny-ImageNet", TINY, "tiny", 1),
    _table3("reacgan-t3-cub200", "CUB200", CUB, "cub200", 2),
    _table4("reacgan-t4-cifar10", "CIFAR10", CIFAR10, "cifar10", 0),
    _table4("reacgan-t4-tiny", "Tiny-ImageNet", TINY, "tiny", 1),
    _table6("reacgan-t6-tiny", "Tiny-ImageNet", TINY, "tiny", 0),
    _table6("reacgan-t6-cub200", "CUB200", CUB, "cub200", 1),
    _table6("reacgan-t6-imagenet", "ImageNet 128 px, batch 256", IMAGENET, "imagenet128", 2),
    Table("reacgan-ta2-tiny", "ReACGAN Table A2 (TAC), Tiny-ImageNet", ("IS", "FID"), TINY, rows(
        ("IS", "FID"), ("ACGAN", "tiny-acgan", 6.00, 96.04), ("TACGAN", "tiny-tacgan", 7.62, 65.99),
        ("ReACGAN", "tiny-reacgan", 14.06, 27.10), ("ReACGAN + TAC", "tiny-reacgan-tac", 13.71, 26.14))),
    Table("reacgan-ta2-cifar10", "ReACGAN Table A2 (TAC), CIFAR10", ("IS", "FID"), CIFAR10, rows(
        ("IS", "FID"), ("ACGAN", "cifar10-acgan-mod", 9.84, 8.45), ("TACGAN", "cifar10-tacgan", 9.78, 8.01),
        ("ReACGAN", "cifar10-reacgan", 9.89, 7.88), ("ReACGAN + TAC", "cifar10-reacgan-tac", 9.70, 7.94))),
    Table("reacgan-ta3-dcgan-cifar10", "ReACGAN Table A3, Deep CNN on CIFAR10", ("FID",), CIFAR10, rows(
        ("FID",), ("AC", "cifar10-dcgan-ac", 20.35), ("PD", "cifar10-dcgan-pd", 19.49),
        ("2C", "cifar10-dcgan-2c", 21.47), ("D2D-CE (ReACGAN)", "cifar10-dcgan-reacgan", 18.94))),
    Table("reacgan-ta3-resnet-cifar10", "ReACGAN Table A3, ResNet on CIFAR10", ("FID",), CIFAR10, rows(
        ("FID",), ("AC", "cifar10-resnet-ac", 13.04), ("PD", "cifar10-sngan", 13.47),
        ("2C", "cifar10-resnet-2c", 14.38), ("D2D-CE (ReACGAN)", "cifar10-resnet-reacgan", 12.47))),
    Table("reacgan-ta3-resnet-tiny", "ReACGAN Table A3, ResNet on Tiny-ImageNet", ("FID",), TINY, rows(
        ("FID",), ("AC", "tiny-resnet-ac", 87.84), ("PD", "tiny-sngan", 47.88),
        ("2C", "tiny-resnet-2c", 40.56), ("D2D-CE (ReACGAN)", "tiny-resnet-reacgan", 40.89))),
    Table("reacgan-t5-cifar10", "ReACGAN Table 5 (StyleGAN2 backbone), CIFAR10", ("FID",), STYLEGAN2_CIFAR10, rows(
        ("FID",), ("cStyleGAN2", "cifar10-stylegan2", 3.88), ("StyleGAN2 + D2D-CE", "cifar10-stylegan2-d2dce", 3.34),
        ("cStyleGAN2 + ADA", "cifar10-stylegan2-ada", 2.43),
        ("StyleGAN2 + ADA + D2D-CE", "cifar10-stylegan2-d2dce-ada", 2.38),
        ("StyleGAN2 + DiffAug + D2D-CE + Tuning", "cifar10-stylegan2-d2dce-diffaug-tuning", 2.26)),
          note="single runs in the paper; the ADA rows' figures are their logs' FID at step 800k (the configs run "
               "1M, as the presets); 'Tuning' is StyleGAN2-D2DCE-DiffAug-Rev.yaml's difference from -DiffAug"),
    Table("reacgan-t5-afhq", "ReACGAN Table 5 (StyleGAN2 backbone), AFHQ 512 px", ("FID",), STYLEGAN2_AFHQ, rows(
        ("FID",), ("cStyleGAN2 + ADA", "afhq512-stylegan2-ada", 4.99),
        ("StyleGAN2 + ADA + D2D-CE", "afhq512-stylegan2-d2dce-ada", 4.95)),
          note="single runs; data: condgan prepare --data afhq --root DIR --resolution 512 (3 classes)"),
    _table_a4("reacgan-ta4-cifar10", "CIFAR10", CIFAR10, "cifar10", (11.15, 8.07, 8.11, 7.83, 8.01, 7.88)),
    _table_a4("reacgan-ta4-tiny", "Tiny-ImageNet", TINY, "tiny", (60.74, 30.04, 28.64, 28.59, 28.68, 27.10)),
    _table_a5("reacgan-ta5-cifar100", "CIFAR100", CIFAR100, "cifar100", (13.17, 17.47, 40.23, 12.25),
              (12.30, 13.61, 15.60, 16.92)),
    _table_a5("reacgan-ta5-tiny", "Tiny-ImageNet", TINY, "tiny", (28.04, 57.65, 108.30, 27.10),
              (62.86, 92.05, 104.34, 98.75)),
)


# FastGAN's rows and ablations (Tables 2 and 3) -> the preset name after the dataset's prefix
_FAST_ROWS = {"SNGAN": "sngan", "RobGAN": "robgan", "FastGAN": "fastgan",
              "+ Revert to RobGAN loss": "fastgan-robgan-loss", "+ Disable adv. training": "fastgan-no-adv",
              "+ Constant lr.": "fastgan-constant-lr", "+ Disable KL-term (13)": "fastgan-no-kl"}


def _fast_t2(data: str, figures: dict[str, tuple], note: str = "") -> Table:
    return _fast(f"fastgan-t2-{data}", f"Table 2, {data.upper()}", FAST_CIFAR,
                 *[(label, f"{data}-{_FAST_ROWS[label]}", *row) for label, row in figures.items()], note=note)


def _fast_t3(name: str, px: int, figures: dict[str, tuple]) -> Table:
    return _fast(name, f"Table 3, ImageNet-143 {px} px", FAST_143,
                 *[(label, f"imagenet143-{px}-{_FAST_ROWS[label]}", *row) for label, row in figures.items()])


FASTGAN_TABLES = (
    _fast_t2("cifar10", {
        "SNGAN": (7.47, 14.59, 2.45e4), "RobGAN": (6.95, 20.75, 2.50e4), "FastGAN": (7.76, 12.97, 2.28e4),
        "+ Revert to RobGAN loss": (7.14, 20.90, 2.28e4), "+ Disable adv. training": (7.79, 13.93, 2.28e4),
        "+ Constant lr.": (8.09, 14.67, 2.28e4), "+ Disable KL-term (13)": (7.37, 16.26, 2.28e4)}),
    _fast_t2("cifar100", {
        "SNGAN": (7.86, 18.29, 2.56e4), "RobGAN": (7.24, 28.27, 2.6e4), "FastGAN": (8.87, 17.27, 2.31e4),
        "+ Revert to RobGAN loss": (6.26, 43.69, 2.31e4), "+ Disable adv. training": (8.38, 19.43, 2.31e4),
        "+ Constant lr.": (8.95, 19.53, 2.31e4), "+ Disable KL-term (13)": (7.42, 24.02, 2.31e4)},
        note="the paper marks '+ Revert to RobGAN loss' and '+ Disable KL-term (13)' as collapsed on CIFAR100"),
    _fast_t3("fastgan-t3-64", 64, {
        "SNGAN": (10.70, 29.70, 2.2e5), "RobGAN": (24.62, 14.64, 1.8e5), "FastGAN": (22.23, 12.04, 3.6e4),
        "+ Revert to RobGAN loss": (25.49, 14.03, 3.6e4), "+ Disable KL-term (13)": (25.61, 13.94, 3.6e4)}),
    _fast_t3("fastgan-t3-128", 128, {
        "SNGAN": (26.12, 30.83, 5.9e5), "RobGAN": (33.81, 33.98, 1.8e5), "FastGAN": (40.41, 14.48, 7.1e4),
        "+ Revert to RobGAN loss": (45.94, 25.38, 7.1e4), "+ Disable KL-term (13)": (42.54, 17.51, 7.1e4)}),
    _fast("fastgan-t4-b64", "Table 4, ImageNet 128 px, batch 64", FAST_IMAGENET,
          ("SNGAN", "imagenet128-sngan-b64", 36.8, 27.62, 2.98e6),
          ("FastGAN", "imagenet128-fastgan-b64", 51.43, 22.60, 1.34e6),
          note="the SNGAN figures are the SNGAN paper's, which FastGAN quotes"),
    _fast("fastgan-t4-b256", "Table 4, ImageNet 128 px, batch 256", FAST_IMAGENET,
          ("SAGAN", "imagenet128-sagan", 52.52, 18.65, 1.79e6),
          ("FastGAN", "imagenet128-fastgan-b256", 65.57, 19.41, 1.10e6),
          note="the SAGAN figures are the SAGAN paper's, which FastGAN quotes; condgan's SAGAN row is StudioGAN's"),
)

PAPER_TABLES: tuple[Table, ...] = (*REACGAN_TABLES, *FASTGAN_TABLES)
