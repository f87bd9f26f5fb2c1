"""The two-layer convolutional network of the training experiments."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TwoLayerCNN"]


class TwoLayerCNN(nn.Module):
    """One convolution and one fully connected layer: conv -> ReLU -> max-pool -> linear.

    The network has two weight layers, as the two-layer CNN trained for
    handwritten-letter classification in Zhang et al., "First demonstration of
    second-order training of deep neural networks with in-memory analog matrix
    computing", arXiv:2512.05342. Its layer sizes there are not reproduced
    here (assumption): the defaults give the K-FAC factor sizes listed below.

    For 8x8 digits with the defaults (8 channels, 3x3 kernel, pool 2), the
    K-FAC factors are 10x10 (conv input patches and bias), 8x8 (conv output),
    129x129 (linear input and bias) and 10x10 (linear output).

    Parameters
    ----------
    image_shape : (channels, height, width)
    n_classes : int
    channels : int
        Output channels of the convolution.
    kernel_size : int
        Odd square kernel; the padding keeps the spatial size.
    pool : int
        Max-pool window and stride. Height and width must be multiples of it.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        n_classes: int,
        *,
        channels: int = 8,
        kernel_size: int = 3,
        pool: int = 2,
    ) -> None:
        super().__init__()
        in_channels, height, width = image_shape
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size = {kernel_size} is invalid: use an odd size so padding keeps the image size")
        if pool < 1 or height % pool or width % pool:
            raise ValueError(
                f"pool = {pool} does not divide the {height}x{width} image; use a divisor of both sides"
            )
        if channels < 1 or n_classes < 2:
            raise ValueError(f"channels = {channels} and n_classes = {n_classes} are invalid: need >= 1 and >= 2")
        self.conv = nn.Conv2d(in_channels, channels, kernel_size, padding=kernel_size // 2)
        self.pool = nn.MaxPool2d(pool)
        self.fc = nn.Linear(channels * (height // pool) * (width // pool), n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv(x)))
        return self.fc(torch.flatten(x, 1))
