"""The grading of ``autograder/worker`` as a Gradescope autograder: the bundle (``bundle.py``), the image set-up
(``setup.py``, standard library only), the supervised run in the container (``supervisor.py``) and
``results.json`` (``results.py``)."""
