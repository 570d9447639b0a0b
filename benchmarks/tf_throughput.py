"""P1 for TensorFlow mode: test_model(mode='tensorflow') vs a bare ``model(x, training=False)`` loop.

The Keras model holds the torch course model's weights (converted through the canonical layout), so the
same figures also say whether both frameworks classify the test images identically.
"""
import os
import time

import numpy as np

from ece662.pruning_helper import EVAL_BATCH_SIZE, accuracy, load_model


def tf_eval_throughput(model_file, X, y, rounds: int = 2) -> dict:
    """Images/s of TF-mode test_model (uint8 in, normalised per batch) and of a bare forward loop over
    preloaded normalised tensors, measured side by side; plus both frameworks' accuracy on the same weights."""
    from ece662 import keras_helper  # TensorFlow only through it: safe beside torch
    from ece662.keras_model import from_canonical
    from ece662.pruning_helper import effective_state_dict

    torch_model = load_model(model_file)
    model = from_canonical({k: v.numpy() for k, v in effective_state_dict(torch_model).items()})
    preloaded = keras_helper.tensorflow.constant(keras_helper.normalise(X))  # test_model's own normalisation, done once up front

    def bare_forward():
        for start in range(0, len(preloaded), EVAL_BATCH_SIZE):
            np.asarray(model(preloaded[start:start + EVAL_BATCH_SIZE], training=False)).argmax(1)

    helper, bare = [], []
    for _ in range(rounds):  # alternate the sides so drift hits both
        started = time.perf_counter()
        tf_acc = keras_helper.accuracy(model, X, y)
        helper.append(time.perf_counter() - started)
        started = time.perf_counter()
        bare_forward()
        bare.append(time.perf_counter() - started)
    n = len(y)
    threads = keras_helper.tensorflow.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()  # 0: TF's default, all cores
    return {"images": n, "batch_size": EVAL_BATCH_SIZE, "threads": threads,
            "test_model_img_per_s": n / min(helper), "bare_forward_img_per_s": n / min(bare),
            "ratio": min(bare) / min(helper), "tensorflow_accuracy": tf_acc,
            "torch_accuracy": accuracy(torch_model, X, y)}
