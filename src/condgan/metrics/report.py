"""End-of-training report: conditional accuracy of EMA-G samples under the dataset's evaluation classifier.

It is ``condgan eval RUN --metrics acc --num <eval.num_samples>`` on the last checkpoint, computed in place: the same
evaluator, latents (seed 0, batches of 250), labels (sample i has class i mod C) and classifier, so the two
commands print the same accuracy.
"""
from __future__ import annotations

from .evaluate import EvalRequest, Evaluator


def final_report(trainer, progress: bool = True) -> dict:
    """Score ``trainer``'s G_ema: the share of samples classified as the class they were generated for, with
    the classifier's own top-1 accuracy on real images for context: the held-out test split, or (for a dataset
    without one) its training images, said so in ``real_images_are`` and with a warning."""
    cfg = trainer.cfg
    request = EvalRequest(metrics=["acc"], num_samples=cfg.eval.num_samples)  # `condgan eval`'s defaults otherwise
    # with data.subset the judge is trained on the whole training split, as `condgan eval` does
    train = None if cfg.data.subset else trainer.run.dataset
    evaluator = Evaluator(cfg.data, request, trainer.device, train=train, progress=progress, eval_command=True)
    record = evaluator(trainer.run.ema.shadow, cfg.model.z_dim)
    values, protocol = record["metrics"], record["protocol"]
    held_out = evaluator.test_held_out
    return {"step": trainer.step, "backbone": "condgan-eval-classifier", "dataset": evaluator.train.name,
            "dataset_identity": evaluator.train.identity, "real_images": int(evaluator.test.labels.numel()),
            "real_images_are": "held-out real test images" if held_out else "real training images (no held-out split)",
            "real_accuracy": values["real_acc_top1"], "classifier_caveat": protocol.get("classifier_caveat"),
            "num_samples": int(request.num_samples), "seed": request.seed, "batch_size": request.batch_size,
            "conditional_accuracy": values["acc_top1"], "conditional_accuracy_top5": values["acc_top5"],
            "generator": "G_ema (eval mode)", "same_as": f"condgan eval RUN --metrics acc --num {request.num_samples}"}
