"""Generators and discriminators, built from a config by architecture name (:mod:`.registry`)."""
from __future__ import annotations

from .biggan import BigGANDiscriminator, BigGANGenerator
from .dcgan import DCGANDiscriminator, DCGANGenerator
from .deep_cnn import DeepCNNGenerator
from .heads import DiscriminatorHeads, DOutput
from .layers import count_parameters
from .registry import ARCHITECTURES, LAYOUTS, build_nets, model_problem
from .resnet import ResNetDiscriminator, ResNetGenerator

__all__ = ["ARCHITECTURES", "LAYOUTS", "build_nets", "model_problem", "count_parameters", "DOutput",
           "DiscriminatorHeads", "BigGANGenerator", "BigGANDiscriminator", "DCGANGenerator", "DCGANDiscriminator",
           "ResNetGenerator", "ResNetDiscriminator", "DeepCNNGenerator"]
