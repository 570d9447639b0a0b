"""nbgrader's Execute preprocessor with a whole-notebook time limit and recovery from kernel death.

nbgrader 0.9.6 limits each cell (``Execute.timeout``) but not the notebook,
and a cell that kills its kernel (``os._exit``, the OOM killer, a segfault)
aborts the whole submission, leaving the student unscored. ``LimitedExecute``
replaces ``Execute`` in ``Autograde.autograde_preprocessors``:

* once ``notebook_timeout`` seconds are used, the remaining code cells are not
  run and get an error output, so their tests score zero and the tests that
  already ran keep their result;
* when the kernel dies in a cell, that cell gets an error output, the kernel is
  restarted, the earlier code cells are replayed silently to rebuild the
  student's state, and execution goes on with the next cell.

Error names ``NotebookTimeLimit`` and ``KernelDied`` mark what happened in the
cell outputs. What happened is also recorded in ``resources`` by this trusted
process (the kernel's outputs are the student's to fake):
``resources["ece662_cell_status"]`` maps each autograded cell's grade id to
``"ran"`` or why it did not run to the end, and ``resources["ece662_events"]``
lists time limits, kernel deaths and memory errors with their cell ids; the
verifier and the worker's status read those.
"""
import copy
import time

from jupyter_core.utils import run_sync
from nbclient.exceptions import DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Enum, Integer, Unicode

from ece662.grading import registry

TIME_LIMIT_ERROR = "NotebookTimeLimit"
KERNEL_DIED_ERROR = "KernelDied"


def error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


class LimitedExecute(Execute):
    # Killed, not asked to exit: nothing the kernel would run on its way out (atexit handlers) can touch its
    # evidence, and the graceful shutdown cost about half a second per notebook.
    shutdown_kernel = Enum(["graceful", "immediate"], default_value="immediate").tag(config=True)
    notebook_timeout = Integer(600, help="Seconds for the whole notebook; later cells are not run").tag(config=True)
    max_kernel_restarts = Integer(3, help="Kernel deaths survived before the remaining cells are skipped").tag(
        config=True)
    max_output_bytes = Integer(2 * 2**20, help="Output kept per cell; the rest is dropped (an output flood must "
                                               "not fill the grader's memory or the feedback)").tag(config=True)
    kernel_cwd = Unicode("", help="The kernel's working folder (default: the notebook's folder). The grader gives "
                                  "it a scratch folder, so that nothing the kernel writes lands where nbgrader "
                                  "saves scores and feedback").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._deadline = time.monotonic() + self.notebook_timeout
        self._restarts = 0
        self._status = resources.setdefault("ece662_cell_status", {})
        self._events = resources.setdefault("ece662_events", [])
        self._timing = resources.setdefault("ece662_timing", {"cells_s": {}})
        self._started = time.monotonic()
        self._output_bytes = {}
        metadata = resources.setdefault("metadata", {})
        notebook_folder = metadata.get("path")
        metadata["path"] = self.kernel_cwd or notebook_folder  # where nbclient starts the kernel
        try:
            return super().preprocess(nb, resources, km)
        finally:
            metadata["path"] = notebook_folder

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

    def _note(self, cell, event: str, status: str | None = None) -> None:
        """Record what happened in ``cell`` (an event, and the status of an autograded cell)."""
        if event:
            self._events.append({"event": event, "cell": cell.get("id", "?")})
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if status and registry.is_autograded(gid):
            self._status[gid] = status

    def _skip(self, cell, ename, evalue):
        cell.outputs = [error_output(ename, evalue)]
        cell.execution_count = None
        return cell

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        self._timing.setdefault("kernel_start_s", round(time.monotonic() - self._started, 2))
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") in registry.NOT_RUN_WHEN_GRADED:
            cell.outputs = [NotebookNode(output_type="stream", name="stdout", text="Not run when graded.\n")]
            return cell, resources
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            self._note(cell, "" if self._events and self._events[-1]["event"] == "time limit" else "time limit",
                       f"not run, the notebook used up its {self.notebook_timeout} s time limit")
            return self._skip(cell, TIME_LIMIT_ERROR,
                              f"not run: the notebook used up its {self.notebook_timeout} s time limit"), resources
        if self._restarts > self.max_kernel_restarts:
            self._note(cell, "", "not run, the kernel died too often")
            return self._skip(cell, KERNEL_DIED_ERROR, "not run: the kernel died too often"), resources
        per_cell = self.timeout
        self.timeout = int(max(1, min(per_cell or remaining, remaining)))
        started = time.monotonic()
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._restarts += 1
            self._note(cell, "kernel died", "the kernel died while running it")
            self._skip(cell, KERNEL_DIED_ERROR,
                       "the kernel died while running this cell (os._exit, a crash or the memory limit); "
                       "the kernel was restarted and the cells before this one were run again")
            self._restart_and_replay(index)
            return cell, resources
        finally:
            limit, self.timeout = self.timeout, per_cell
            self._timing["cells_s"][cell.get("id", str(index))] = round(time.monotonic() - started, 2)
        if time.monotonic() - started >= limit - 0.5:
            self._note(cell, "cell timeout", f"it ran past the {limit} s cell time limit and was interrupted")
        elif any(o.get("ename") == "MemoryError" for o in cell.get("outputs", [])):
            self._note(cell, "memory", "it ran out of memory")
        else:
            self._note(cell, "", "ran")
        return cell, resources

    def _restart_and_replay(self, failed_index):
        run_sync(self.km.restart_kernel)(now=True)
        run_sync(self.kc.wait_for_ready)(timeout=self.startup_timeout)
        for i, earlier in enumerate(self.nb.cells[:failed_index]):
            if earlier.cell_type != "code" or any(
                    o.get("ename") in (KERNEL_DIED_ERROR, TIME_LIMIT_ERROR) for o in earlier.get("outputs", [])):
                continue
            if time.monotonic() >= self._deadline:
                return
            try:
                self.execute_cell(copy.deepcopy(earlier), i, store_history=False)
            except DeadKernelError:  # the replay itself killed the kernel: give up on rebuilding state
                run_sync(self.km.restart_kernel)(now=True)
                run_sync(self.kc.wait_for_ready)(timeout=self.startup_timeout)
                return
            finally:
                self.nb.cells[i] = earlier  # the replay's outputs are not the student's record
