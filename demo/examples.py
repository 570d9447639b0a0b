"""Example submissions built from the release notebook: correct, wrong, tampering and hostile ones.

``make demo`` grades a few of them; the tests grade all of them and check
that each loses exactly the points of its bug. Each example fills the
student cells (between the START/END markers) with its own code, and some
also change the notebook around them.
"""
import inspect
import json
import re
import textwrap
from pathlib import Path

import nbformat

from autograder.nbgrader_course import ASSIGNMENT, NOTEBOOK, RELEASE_DIR, REPO
from autograder.reference import solution

START = "# *****START OF YOUR CODE (DO NOT DELETE/MODIFY THIS LINE)*****"
END = "# *****END OF YOUR CODE (DO NOT DELETE/MODIFY THIS LINE)*****"


def source(mode: str, function: str, name: str | None = None) -> str:
    """The reference solution's code of ``function`` in ``mode`` as a student's cell would hold it, the function
    renamed ``name`` if given."""
    code = textwrap.dedent(inspect.getsource(getattr(solution(mode), function)))
    return "\n" + (re.sub(r"^def \w+\(", f"def {name}(", code, count=1) if name else code)


def mutate(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` replaced, which must be there (a mutant that silently equals the original tests
    nothing)."""
    if old not in text:
        raise ValueError(f"{old!r} is not in the code it should change")
    return text.replace(old, new)


# The Part 1 sweep as the notebook asks for it, after each example's prune_unstructured_to.
P1_SWEEP = '''
unstructured_results = {}
for level in sparsity_levels:
    prune_unstructured_to(model, level)
    unstructured_results[level] = test_model(model, test_data, mode=mode)
'''
P2_SWEEP = '''
structured_results = {}
for level in structured_levels:
    fresh = load_model(path, mode=mode)
    prune_filters(fresh, level)
    structured_results[level] = test_model(fresh, test_data, mode=mode)
'''
# Part 4's two runs, with the notebook's two functions,
P4_RUNS = '''

finetuned_model = clone_model(one_shot_model)
finetune(finetuned_model, part4_epochs)
gradual_model = load_model(path, mode=mode)
train_with_gradual_pruning(gradual_model, part4_epochs, part4_target)
part4_results = {'after_training': test_model(finetuned_model, test_data, mode=mode),
                 'during_training': test_model(gradual_model, test_data, mode=mode)}
'''
# here the reference's, given the notebook's settings.
P4_CALLS = '''
def finetune(model, epochs):
    recipe_finetune(model, epochs, X_part4, y_part4, part4_lr, part4_momentum)


def train_with_gradual_pruning(model, epochs, target):
    recipe_gradual(model, epochs, target, X_part4, y_part4, part4_lr, part4_momentum)
''' + P4_RUNS

# Part 5: the function, and the choice (a cell of its own) as the notebook asks for it
P5_CORRECT = source("torch", "keep_filters")
TF_P5_CORRECT = source("tensorflow", "keep_filters")
P5_GUIDED = "\npart5_keep = (8, 40, 48)\n"  # fewer filters where a filter costs the most MACs (conv1)
P5_UNIFORM = "\npart5_keep = (16, 32, 32)\n"  # what the grader compares every choice with, at 30%
P5_OVER_BUDGET = "\npart5_keep = (24, 40, 40)\n"  # 49% of the MACs

P1_CORRECT = source("torch", "prune_unstructured_to") + P1_SWEEP
P2_CORRECT = source("torch", "prune_filters") + P2_SWEEP
P4_CORRECT = (source("torch", "finetune", "recipe_finetune")
              + source("torch", "train_with_gradual_pruning", "recipe_gradual") + P4_CALLS)
TF_P1_CORRECT = source("tensorflow", "prune_unstructured_to") + P1_SWEEP
TF_P2_CORRECT = source("tensorflow", "prune_filters") + P2_SWEEP
TF_P4_CORRECT = (source("tensorflow", "finetune", "recipe_finetune")
                 + source("tensorflow", "train_with_gradual_pruning", "recipe_gradual") + P4_CALLS)

# Correct but different: masks by hand with kthvalue over all weights, written into the weights directly.
P1_KTHVALUE = '''
def prune_unstructured_to(model, target):
    layers = [layer for _, layer in prunable_layers(model)]
    with torch.no_grad():
        flat = torch.cat([l.weight.abs().flatten() for l in layers])
        k = int(round(target * flat.numel()))
        if k == 0:
            return model
        threshold = flat.kthvalue(k).values
        for l in layers:
            l.weight[l.weight.abs() <= threshold] = 0.0
    return model

unstructured_results = {lvl: test_model(prune_unstructured_to(model, lvl), test_data, mode=mode)
                        for lvl in sparsity_levels}
'''

# Correct but different: prune.remove after every step. The zeros are then plain weights that rank as the
# smallest, so the integer amount is the total count of zeros wanted, round(target * N).
P1_REMOVE = '''
def prune_unstructured_to(model, target):
    layers = [layer for _, layer in prunable_layers(model)]
    total = sum(l.weight.numel() for l in layers)
    prune.global_unstructured([(l, 'weight') for l in layers], pruning_method=prune.L1Unstructured,
                              amount=round(target * total))
    for l in layers:
        prune.remove(l, 'weight')
''' + P1_SWEEP

# The classic mistake: 0.1 of the *remaining* weights at every step (ends near 57%).
P1_INCREMENTAL = mutate(P1_CORRECT, "amount=amount)", "amount=0.1)")

# Cumulative target passed as amount: the steps compound.
P1_TARGET_AS_AMOUNT = mutate(P1_CORRECT, "amount=amount)", "amount=target)")

# Per-layer pruning where global was asked.
P1_PER_LAYER = '''
def prune_unstructured_to(model, target):
    for _, layer in prunable_layers(model):
        w = layer.weight
        current = float((w == 0).float().mean())
        prune.l1_unstructured(layer, 'weight', amount=max(0.0, (target - current) / (1 - current)))
''' + P1_SWEEP

# Correct but different: filter norms and zeroing by hand, weights and bias.
P2_MANUAL = '''
def prune_filters(model, level):
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                norms = module.weight.flatten(1).norm(dim=1)
                pruned = norms.argsort()[:round(level * len(norms))]
                module.weight[pruned] = 0.0
                module.bias[pruned] = 0.0
''' + P2_SWEEP

# Wrong: also prunes the Linear layers' output rows.
P2_LINEAR_TOO = mutate(P2_CORRECT, "isinstance(layer, nn.Conv2d)", "isinstance(layer, (nn.Conv2d, nn.Linear))")

# Wrong: "structured" done with unstructured pruning.
P2_UNSTRUCTURED = mutate(P2_CORRECT, "prune.ln_structured(layer, name=\"weight\", amount=level, n=2, dim=0)",
                           "prune.l1_unstructured(layer, name=\"weight\", amount=level)")

# Wrong: the zeroed filters keep their bias (last year's notebook asked for exactly that).
P2_BIAS_KEPT = mutate(P2_CORRECT, "prune.custom_from_mask(layer, name=\"bias\"", "(lambda *a, **k: None)(layer, name=\"bias\"")

# Correct, for a Part 1 that zeroes weights without masks (by hand, or prune.remove): the gradual run prunes with
# masks, or its next epoch would grow the pruned weights back.
P4_OWN_MASKS = mutate(P4_CORRECT, "            prune_unstructured_to(model, target * (epoch + 1) / (epochs - 1))", """\
            layers = [(layer, 'weight') for _, layer in prunable_layers(model)]
            current = global_sparsity(model)
            goal = target * (epoch + 1) / (epochs - 1)
            prune.global_unstructured(layers, pruning_method=prune.L1Unstructured,
                                      amount=max(0.0, (goal - current) / (1 - current)))""")

# Correct but different ways to follow Part 4's recipe (each lands on the grader's run of it):
# evaluating the model after every epoch (a forward pass between training and pruning),
P4_EVALUATES_EACH_EPOCH = mutate(P4_CORRECT, "        train_epoch(model, optimizer, X, y, seed=epoch)\n",
                                 "        train_epoch(model, optimizer, X, y, seed=epoch)\n"
                                 "        test_model(model, test_data, mode=mode)\n")

# no masks (Part 1 by hand): the pruned weights set back to zero after every optimizer step,
P4_ZEROES_AFTER_EACH_STEP = '''
def zero_after_every_step(model, optimizer):
    """After every optimizer.step(), set the weights that are zero now back to zero (call again after pruning)."""
    masks = [(layer.weight, layer.weight != 0) for _, layer in prunable_layers(model)]

    def zero(opt, args, kwargs):
        with torch.no_grad():
            for weight, mask in masks:
                weight.mul_(mask)
    return optimizer.register_step_post_hook(zero)


def finetune(model, epochs):
    for _, layer in prunable_layers(model):
        if hasattr(layer, 'weight_mask'):
            prune.remove(layer, 'weight')  # clone_model's masks out: the hook keeps the zeros instead
    optimizer = torch.optim.SGD(model.parameters(), lr=part4_lr, momentum=part4_momentum)
    zero_after_every_step(model, optimizer)
    for epoch in range(epochs):
        train_epoch(model, optimizer, X_part4, y_part4, seed=epoch)


def train_with_gradual_pruning(model, epochs, target):
    optimizer = torch.optim.SGD(model.parameters(), lr=part4_lr, momentum=part4_momentum)
    hook = None
    for epoch in range(epochs):
        train_epoch(model, optimizer, X_part4, y_part4, seed=epoch)
        if epoch < epochs - 1:
            prune_unstructured_to(model, target * (epoch + 1) / (epochs - 1))
            if hook is not None:
                hook.remove()
            hook = zero_after_every_step(model, optimizer)
''' + P4_RUNS

# no masks either: the gradients of the pruned weights masked by hooks, and their momentum cleared,
P4_MASKS_GRADIENTS = '''
def mask_gradients(model, optimizer, masks):
    """No gradient and no momentum for the weights that are zero now, so SGD leaves them at zero (call again after
    pruning; each weight gets its hook once)."""
    for name, layer in prunable_layers(model):
        if name not in masks:
            layer.weight.register_hook(lambda grad, name=name: grad * masks[name])
        masks[name] = (layer.weight != 0).to(layer.weight.dtype)
        momentum = optimizer.state.get(layer.weight, {}).get('momentum_buffer')
        if momentum is not None:
            momentum.mul_(masks[name])


def finetune(model, epochs):
    for _, layer in prunable_layers(model):
        if hasattr(layer, 'weight_mask'):
            prune.remove(layer, 'weight')
    optimizer = torch.optim.SGD(model.parameters(), lr=part4_lr, momentum=part4_momentum)
    mask_gradients(model, optimizer, {})
    for epoch in range(epochs):
        train_epoch(model, optimizer, X_part4, y_part4, seed=epoch)


def train_with_gradual_pruning(model, epochs, target):
    optimizer = torch.optim.SGD(model.parameters(), lr=part4_lr, momentum=part4_momentum)
    masks = {}
    for epoch in range(epochs):
        train_epoch(model, optimizer, X_part4, y_part4, seed=epoch)
        if epoch < epochs - 1:
            prune_unstructured_to(model, target * (epoch + 1) / (epochs - 1))
            mask_gradients(model, optimizer, masks)
''' + P4_RUNS

# with Part 1's prune.remove: each step removes the masks, prunes the plain weights and masks the zeros again,
P4_REPRUNES_AFTER_REMOVE = mutate(P4_CORRECT, """\
            prune_unstructured_to(model, target * (epoch + 1) / (epochs - 1))""", """\
            for _, layer in prunable_layers(model):
                if hasattr(layer, 'weight_mask'):
                    prune.remove(layer, 'weight')
            prune_unstructured_to(model, target * (epoch + 1) / (epochs - 1))
            for _, layer in prunable_layers(model):
                prune.custom_from_mask(layer, 'weight', layer.weight != 0)""")

# and with another number of CPU threads than the grader's.
P4_OTHER_THREAD_COUNT = "\ntorch.set_num_threads(1 if torch.get_num_threads() > 1 else 2)\n" + P4_CORRECT

# Not the recipe: one batch fewer in every epoch of both runs.
P4_ONE_BATCH_FEWER = mutate(P4_CORRECT, "X_part4, y_part4,", "X_part4[:-128], y_part4[:-128],")

# Wrong start: the recipe fine-tunes a random 95% mask of the course model, not `one_shot_model`.
P4_RANDOM_START = mutate(P4_CORRECT, "finetuned_model = clone_model(one_shot_model)\n", '''torch.manual_seed(0)
finetuned_model = load_model(path, mode=mode)
for _, layer in prunable_layers(finetuned_model):
    prune.random_unstructured(layer, 'weight', amount=part4_target)
''')

# Wrong: the masks are removed before fine-tuning, so pruned weights grow back.
P4_MASKS_DROPPED = mutate(P4_CORRECT, "finetuned_model = clone_model(one_shot_model)\n", '''finetuned_model = clone_model(one_shot_model)
for _, layer in prunable_layers(finetuned_model):
    prune.remove(layer, 'weight')
''')

# Wrong: "gradual" pruning without any training.
P4_GRADUAL_UNTRAINED = mutate(P4_CORRECT, "        train_epoch(model, optimizer, X, y, seed=epoch)\n        if epoch",
                                "        if epoch")

# The classic mistake in Keras: 10% of the weights still unpruned at every step.
TF_P1_INCREMENTAL = mutate(TF_P1_CORRECT, "count = int(round(target * flat.size))",
                             "count = int((flat == 0).sum() + round(0.1 * (flat != 0).sum()))")

TF_P1_PER_LAYER = '''
def prune_unstructured_to(model, target):
    for _, layer in prunable_layers(model):
        weights = layer.get_weights()
        flat = np.abs(weights[0]).ravel()
        count = int(round(target * flat.size))
        if count:
            threshold = np.partition(flat, count - 1)[count - 1]
            weights[0] = np.where(np.abs(weights[0]) <= threshold, 0.0, weights[0])
            layer.set_weights(weights)
''' + P1_SWEEP

# Wrong: the Dense layers' units are pruned too.
TF_P2_DENSE_TOO = mutate(mutate(TF_P2_CORRECT, "isinstance(layer, keras.layers.Conv2D)",
                                    "isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))"),
                           "axis=(0, 1, 2)", "axis=tuple(range(kernel.ndim - 1))")

# Tampering: fake evaluation and patched libraries.
P1_FAKE_TEST_MODEL = P1_CORRECT + '''
def test_model(model, test_data, mode='torch'):
    return 0.99
unstructured_results = {level: test_model(model, test_data) for level in sparsity_levels}
'''
P1_PATCHED_LIBRARIES = '''
def prune_unstructured_to(model, target):
    pass  # does nothing, then tries to fool the checks

import ece662.pruning_helper, ece662.grading, ece662.grading.cells, ece662.grading.checks
prune.global_unstructured = lambda *args, **kwargs: None
ece662.pruning_helper.global_sparsity = lambda model: 0.8
for name in ('cumulative_sparsity', 'global_threshold', 'only_weights_changed', 'final_model', 'run'):
    setattr(ece662.grading.checks, name, lambda *args, **kwargs: None)
ece662.grading.run_test = ece662.grading.cells.run_test = lambda *args, **kwargs: print('Public check passed.')
unstructured_results = {level: 0.5 for level in sparsity_levels}
'''
P1_HARD_CODED = '''
def prune_unstructured_to(model, target):
    params = [(layer, 'weight') for _, layer in prunable_layers(model)]
    current = global_sparsity(model)
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured,
                              amount=max(0.0, (target - current) / (1 - current)))

for level in sparsity_levels:
    prune_unstructured_to(model, level)
unstructured_results = {level: round(base_acc - 0.002 * i, 4) for i, level in enumerate(sparsity_levels)}
'''

# Hostile code that runs in the grading kernel.
LOOP_FOREVER = "\nwhile True:\n    pass\n"
KILL_KERNEL = "\nimport os\nos._exit(1)\n"
MEMORY_HOG = "\nhog = bytearray(64 * 2**30)\n"
SNOOP = r'''
import glob, os, sqlite3
found = []
for pattern in ['../../../gradebook.db', '../../../../gradebook.db', '../../../../template/gradebook.db',
                '{repo}/assignment/*/*.ipynb', '../../../submitted/*/*/*.ipynb', '../../../../work/*/course/gradebook.db',
                '/root/*', os.path.expanduser('~') + '/.bash_history']:
    for p in glob.glob(pattern):
        try:
            with open(p, 'rb') as f:
                f.read(16)
            found.append(p)
        except OSError:
            pass
print('READABLE:', found)
written = []
for p in ['../../../gradebook.db', '../../../../grades.csv', '/tmp/../{repo}/HACKED', '../HACKED']:
    try:
        with open(p, 'ab') as f:
            f.write(b'x')
        written.append(p)
    except OSError:
        pass
print('WRITABLE:', written)
for db in glob.glob('../../../gradebook.db'):
    try:
        sqlite3.connect(db).execute('UPDATE grade SET manual_score = 100').connection.commit()
        print('GRADES CHANGED')
    except Exception as exc:
        print('update failed:', exc)
'''

# Tries to change a grading file the kernel can reach: read-only in the sandbox, detected without it.
EDIT_MODEL = r'''
from ece662.pruning_helper import model_path
try:
    with open(model_path('torch'), 'ab') as f:
        f.write(b'tampered')
    print('MODEL CHANGED')
except OSError as exc:
    print('model is read-only:', exc)
'''


# Part 5's wrong ways, each a cell after the notebook's build cell: the filters zeroed but not removed,
P5_NOT_REMOVED = """
part5_start = load_model(path, mode=mode)
keep_filters(part5_start, part5_keep)
part5_model = clone_model(part5_start)
finetune(part5_model, part4_epochs)
"""
# an epoch more than the recipe,
P5_TRAINED_LONGER = "\nfinetune(part5_model, 1)\n"
# and an epoch on the test images.
P5_TRAINED_ON_TEST = """
optimizer = torch.optim.SGD(part5_model.parameters(), lr=part4_lr, momentum=part4_momentum)
train_epoch(part5_model, optimizer, test_data[0], test_data[1], seed=0)
"""


def release_notebook():
    return nbformat.read(REPO / RELEASE_DIR / ASSIGNMENT / NOTEBOOK, as_version=4)


def fill(nb, part1: str | None = None, part2: str | None = None, part4: str | None = P4_CORRECT,
         part5: str | None = P5_CORRECT, keep: str | None = P5_GUIDED):
    """The notebook with the student cells of Parts 1, 2, 4 and 5 (``keep``: Part 5's choice) replaced (None: left
    as released)."""
    for cell_id, code in (("part1_code", part1), ("part2_code", part2), ("part4_code", part4), ("part5_code", part5),
                          ("part5_choice", keep)):
        for cell in nb.cells:
            if cell.get("id") == cell_id and code is not None:
                cell.source = START + code + END
    return nb


def tensorflow(nb):
    """The notebook in TensorFlow mode (its editable `mode` cell)."""
    next(c for c in nb.cells if c.get("id") == "mode").source = "mode = 'tensorflow'"
    return nb


def insert_after(nb, cell_id: str, code: str):
    index = next(i for i, c in enumerate(nb.cells) if c.get("id") == cell_id)
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(code))
    return nb


def _drop(nb, cell_id):
    nb.cells = [c for c in nb.cells if c.get("id") != cell_id]
    return nb


def _rename(nb, cell_id, new_id):
    for c in nb.cells:
        if c.get("id") == cell_id:
            c.metadata.nbgrader["grade_id"] = new_id
            c.source = "print('my own test')"
            c.id = new_id
    return nb


def _answer(nb):
    for c in nb.cells:
        if c.get("id") in ("q1_answer", "q2_answer", "q3_answer", "q4_answer"):
            c.source = "Accuracy stays flat, then drops; dropout is random and temporary, pruning permanent."
    return nb


def correct():
    return _answer(fill(release_notebook(), P1_CORRECT, P2_CORRECT))


EXAMPLES = {
    # name: function building the notebook (or bytes for files that are not notebooks)
    "correct": correct,
    "correct_kthvalue_manual": lambda: fill(release_notebook(), P1_KTHVALUE, P2_MANUAL, P4_OWN_MASKS),
    "correct_prune_remove": lambda: fill(release_notebook(), P1_REMOVE, P2_CORRECT, P4_OWN_MASKS),
    "correct_evaluates_each_epoch": lambda: fill(release_notebook(), P1_CORRECT, P2_CORRECT, P4_EVALUATES_EACH_EPOCH),
    "correct_zeroes_after_each_step": lambda: fill(release_notebook(), P1_KTHVALUE, P2_CORRECT,
                                                   P4_ZEROES_AFTER_EACH_STEP),
    "correct_masks_gradients": lambda: fill(release_notebook(), P1_KTHVALUE, P2_CORRECT, P4_MASKS_GRADIENTS),
    "correct_reprunes_after_remove": lambda: fill(release_notebook(), P1_REMOVE, P2_CORRECT, P4_REPRUNES_AFTER_REMOVE),
    "correct_other_thread_count": lambda: fill(release_notebook(), P1_CORRECT, P2_CORRECT, P4_OTHER_THREAD_COUNT),
    "blank": release_notebook,
    "wrong_incremental_fraction": lambda: fill(release_notebook(), P1_INCREMENTAL, P2_CORRECT),
    "wrong_target_as_amount": lambda: fill(release_notebook(), P1_TARGET_AS_AMOUNT, P2_CORRECT),
    "wrong_per_layer": lambda: fill(release_notebook(), P1_PER_LAYER, P2_CORRECT),
    "wrong_structured_hits_linear": lambda: fill(release_notebook(), P1_CORRECT, P2_LINEAR_TOO),
    "wrong_structured_is_unstructured": lambda: fill(release_notebook(), P1_CORRECT, P2_UNSTRUCTURED),
    "wrong_filter_bias_kept": lambda: fill(release_notebook(), P1_CORRECT, P2_BIAS_KEPT),
    "wrong_finetune_drops_masks": lambda: fill(release_notebook(), P1_CORRECT, P2_CORRECT, P4_MASKS_DROPPED),
    "wrong_gradual_untrained": lambda: fill(release_notebook(), P1_CORRECT, P2_CORRECT, P4_GRADUAL_UNTRAINED),
    "wrong_one_batch_fewer": lambda: fill(release_notebook(), P1_CORRECT, P2_CORRECT, P4_ONE_BATCH_FEWER),
    "wrong_finetune_random_start": lambda: fill(release_notebook(), P1_CORRECT, P2_CORRECT, P4_RANDOM_START),
    "correct_part5_uniform": lambda: fill(release_notebook(), P1_CORRECT, P2_CORRECT, keep=P5_UNIFORM),
    "wrong_part5_over_budget": lambda: fill(release_notebook(), P1_CORRECT, P2_CORRECT, keep=P5_OVER_BUDGET),
    "wrong_part5_not_removed": lambda: insert_after(correct(), "part5_build", P5_NOT_REMOVED),
    "wrong_part5_trained_longer": lambda: insert_after(correct(), "part5_build", P5_TRAINED_LONGER),
    "wrong_part5_trained_on_test": lambda: insert_after(correct(), "part5_build", P5_TRAINED_ON_TEST),
    "tf_correct": lambda: _answer(fill(tensorflow(release_notebook()), TF_P1_CORRECT, TF_P2_CORRECT, TF_P4_CORRECT,
                                       TF_P5_CORRECT)),
    "tf_wrong_part5_trained_longer": lambda: insert_after(
        fill(tensorflow(release_notebook()), TF_P1_CORRECT, TF_P2_CORRECT, TF_P4_CORRECT, TF_P5_CORRECT),
        "part5_build", P5_TRAINED_LONGER),
    # TensorFlow's Parts 1 and 2 mistakes, with Parts 4 and 5 left undone (tf_correct covers TensorFlow's Part 4)
    "tf_wrong_incremental_fraction": lambda: fill(tensorflow(release_notebook()), TF_P1_INCREMENTAL, TF_P2_CORRECT,
                                                  None, None),
    "tf_wrong_per_layer": lambda: fill(tensorflow(release_notebook()), TF_P1_PER_LAYER, TF_P2_CORRECT, None, None),
    "tf_wrong_structured_hits_dense": lambda: fill(tensorflow(release_notebook()), TF_P1_CORRECT, TF_P2_DENSE_TOO,
                                                   None, None),
    "tamper_fake_test_model": lambda: fill(release_notebook(), P1_FAKE_TEST_MODEL, P2_CORRECT),
    "tamper_patched_libraries": lambda: fill(release_notebook(), P1_PATCHED_LIBRARIES, P2_CORRECT),
    "tamper_hard_coded_results": lambda: fill(release_notebook(), P1_HARD_CODED, P2_CORRECT),
    "hostile_infinite_loop": lambda: fill(release_notebook(), P1_CORRECT, P2_CORRECT + LOOP_FOREVER),
    "hostile_kills_kernel": lambda: fill(release_notebook(), P1_CORRECT, KILL_KERNEL + P2_CORRECT),
    "hostile_memory_hog": lambda: insert_after(correct(), "part1_code", MEMORY_HOG),
    "hostile_deletes_test_cell": lambda: _drop(correct(), "test_part1_global"),
    "hostile_renames_grade_id": lambda: _rename(correct(), "test_part2_scope", "my_renamed_test"),
    "hostile_snoops": lambda: insert_after(correct(), "setup", SNOOP.replace("{repo}", str(REPO))),
    "hostile_edits_model": lambda: insert_after(correct(), "setup", EDIT_MODEL),
    "invalid_corrupted_json": lambda: nbformat.writes(correct())[:2000].encode(),
    "invalid_not_a_notebook": lambda: b"%PDF-1.4 this is a scanned pdf, not a notebook",
}


def write_examples(folder: Path, names=None) -> dict[str, Path]:
    """Write the chosen examples as ``<name>.ipynb`` (a 'not a notebook' one as ``.pdf``)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in names or EXAMPLES:
        content = EXAMPLES[name]()
        path = folder / (f"{name}.pdf" if name == "invalid_not_a_notebook" else f"{name}.ipynb")
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(json.dumps(content, indent=1))
        written[name] = path
    return written
