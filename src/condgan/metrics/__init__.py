"""Evaluation: exact FID / KID / IS / PRDC / intra-class FID / accuracy / CAS in the feature spaces of Inception, the
dataset's classifier, DINOv2 (FD_DINOv2) and SwAV; of a run's generator or of any folder / .npz of images.

The metric functions are plain functions of tensors; :class:`Evaluator` wires a backbone, cached
reference statistics and generated samples to them (see ``condgan eval``).
"""
from .backbones import BACKBONES, Backbone, ClassifierBackbone, InceptionBackbone, build_backbone
from .classifier import (EvalClassifier, accuracy, conditional_accuracy, load_or_train_classifier, predict,
                         train_classifier)
from .conditional import classification_accuracy_score, intra_class_fid, topk_accuracy
from .errors import EvalError
from .evaluate import EvalRequest, Evaluator
from .fid import feature_statistics, frechet_distance
from .inception import FIDInceptionV3
from .inception_score import inception_score
from .image_sets import ImageSet, read_image_set, score_image_set
from .inception_weights import find_inception_weights, load_inception
from .kid import kid
from .prdc import prdc
from .ssl_backbones import DINOv2Backbone, SwAVBackbone
from .suite import METRICS

__all__ = ["BACKBONES", "Backbone", "ClassifierBackbone", "DINOv2Backbone", "EvalClassifier", "EvalError", "EvalRequest",
           "ImageSet", "SwAVBackbone", "kid", "read_image_set", "score_image_set",
           "Evaluator", "FIDInceptionV3", "InceptionBackbone", "METRICS", "accuracy", "build_backbone",
           "classification_accuracy_score", "conditional_accuracy", "feature_statistics", "find_inception_weights",
           "frechet_distance", "inception_score", "intra_class_fid", "load_inception", "load_or_train_classifier",
           "predict", "prdc", "topk_accuracy", "train_classifier"]
