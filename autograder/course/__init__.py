"""A whole course, run by staff: collect the submissions (``collect.py``, ``roster.py``), grade them all
(``pipeline.py``), merge the gradebooks and write grades, feedback and the Canvas import (``aggregate.py``,
``gradebook.py``, ``grades.py``, ``feedback.py``, ``export.py``), grade questions by hand (``formgrade.py``), and
make the release (``release.py``)."""
