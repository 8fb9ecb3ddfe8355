"""Evaluation: the per-dataset evaluation classifier and the conditional-accuracy report."""
from .classifier import (EvalClassifier, accuracy, conditional_accuracy, load_or_train_classifier, predict,
                         train_classifier)

__all__ = ["EvalClassifier", "accuracy", "conditional_accuracy", "load_or_train_classifier", "predict",
           "train_classifier"]
