"""One submission, graded in a process of its own (``python -I -m autograder.worker JOB.json``): the ``Job``
(``job.py``), nbgrader's autograde steps and the student's private course (``autograde_config.py``), the
contained kernel (``sandbox.py``, ``scratch.py``, ``processes.py``, ``execute.py``), the verifier
(``verify.py``, ``recipe.py``, ``measurements.py``), the inert graded notebook (``sanitize.py``), the tamper
guard (``integrity.py``) and the typed result (``results.py``)."""
