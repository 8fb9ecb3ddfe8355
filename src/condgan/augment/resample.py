"""2x up- and downsampling with the Symlet-6 wavelet low-pass, for ADA's geometric warp (``ada.py``).

The alignment is that of NVIDIA's upfirdn2d as ADA calls it: low-res pixel i sits on high-res sample 2i. With
f the filter normalised to sum 1 (L = 12 taps), per axis

    upsample    y[j] = sum_k 2 f[k] u[j + L/2 - 1 - k],   u[2i] = x[i], u = 0 elsewhere and outside
    downsample  y[i] = sum_k f[k] z[2i + 1 + k]

sqrt(2) f is orthonormal under even shifts, so downsampling an upsampled signal (aligned as the warp does)
gives the signal back: the pair is an exact reconstruction, not just a smoothing.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

# Low-pass decomposition filter of the Symlet-6 wavelet (PyWavelets' sym6 dec_lo); sums to sqrt(2).
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)


@functools.cache
def sym6_lowpass(device: torch.device, dtype: torch.dtype) -> Tensor:
    """[12] the sym6 filter normalised to sum 1, cached per device and dtype (one host copy, then none)."""
    f = torch.tensor(SYM6, dtype=torch.float64)
    return (f / f.sum()).to(device=device, dtype=dtype)


def _as_planes(x: Tensor) -> Tensor:
    """[N, C, H, W] -> [N * C, 1, H, W], so one single-channel filter serves every channel."""
    return x.reshape(-1, 1, *x.shape[-2:])


def upsample_2x(x: Tensor, f: Tensor) -> Tensor:
    """[N, C, H, W] -> [N, C, 2H, 2W]: zero insertion then filtering with 2f along each axis (zeros outside).

    f: [L], L even. A strided transposed convolution does the zero insertion without materialising it.
    """
    n, c, h, w = x.shape
    gain = 2 * f
    crop = f.numel() // 2 - 1  # aligns input pixel i with output sample 2i
    y = F.conv_transpose2d(_as_planes(x), gain.view(1, 1, 1, -1), stride=(1, 2), padding=(0, crop))
    y = F.conv_transpose2d(y, gain.view(1, 1, -1, 1), stride=(2, 1), padding=(crop, 0))
    return y.reshape(n, c, 2 * h, 2 * w)


def downsample_2x(z: Tensor, f: Tensor) -> Tensor:
    """[N, C, Z_h, Z_w] -> [N, C, (Z_h - L) // 2, (Z_w - L) // 2] (for even Z), y[i] = sum_k f[k] z[2i + 1 + k].

    f: [L]. Only outputs whose filter support lies inside z are kept, which is how the warp crops its sampling
    grid (2 (H + L/2) samples per axis) back to H pixels.
    """
    n, c = z.shape[:2]
    y = _as_planes(z)[:, :, 1:, 1:]
    y = F.conv2d(y, f.view(1, 1, 1, -1), stride=(1, 2))
    y = F.conv2d(y, f.view(1, 1, -1, 1), stride=(2, 1))
    return y.reshape(n, c, *y.shape[-2:])
