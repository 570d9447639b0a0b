"""The small CNN whose weights the assignment prunes.

Three 3x3 convolutions and two Linear layers, about 0.58M parameters (most
of them in the first Linear layer), the size of model a previous PyTorch
exercise produces. ``features`` and ``classifier`` are plain
``nn.Sequential`` blocks so that helpers (and students) can walk the layers.
"""
import numpy as np
import torch
from torch import nn

from .architecture import ARCHITECTURE, DEFAULT_CONFIG
from .budget import conv_widths


class SmallCNN(nn.Module):
    """conv-pool-conv-pool-conv-fc-fc for 3x32x32 inputs."""

    def __init__(self, channels=(32, 64, 64), hidden=128, dropout=0.5, num_classes=10):
        super().__init__()
        c1, c2, c3 = channels
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c3 * 8 * 8, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build_model(architecture: str = ARCHITECTURE, config: dict | None = None) -> nn.Module:
    """Instantiate the architecture named in a checkpoint."""
    if architecture != ARCHITECTURE:
        raise ValueError(f"unknown architecture {architecture!r}; this package defines {ARCHITECTURE!r}")
    return SmallCNN(**dict(DEFAULT_CONFIG, **(config or {})))


def from_canonical(state: dict) -> SmallCNN:
    """The course SmallCNN (eval mode, as many filters as ``state`` has) with weights from a canonical state:
    {state_dict name: array or tensor}.

    Evidence of either framework is in this layout (see ``ece662/grading/evidence.py``), so one evaluator serves both.
    """
    fc1, fc2 = (np.shape(state[f"classifier.{i}.weight"]) for i in (1, 4))
    model = build_model(config={"channels": list(conv_widths(state)), "hidden": fc1[0], "num_classes": fc2[0]})
    model.load_state_dict({k: torch.as_tensor(v, dtype=torch.float32) for k, v in state.items()})
    return model.eval()
