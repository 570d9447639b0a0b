"""Train the course CNN and save it as ``ece662/models/torch.model`` (or ``tensorflow.model``).

    python -m ece662.train [--mode torch|tensorflow] [--epochs 15] [--out PATH] [--seed 0]

Reads the dataset that ``get_CINIC10_data()`` finds (``$CINIC10_DIR`` or the
package default), trains with SGD (nesterov, L2 weight decay 5e-4), a
one-cycle learning rate and momentum schedule and random horizontal flips,
prints the test accuracy and records in the checkpoint what it was trained on.

``--mode tensorflow`` trains the Keras SmallCNN the same way: the same
initial weights (torch's initialisation for the seed, converted), the same
batches and flips, the same loss, the same SGD update with the weight decay
added to the gradient as torch does (L2, not decoupled), and torch's own
OneCycleLR values for the learning rate and momentum of every step.
"""
import argparse
import math
import time

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import data_utils
from .architecture import ARCHITECTURE, DEFAULT_CONFIG
from .model import build_model
from .paths import SUPPORTED_MODES
from .pruning_helper import accuracy, effective_state_dict, model_path, save_checkpoint, train_epoch

MOMENTUM, WEIGHT_DECAY, PCT_START = 0.9, 5e-4, 0.15
OPTIMIZER = ("SGD nesterov, L2 weight decay 5e-4 added to the gradient, one-cycle lr (pct_start 0.15) "
             "with momentum cycled 0.95-0.85-0.95")


def _sgd_one_cycle(params, lr: float, steps: int):
    """The optimizer and schedule of both frameworks' training (torch's OneCycleLR also cycles momentum)."""
    opt = torch.optim.SGD(params, lr=lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, nesterov=True)
    return opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=PCT_START)


def _epoch_batches(y, batch_size: int, rng: np.random.Generator):
    """(sorted image indices, horizontal-flip flags) of each batch of one epoch, drawn from ``rng``."""
    order = rng.permutation(len(y))
    for start in range(0, len(y), batch_size):
        idx = np.sort(order[start:start + batch_size])
        yield idx, rng.random(len(idx)) < 0.5


def train(data: dict, epochs: int = 15, batch_size: int = 128, lr: float = 0.05, seed: int = 0,
          verbose: bool = True) -> nn.Module:
    """Train a fresh SmallCNN on ``data['X_train']``; deterministic for a given seed and thread count."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(ARCHITECTURE, DEFAULT_CONFIG)
    X, y = data["X_train"], data["y_train"]
    opt, sched = _sgd_one_cycle(model.parameters(), lr, epochs * math.ceil(len(y) / batch_size))
    for epoch in range(epochs):  # train_epoch draws from rng as _epoch_batches does: same batches and flips
        train_epoch(model, opt, X, y, batch_size, seed=rng, scheduler=sched,
                    progress=f"epoch {epoch + 1}/{epochs}" if verbose else None)
    return model.eval()


def one_cycle_schedule(lr: float, steps: int) -> list[tuple[float, float]]:
    """(learning rate, momentum) of each step as torch's training uses them (read from OneCycleLR itself)."""
    opt, sched = _sgd_one_cycle([torch.zeros(1, requires_grad=True)], lr, steps)
    schedule = []
    for _ in range(steps):
        schedule.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
        opt.step()  # no gradient: changes nothing, keeps the scheduler's call order check happy
        sched.step()
    return schedule


def train_tensorflow(data: dict, epochs: int = 15, batch_size: int = 128, lr: float = 0.05, seed: int = 0,
                     verbose: bool = True):
    """Train a Keras SmallCNN exactly as ``train`` trains the torch one (see the module docstring)."""
    from .keras_helper import keras, normalise, tensorflow as tf  # TensorFlow only through it: safe beside torch
    from .keras_model import build_keras_model, keras_state_from_canonical

    torch.manual_seed(seed)
    initial = build_model(ARCHITECTURE, DEFAULT_CONFIG).state_dict()
    keras.utils.set_random_seed(seed)  # dropout masks
    rng = np.random.default_rng(seed)
    model = build_keras_model(DEFAULT_CONFIG)
    model.set_weights(keras_state_from_canonical({k: v.numpy() for k, v in initial.items()}))
    variables = model.trainable_variables
    buffers = [tf.Variable(tf.zeros(v.shape)) for v in variables]
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(reduce_retracing=True)
    def step(xb, yb, step_lr, momentum):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        for var, grad, buf in zip(variables, tape.gradient(loss, variables), buffers):
            grad = grad + WEIGHT_DECAY * var.value  # torch SGD's weight_decay: L2 added to the gradient
            buf.assign(momentum * buf + grad)
            var.assign_sub(step_lr * (grad + momentum * buf))  # nesterov
        return loss

    X, y = data["X_train"], data["y_train"]
    schedule = iter(one_cycle_schedule(lr, epochs * math.ceil(len(y) / batch_size)))
    for epoch in range(epochs):
        bar = tqdm(_epoch_batches(y, batch_size, rng), total=math.ceil(len(y) / batch_size),
                   desc=f"epoch {epoch + 1}/{epochs}", disable=not verbose)
        for idx, flip in bar:
            xb = normalise(X[idx])
            xb[flip] = xb[flip, :, ::-1]
            step_lr, momentum = next(schedule)
            loss = step(tf.constant(xb), tf.constant(y[idx]), tf.constant(step_lr, tf.float32),
                        tf.constant(momentum, tf.float32))
            bar.set_postfix(loss=f"{float(loss):.3f}")
    return model


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=SUPPORTED_MODES, default="torch", help="framework (default: torch)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="model file (default: ece662/models/<mode>.model)")
    parser.add_argument("--data", default=None, help="dataset folder (default: $CINIC10_DIR or ece662/datasets/cinic-10)")
    args = parser.parse_args(argv)

    data = data_utils.get_CINIC10_data(num_test=None, root=args.data)
    settings = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                "optimizer": OPTIMIZER, "augmentation": "hflip", "torch": str(torch.__version__)}
    out = args.out or model_path(args.mode)
    started = time.perf_counter()
    if args.mode == "tensorflow":
        from . import keras_helper

        model = train_tensorflow(data, args.epochs, args.batch_size, args.lr, args.seed)
        acc = keras_helper.accuracy(model, data["X_test"], data["y_test"])
        settings.update(tensorflow=keras_helper.tensorflow.__version__, keras=keras_helper.keras.__version__,
                        initialisation="torch SmallCNN initialisation for the seed, converted")
    else:
        model = train(data, args.epochs, args.batch_size, args.lr, args.seed)
        acc = accuracy(model, data["X_test"], data["y_test"])
    minutes = (time.perf_counter() - started) / 60
    print(f"Test Acc: {acc:.4f} on {len(data['y_test'])} test images ({minutes:.1f} min of training)")
    meta = {"dataset": data_utils.active_dataset(), "test_accuracy": acc, "training": settings}
    if args.mode == "tensorflow":
        out = keras_helper.save_model(model, out, meta=meta)
    else:
        out = save_checkpoint(effective_state_dict(model), out, DEFAULT_CONFIG, meta)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
