"""Networks: DeepMerge (Table A1 of the paper) and ResNet18.

Every network is split into a feature extractor and a classification head so that transfer losses
act on a named, documented feature space:

- ``deepmerge``: features are the flattened output of the last conv block (32 x 9 x 9 = 2592-d), as in
  the paper's code; the head is dense 2592 -> 64 -> 32 -> 2.
- ``resnet18``: torchvision's ResNet18 (random init) whose 512-d pooled output goes through a 256-d
  bottleneck (Linear + BatchNorm + ReLU, as the paper's code); features are that 256-d bottleneck and
  the head is Linear 256 -> 2.  Its true trainable parameter count is about 11.3 M; the paper's
  22,484,866 counts the parameters twice.
"""
from __future__ import annotations

import torch
from torch import nn

from deepmerge_da.grid import NETWORKS
from deepmerge_da.nn.pooling import MaxPool2x2


class DeepMerge(nn.Module):
    """The DeepMerge CNN of Table A1: 174,626 trainable parameters for 3x75x75 inputs."""

    feature_dim = 2592

    def __init__(self, in_channels: int = 3, num_classes: int = 2, dropout: float = 0.0):
        super().__init__()

        def block(cin: int, cout: int, kernel: int) -> list[nn.Module]:
            # Table A1 order: convolution with ReLU, then batch norm, then 2x2 max pooling (MaxPool2x2: the
            # results of nn.MaxPool2d(2), faster on CPU in the default layout).
            return [nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.ReLU(inplace=True),
                    nn.BatchNorm2d(cout), MaxPool2x2()]

        self.conv = nn.Sequential(*block(in_channels, 8, 5), *block(8, 16, 3), *block(16, 32, 3))
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(self.feature_dim, 64), nn.ReLU(inplace=True),
            nn.Linear(64, 32), nn.ReLU(inplace=True), nn.Linear(32, num_classes))

    @property
    def last_conv(self) -> nn.Module:
        """The module whose output feeds Grad-CAM (the last conv block's activation)."""
        return self.conv[-3]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.conv(x), 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (logits, features)."""
        f = self.features(x)
        return self.head(f), f


class ResNet18(nn.Module):
    """torchvision ResNet18 with a 256-d bottleneck before the 2-way head (the paper's code)."""

    feature_dim = 256

    def __init__(self, in_channels: int = 3, num_classes: int = 2, dropout: float = 0.0):
        super().__init__()
        from torchvision.models import resnet18  # here, not at the top: torchvision costs 2 s to import

        backbone = resnet18(weights=None)
        if in_channels != 3:
            backbone.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        backbone.fc = nn.Identity()
        self.backbone = backbone
        self.bottleneck = nn.Sequential(nn.Linear(512, self.feature_dim),
                                        nn.BatchNorm1d(self.feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.feature_dim, num_classes))

    @property
    def last_conv(self) -> nn.Module:
        return self.backbone.layer4

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(self.backbone(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.head(f), f


def build_network(name: str, in_channels: int = 3, num_classes: int = 2, dropout: float = 0.0) -> nn.Module:
    """Build a network by its config name (``deepmerge`` or ``resnet18``)."""
    classes = {"deepmerge": DeepMerge, "resnet18": ResNet18}
    if name not in classes:
        raise ValueError(f"unknown network {name!r}; choose one of {', '.join(NETWORKS)}")
    return classes[name](in_channels=in_channels, num_classes=num_classes, dropout=dropout)


def count_trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
