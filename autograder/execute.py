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

Error names ``NotebookTimeLimit`` and ``KernelDied`` mark what happened; the
grading worker reads them to report the submission's status.
"""
import copy
import time

from jupyter_core.utils import run_sync
from nbclient.exceptions import DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Integer

TIME_LIMIT_ERROR = "NotebookTimeLimit"
KERNEL_DIED_ERROR = "KernelDied"


def error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


class LimitedExecute(Execute):
    notebook_timeout = Integer(600, help="Seconds for the whole notebook; later cells are not run").tag(config=True)
    max_kernel_restarts = Integer(3, help="Kernel deaths survived before the remaining cells are skipped").tag(
        config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._deadline = time.monotonic() + self.notebook_timeout
        self._restarts = 0
        return super().preprocess(nb, resources, km)

    def _skip(self, cell, ename, evalue):
        cell.outputs = [error_output(ename, evalue)]
        cell.execution_count = None
        return cell

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            return self._skip(cell, TIME_LIMIT_ERROR,
                              f"not run: the notebook used up its {self.notebook_timeout} s time limit"), resources
        if self._restarts > self.max_kernel_restarts:
            return self._skip(cell, KERNEL_DIED_ERROR, "not run: the kernel died too often"), resources
        per_cell = self.timeout
        self.timeout = int(max(1, min(per_cell or remaining, remaining)))
        try:
            return super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._restarts += 1
            self._skip(cell, KERNEL_DIED_ERROR,
                       "the kernel died while running this cell (os._exit, a crash or the memory limit); "
                       "the kernel was restarted and the cells before this one were run again")
            self._restart_and_replay(index)
            return cell, resources
        finally:
            self.timeout = per_cell

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
