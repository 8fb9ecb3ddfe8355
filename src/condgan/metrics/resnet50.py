"""ResNet-50 (v1.5, torchvision's layout) in plain torch: the trunk SwAV trained, pooled to 2048-d features.

StudioGAN's ``SwAV_torch`` backbone loads ``facebookresearch/swav``'s ``swav_800ep_pretrain.pth.tar`` into
torchvision's ``resnet50`` and reads the input of ``fc`` (the global average pool of ``layer4``). Submodule names
here are torchvision's (``conv1``, ``bn1``, ``layerN.M.{conv1, bn1, conv2, bn2, conv3, bn3, downsample.0,
downsample.1}``), so that file loads unchanged once its DDP ``module.`` prefix is dropped. ``fc`` is not built: the
feature is read before it. BatchNorm eps 1e-5, stride on the 3 x 3 convolution (v1.5).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # (width, blocks, stride of the first block)
EXPANSION = 4


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 (x4 width), each with BatchNorm; ReLU after the residual sum."""

    def __init__(self, c_in: int, width: int, stride: int) -> None:
        super().__init__()
        c_out = width * EXPANSION
        self.conv1, self.bn1 = nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
        self.downsample = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
                           if stride != 1 or c_in != c_out else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return F.relu(h + (x if self.downsample is None else self.downsample(x)))


class ResNet50Trunk(nn.Module):
    """Images [B, 3, H, W] (ImageNet-normalised) -> pooled features [B, 8 * base]; base 64 is ResNet-50."""

    def __init__(self, base: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, base, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        c_in = base
        for i, (width, blocks, stride) in enumerate(STAGES, start=1):
            width = width * base // 64
            layer = [Bottleneck(c_in, width, stride)] + [Bottleneck(width * EXPANSION, width, 1)
                                                         for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*layer))
            c_in = width * EXPANSION
        self.feature_dim = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), kernel_size=3, stride=2, padding=1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))
