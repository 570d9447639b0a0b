"""``python -m demo`` (``make demo``): see ``demo/end_to_end.py``."""
from demo.end_to_end import main

main()
