"""A private, freshly executed copy of the ece662 package for grading code.

A student's notebook can overwrite ``test_model``, patch
``ece662.pruning_helper`` or ``torch.nn.utils.prune`` in ``sys.modules``, or
hard-code results. Tests therefore do::

    import importlib
    chk = importlib.reload(importlib.import_module("ece662.trusted")).checks()

``reload`` re-runs this file, and ``checks()`` executes every ece662 module
again from its file under a private name, so the graders see none of the
student's patches. (Code that patches torch itself is beyond this; the
sandbox and the grade review are the defence there.)
"""
import importlib
import importlib.util
import sys
import uuid
from pathlib import Path


def fresh_package():
    """Execute ``ece662/__init__.py`` afresh as a new, privately named package."""
    pkg_dir = Path(__file__).resolve().parent
    name = f"_ece662_trusted_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, pkg_dir / "__init__.py",
                                                  submodule_search_locations=[str(pkg_dir)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return package


def checks():
    """The ``ece662.checks`` module of a fresh private copy of the package."""
    return importlib.import_module(fresh_package().__name__ + ".checks")
