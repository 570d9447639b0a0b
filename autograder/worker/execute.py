"""nbgrader's Execute preprocessor with CPU-time limits, a whole-notebook limit and recovery from kernel death.

nbgrader 0.9.6 limits each cell's wall-clock time (``Execute.timeout``) but not
the notebook, and a cell that kills its kernel (``os._exit``, the OOM killer, a
segfault) aborts the whole submission, leaving the student unscored.
``LimitedExecute`` replaces ``Execute`` in ``Autograde.autograde_preprocessors``:

* the time limits count CPU time, which a busy machine does not stretch: the
  CPU time of the kernel's process tree (``processes.kernel_cpu_seconds``). A
  cell may use ``timeout`` CPU seconds and the notebook ``notebook_timeout``;
  a watcher interrupts the kernel (as nbclient does on a timeout) once the
  cell's budget is used. A wall-clock backstop ``backstop_factor`` times longer
  (nbclient's own timeout, and the notebook's deadline) stops cells that sleep
  or wait;
* once the notebook's time is used, the remaining code cells are not run and
  get an error output, so their tests score zero and the tests that already ran
  keep their result;
* when the kernel dies in a cell, that cell gets an error output saying how
  (exit code or signal, the last lines of the kernel's stderr), the kernel is
  restarted, the earlier code cells are replayed silently to rebuild the
  student's state, and execution goes on with the next cell;
* a kernel that does not start raises ``KernelStartError`` saying why.

Error names ``NotebookTimeLimit``, ``CpuTimeLimit`` and ``KernelDied`` mark
what happened in the cell outputs. What happened is also recorded in
``resources`` by this trusted process (the kernel's outputs are the student's to
fake): ``resources["ece662_cell_status"]`` maps each autograded cell's grade id
to ``"ran"`` or why it did not run to the end, and
``resources["ece662_events"]`` lists time limits (with the CPU and wall-clock
seconds used), kernel deaths (with their cause) and memory errors with their
cell ids; the verifier and the worker's status read those.

``KillLeftovers``, the next step, kills what the kernel left running before the
verifier reads its evidence, and tells the course run that the kernel is gone.
"""
import asyncio
import copy
import math
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass

from jupyter_core.utils import ensure_async, run_sync
from nbclient.exceptions import DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Enum, Integer, Unicode

from autograder.worker.job import KERNEL_GONE, Limits
from autograder.worker.processes import kernel_cpu_seconds, kill_descendants
from autograder.worker.sandbox import NONE, sweep
from ece662.grading import registry

TIME_LIMIT_ERROR = "NotebookTimeLimit"
CPU_LIMIT_ERROR = "CpuTimeLimit"
KERNEL_DIED_ERROR = "KernelDied"
# what resources["ece662_events"] records
EVENT_CPU, EVENT_WALL, EVENT_NOTEBOOK = "cpu time limit", "wall time limit", "time limit"
EVENT_DIED, EVENT_MEMORY = "kernel died", "memory"
CPU_POLL_S = 0.5  # how often the watcher reads the kernel's CPU time (about 10 ms of the worker's each time)


class KernelStartError(RuntimeError):
    """The kernel did not start; the message says why."""


def error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def signal_of(code: int | None) -> int:
    """The signal that killed a process with exit status ``code`` (above 128: the signal, as bubblewrap reports
    a killed child), else 0."""
    return 0 if code is None else -code if code < 0 else code - 128 if code > 128 else 0


def exit_cause(code: int | None) -> str:
    """How a kernel process ended, in words."""
    if code is None:
        return "the kernel stopped answering"
    if signal := signal_of(code):
        return f"the kernel was killed by signal {signal}" + (" (memory limit?)" if signal == 9 else "")
    return f"the kernel exited with code {code}"


def tail_lines(file, since: int = 0, lines: int = 3, max_bytes: int = 4096) -> list[str]:
    """The last ``lines`` non-blank lines written to the open binary ``file`` after offset ``since`` (at most
    ``max_bytes`` read; printable characters only, 200 per line)."""
    size = os.fstat(file.fileno()).st_size
    start = max(since, size - max_bytes)
    text = os.pread(file.fileno(), size - start, start).decode(errors="replace") if size > start else ""
    kept = ["".join(c for c in line if c.isprintable()).strip()[:200] for line in text.splitlines()]
    return [line for line in kept if line][-lines:]


def with_stderr(cause: str, tail: list[str]) -> str:
    return cause + (f" (its stderr ends: {' | '.join(tail)})" if tail else "")


class CpuClock:
    """CPU seconds a kernel's process tree used since the clock was made, and wall-clock seconds; where /proc
    cannot say (no /proc, not a local kernel), CPU time is taken to be the wall-clock time."""

    def __init__(self, pid: int | None):
        self.pid, self.started = pid, time.monotonic()
        self.start = kernel_cpu_seconds(pid)
        self.last = 0.0

    def used(self) -> tuple[float, float]:
        wall = time.monotonic() - self.started
        if self.start is None:
            return wall, wall
        now = kernel_cpu_seconds(self.pid)
        if now is not None:  # else the kernel is gone: what it used until the last reading
            self.last = max(self.last, now - self.start)
        return self.last, wall


@dataclass
class CellUsage:
    """What one cell execution was allowed and used (seconds), and whether the CPU watcher stopped it."""
    cpu_limit_s: float
    wall_limit_s: float
    cpu_s: float = 0.0
    wall_s: float = 0.0
    stopped_by_cpu: bool = False

    def figures(self) -> dict:
        return {"cpu_s": round(self.cpu_s, 1), "wall_s": round(self.wall_s, 1),
                "cpu_limit_s": round(self.cpu_limit_s, 1), "wall_limit_s": round(self.wall_limit_s, 1)}


class LimitedExecute(Execute):
    # Killed, not asked to exit: nothing the kernel would run on its way out (atexit handlers) can touch its
    # evidence, and the graceful shutdown cost about half a second per notebook.
    shutdown_kernel = Enum(["graceful", "immediate"], default_value="immediate").tag(config=True)
    # The defaults are the course's limits (worker/job.py: Limits), so plain `nbgrader autograde` uses them too
    timeout = Integer(Limits.cell_timeout, help="CPU seconds per cell").tag(config=True)
    notebook_timeout = Integer(Limits.notebook_timeout, help="CPU seconds for the whole notebook; later cells are "
                                                             "not run").tag(config=True)
    backstop_factor = Integer(Limits.backstop_factor, help="Wall-clock backstop: a cell may take this many times "
                                                           "its CPU limit in wall-clock seconds, the notebook "
                                                           "likewise (stops cells that sleep or wait)").tag(config=True)
    iopub_timeout = Integer(30, help="Seconds to wait for a cell's last outputs after its reply (nbclient's 4 s "
                                     "is short on a busy machine)").tag(config=True)
    max_kernel_restarts = Integer(3, help="Kernel deaths survived before the remaining cells are skipped").tag(
        config=True)
    max_output_bytes = Integer(2 * 2**20, help="Output kept per cell; the rest is dropped (an output flood must "
                                               "not fill the grader's memory or the feedback)").tag(config=True)
    kernel_cwd = Unicode("", help="The kernel's working folder (default: the notebook's folder). The grader gives "
                                  "it a scratch folder, so that nothing the kernel writes lands where nbgrader "
                                  "saves scores and feedback").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        """Run the notebook; the kernel's stderr goes to a private file whose last lines say why a kernel died
        or did not start (and end up in the worker's log)."""
        self._started = time.monotonic()
        self._wall_deadline = self._started + self.backstop_factor * self.notebook_timeout
        self._cpu_used, self._restarts, self._usage, self._kernel = 0.0, 0, None, None
        self._status = resources.setdefault("ece662_cell_status", {})
        self._events = resources.setdefault("ece662_events", [])
        self._timing = resources.setdefault("ece662_timing", {"cells_s": {}, "cells_cpu_s": {}})
        self._output_bytes = {}
        metadata = resources.setdefault("metadata", {})
        notebook_folder = metadata.get("path")
        metadata["path"] = self.kernel_cwd or notebook_folder  # where nbclient starts the kernel
        with tempfile.TemporaryFile() as stderr:
            self._stderr, self._stderr_seen = stderr, 0
            try:
                return super().preprocess(nb, resources, km)
            except Exception as exc:
                if "kernel_start_s" not in self._timing:  # no cell ran: the kernel did not start
                    raise KernelStartError(self._start_failure(exc)) from exc
                raise
            finally:
                metadata["path"] = notebook_folder
                if last := tail_lines(stderr, lines=50, max_bytes=64 * 2**10):
                    print("the kernel's stderr ended with:", *last, sep="\n", flush=True)

    async def async_start_new_kernel(self, **kwargs):
        kwargs.setdefault("stderr", self._stderr)
        await super().async_start_new_kernel(**kwargs)
        self._kernel = self._kernel_process()

    start_new_kernel = run_sync(async_start_new_kernel)

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        self._skip_stderr()
        return kc

    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    def _skip_stderr(self) -> None:
        """Say why a kernel died with what its stderr got after it was ready (not its start-up messages)."""
        self._stderr_seen = os.fstat(self._stderr.fileno()).st_size

    def _kernel_process(self):
        """The process the kernel manager started (a Popen; in the bubblewrap sandbox, bwrap), or None."""
        return getattr(getattr(self.km, "provisioner", None), "process", None)

    def _start_failure(self, exc: Exception) -> str:
        """Why the kernel did not start (``exc``: what nbclient raised), in one sentence."""
        if self._kernel is None:  # no process was started
            return f"the kernel could not be started ({type(exc).__name__}: {str(exc)[:200]})"
        code = self._kernel.poll()
        if code is None or time.monotonic() - self._started >= self.startup_timeout:
            cause = f"the kernel did not start within {self.startup_timeout} s"
        else:
            cause = f"{exit_cause(code)} before it started"
        return with_stderr(cause, tail_lines(self._stderr))

    def _death(self) -> tuple[str, int | None]:
        """(how the kernel that just died ended, with the last lines it wrote to stderr once ready; its exit
        status)."""
        process, code = self._kernel_process(), None
        if process is not None:
            try:
                code = process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        return with_stderr(exit_cause(code), tail_lines(self._stderr, since=self._stderr_seen)), code

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        size = len(str(content.get("text", ""))) + sum(len(str(v)) for v in content.get("data", {}).values())
        used = self._output_bytes.get(cell_index, 0)
        if used + size > self.max_output_bytes:
            if used <= self.max_output_bytes:  # say so once
                outs.append(NotebookNode(output_type="stream", name="stderr",
                                         text=f"[output cut: this cell printed more than {self.max_output_bytes:,} "
                                              "bytes]\n"))
                self._output_bytes[cell_index] = self.max_output_bytes + 1
            return None
        self._output_bytes[cell_index] = used + size
        return super().output(outs, msg, display_id, cell_index)

    def _note(self, cell, event: str, status: str | None = None, **figures) -> None:
        """Record what happened in ``cell`` (an event, and the status of an autograded cell)."""
        if event:
            self._events.append({"event": event, "cell": cell.get("id", "?"), **figures})
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if status and registry.is_autograded(gid):
            self._status[gid] = status

    def _skip(self, cell, ename, evalue):
        cell.outputs = [error_output(ename, evalue)]
        cell.execution_count = None
        return cell

    def _time_used_up(self) -> str:
        """Which of the notebook's limits is used up ("" while time is left)."""
        if self._cpu_used >= self.notebook_timeout:
            return f"its {self.notebook_timeout} s of CPU time"
        if time.monotonic() >= self._wall_deadline:
            return f"its {self.backstop_factor * self.notebook_timeout} s wall-clock backstop"
        return ""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        self._timing.setdefault("kernel_start_s", round(time.monotonic() - self._started, 2))
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") in registry.NOT_RUN_WHEN_GRADED:
            cell.outputs = [NotebookNode(output_type="stream", name="stdout", text="Not run when graded.\n")]
            return cell, resources
        if used_up := self._time_used_up():
            first = not (self._events and self._events[-1]["event"] == EVENT_NOTEBOOK)
            self._note(cell, EVENT_NOTEBOOK if first else "", f"not run, the notebook used up {used_up}",
                       limit=used_up, wall_clock=self._cpu_used < self.notebook_timeout,
                       cpu_s=round(self._cpu_used, 1), wall_s=round(time.monotonic() - self._started, 1))
            return self._skip(cell, TIME_LIMIT_ERROR, f"not run: the notebook used up {used_up}"), resources
        if self._restarts > self.max_kernel_restarts:
            self._note(cell, "", "not run, the kernel died too often")
            return self._skip(cell, KERNEL_DIED_ERROR, "not run: the kernel died too often"), resources
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._record_timing(cell, index)
            self._restarts += 1
            cause, code = self._death()
            self._note(cell, EVENT_DIED, f"the kernel died while running it: {cause}", cause=cause, exit_code=code)
            self._skip(cell, KERNEL_DIED_ERROR, f"{cause} while running this cell; the kernel was restarted and "
                                                "the cells before this one were run again")
            self._restart_and_replay(index)
            return cell, resources
        self._record_timing(cell, index)
        self._note_outcome(cell)
        return cell, resources

    def _record_timing(self, cell, index) -> None:
        cell_id = cell.get("id", str(index))
        self._timing["cells_s"][cell_id] = round(self._usage.wall_s, 2)
        self._timing["cells_cpu_s"][cell_id] = round(self._usage.cpu_s, 2)

    def _note_outcome(self, cell) -> None:
        """The status and event of a cell that ran: stopped by a limit, out of memory, or ran."""
        usage = self._usage
        if usage.stopped_by_cpu:
            cell.outputs.append(error_output(CPU_LIMIT_ERROR, f"this cell used {usage.cpu_s:.1f} s of CPU time, "
                                                              f"its limit ({usage.cpu_limit_s:g} s), and was "
                                                              "interrupted"))
            self._note(cell, EVENT_CPU, f"it hit the cpu time limit ({usage.cpu_s:.1f} s of CPU time in "
                                        f"{usage.wall_s:.0f} s; limit {usage.cpu_limit_s:g} s) and was interrupted",
                       **usage.figures())
        elif usage.wall_s >= usage.wall_limit_s - 0.5:
            self._note(cell, EVENT_WALL, f"it ran past the {usage.wall_limit_s:.0f} s wall-clock backstop (a cell "
                                         f"that sleeps or waits; {usage.cpu_s:.1f} s of CPU time) and was "
                                         "interrupted", **usage.figures())
        elif any(o.get("ename") == "MemoryError" for o in cell.get("outputs", [])):
            self._note(cell, EVENT_MEMORY, "it ran out of memory")
        else:
            self._note(cell, "", "ran")

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        """nbclient's, within the cell's CPU budget (a watcher interrupts the kernel once it is used) and its
        wall-clock backstop (nbclient's timeout); what it used is left in ``self._usage``."""
        per_cell = self.timeout
        cell_limit = per_cell or self.notebook_timeout
        usage = CellUsage(min(cell_limit, self.notebook_timeout - self._cpu_used),
                          min(self.backstop_factor * cell_limit, self._wall_deadline - time.monotonic()))
        process = self._kernel_process()
        clock = CpuClock(process.pid if process is not None else None)
        watcher = asyncio.ensure_future(self._stop_at_cpu_limit(clock, usage))
        self.timeout = max(1, math.ceil(usage.wall_limit_s))  # nbclient's timeout: the backstop
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        finally:
            self.timeout = per_cell
            watcher.cancel()
            usage.cpu_s, usage.wall_s = clock.used()
            self._cpu_used += usage.cpu_s
            self._usage = usage

    execute_cell = run_sync(async_execute_cell)

    async def _stop_at_cpu_limit(self, clock: CpuClock, usage: CellUsage) -> None:
        """Interrupt the kernel while the cell is over its CPU budget (again at each reading: a cell can catch
        one KeyboardInterrupt)."""
        while True:
            await asyncio.sleep(CPU_POLL_S)
            usage.cpu_s, usage.wall_s = clock.used()
            if usage.cpu_s >= usage.cpu_limit_s:
                usage.stopped_by_cpu = True
                await ensure_async(self.km.interrupt_kernel())

    def _restart_and_replay(self, failed_index):
        run_sync(self.km.restart_kernel)(now=True)
        run_sync(self.kc.wait_for_ready)(timeout=self.startup_timeout)
        self._skip_stderr()
        for i, earlier in enumerate(self.nb.cells[:failed_index]):
            if earlier.cell_type != "code" or any(
                    o.get("ename") in (KERNEL_DIED_ERROR, TIME_LIMIT_ERROR, CPU_LIMIT_ERROR)
                    for o in earlier.get("outputs", [])):
                continue
            if self._time_used_up():
                return
            try:
                self.execute_cell(copy.deepcopy(earlier), i, store_history=False)
            except DeadKernelError:  # the replay itself killed the kernel: give up on rebuilding state
                run_sync(self.km.restart_kernel)(now=True)
                run_sync(self.kc.wait_for_ready)(timeout=self.startup_timeout)
                self._skip_stderr()
                return
            finally:
                self.nb.cells[i] = earlier  # the replay's outputs are not the student's record


def tell_progress(fd: int, event: str) -> None:
    """Write ``event`` to the course run's progress pipe ``fd`` (none: -1); it starts the next notebook on one."""
    if fd >= 0:
        try:
            os.write(fd, f"{event}\n".encode())
        except OSError:  # nobody reads any more (the pipeline gave up waiting): grading goes on
            pass


class KillLeftovers(NbGraderPreprocessor):
    """The step after LimitedExecute: kill what the kernel started, so that nothing of it still runs (or writes
    evidence) when the verifier reads the evidence."""

    sandbox = Unicode(NONE, help="how the kernel was contained (autograder/worker/sandbox.py)").tag(config=True)
    progress_fd = Integer(-1, help="a pipe to which 'kernel gone' is written once it is").tag(config=True)

    def preprocess(self, nb, resources):
        kill_descendants()  # what the kernel started, adopted by this process
        sweep(self.sandbox)  # and what its user started outside this process tree
        tell_progress(self.progress_fd, KERNEL_GONE)
        return nb, resources
