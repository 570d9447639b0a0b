"""A whole course, run by staff: unpack and collect the submissions (``archives.py``, ``collect.py``,
``roster.py``), grade them all (``pipeline.py``, ``spare_workers.py``), merge the gradebooks (``aggregate.py``,
``gradebook.py``) into final grades (``grades.py``), publish grades.csv, canvas.csv and the feedback pages
(``publish.py``, ``feedback.py``, ``hidden_tests.py``; ``export.py`` is the command), send the pages to Canvas
(``canvas_feedback.py``), grade questions by hand (``formgrade.py``), make the release and the handout
(``release.py``, ``handout.py``) and profile the course models (``profile.py``). The output folder's layout is
``autograder/grading_folder.py``."""
