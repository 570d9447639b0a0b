"""``make demo``: the whole job end to end on example submissions (``end_to_end.py``), and the example
submissions the tests and the benchmark grade too (``examples.py``). Not installed: instructor-only."""
