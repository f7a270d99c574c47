"""Training-set augmentation (``data.augment``): random translations and horizontal flips of images.

Applied to each training batch on the device, vectorised over the batch, never to validation or
test examples. Each image gets its own integer offset in ``[-translate, translate]`` per axis (a
positive offset moves the content down or right) and, with ``hflip``, a mirror image with
probability 0.5; the border a shift uncovers holds a black pixel as normalisation made it
(``(0 - mean) / std`` per channel, 0 without normalisation). The draws come from the augmentation's
own CPU generator, seeded from the spec's seed and saved in checkpoints, so a run is the same on
every device and a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch

from altlearn.data.batches import DeviceData, per_example


def augment_seed(seed: int) -> int:
    """A 63-bit generator seed for the augmentation stream of spec ``seed``: apart from the data
    order's generator and torch's global stream, which both start from ``seed`` itself."""
    digest = hashlib.sha256(f"altlearn-augment:{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def augment_problem(translate: int, hflip: bool, input_shape: tuple[int, ...]) -> tuple[str, str] | None:
    """(the option's path below ``data``, why it is wrong) for these options on examples of
    ``input_shape``, or None."""
    if not translate and not hflip:
        return None
    if len(input_shape) != 3:
        return (
            "augment",
            f"shifts and flips images (channels, height, width), and this data set serves flat "
            f"examples of shape {input_shape}; remove data.augment or serve images",
        )
    limit = min(input_shape[1:]) // 2
    if translate > limit:
        height, width = input_shape[1:]
        return (
            "augment.translate",
            f"{translate} is invalid: at most {limit}, half the smaller side of the {height}x{width} images",
        )
    return None


@dataclass
class Augmentation:
    """Random translations and flips of training batches, drawn from ``generator``."""

    translate: int  # the largest shift, in pixels, per axis
    hflip: bool
    fill: torch.Tensor  # (1, C, 1, 1) on the device: a black pixel after normalisation
    generator: torch.Generator  # on the CPU; its state goes into checkpoints

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """A new batch: each image of ``x`` (B, C, H, W) shifted, then perhaps mirrored."""
        n = len(x)
        if self.translate:
            k = self.translate
            offsets = torch.randint(-k, k + 1, (n, 2), generator=self.generator)
            x = translate(x, offsets.to(x.device), k, self.fill)
        if self.hflip:
            flips = torch.randint(0, 2, (n,), generator=self.generator).bool()
            x = torch.where(flips.to(x.device).view(n, 1, 1, 1), x.flip(3), x)
        return x


def translate(x: torch.Tensor, offsets: torch.Tensor, k: int, fill: torch.Tensor) -> torch.Tensor:
    """Image ``i`` of ``x`` (B, C, H, W) moved by ``offsets[i]`` = (rows, columns), each in
    [-k, k]: ``out[i, :, r, c] = x[i, :, r - dy, c - dx]`` where that lies inside the image, else
    ``fill`` (broadcast as (1, C, 1, 1)). No loop over images: a padded copy, then two gathers."""
    b, c, h, w = x.shape
    padded = fill.to(x.dtype).expand(b, c, h + 2 * k, w + 2 * k).clone()
    padded[:, :, k : k + h, k : k + w] = x
    rows = (k - offsets[:, 0]).view(b, 1) + torch.arange(h, device=x.device)  # (B, H) in padded
    cols = (k - offsets[:, 1]).view(b, 1) + torch.arange(w, device=x.device)
    taken = padded.gather(2, rows.view(b, 1, h, 1).expand(b, c, h, w + 2 * k))
    return taken.gather(3, cols.view(b, 1, 1, w).expand(b, c, h, w))


def make_augmentation(options: Any, data: DeviceData, seed: int) -> Augmentation | None:
    """What ``options`` (``data.augment``: ``translate``, ``hflip``) asks for on ``data``'s
    training batches; None for no augmentation."""
    translate, hflip = options.translate, options.hflip
    if not translate and not hflip:
        return None
    device = data.train_x.device
    example_ndim = data.train_x.ndim - 1
    black = (-per_example(data.mean, example_ndim)) / per_example(data.std, example_ndim)
    generator = torch.Generator().manual_seed(augment_seed(seed))
    return Augmentation(translate, hflip, black.to(device=device, dtype=data.train_x.dtype), generator)
