"""Train the course CNN and save it as ``ece662/models/torch.model``.

    python -m ece662.train [--epochs 15] [--out PATH] [--seed 0]

Reads the dataset that ``get_CINIC10_data()`` finds (``$CINIC10_DIR`` or the
package default), trains with SGD + momentum, cosine learning rate and random
horizontal flips, prints the test accuracy and records in the checkpoint
what it was trained on.
"""
import argparse
import math
import time

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import data_utils
from .model import ARCHITECTURE, DEFAULT_CONFIG, build_model
from .pruning_helper import _batches, accuracy, model_path, save_checkpoint


def train(data: dict, epochs: int = 15, batch_size: int = 128, lr: float = 0.05, seed: int = 0,
          verbose: bool = True) -> nn.Module:
    """Train a fresh SmallCNN on ``data['X_train']``; deterministic for a given seed and thread count."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(ARCHITECTURE, DEFAULT_CONFIG)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    X, y = data["X_train"], data["y_train"]
    steps = epochs * math.ceil(len(y) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(epochs):
        order = rng.permutation(len(y))
        bar = tqdm(range(0, len(y), batch_size), desc=f"epoch {epoch + 1}/{epochs}", disable=not verbose)
        for start in bar:
            idx = np.sort(order[start:start + batch_size])
            (xb, yb), = _batches(X[idx], y[idx], len(idx))
            flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
            xb[flip] = xb[flip].flip(3)
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="checkpoint path (default: ece662/models/torch.model)")
    parser.add_argument("--data", default=None, help="dataset folder (default: $CINIC10_DIR or ece662/datasets/cinic-10)")
    args = parser.parse_args(argv)

    data = data_utils.get_CINIC10_data(num_test=None, root=args.data)
    started = time.perf_counter()
    model = train(data, args.epochs, args.batch_size, args.lr, args.seed)
    minutes = (time.perf_counter() - started) / 60
    acc = accuracy(model, data["X_test"], data["y_test"])
    print(f"Test Acc: {acc:.4f} on {len(data['y_test'])} test images ({minutes:.1f} min of training)")
    meta = {
        "dataset": data_utils.active_dataset(),
        "test_accuracy": acc,
        "training": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                     "optimizer": "SGD nesterov momentum 0.9, wd 5e-4, one-cycle lr", "augmentation": "hflip",
                     "torch": str(torch.__version__)},
    }
    out = save_checkpoint(model, args.out or model_path("torch"), ARCHITECTURE, DEFAULT_CONFIG, meta)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
