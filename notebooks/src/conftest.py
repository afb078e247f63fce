"""Notebook sources are scripts that train models: never import them while collecting tests.

``make test`` runs pytest with ``--doctest-modules`` over ``notebooks/``; without
this, collecting would execute every source. The built ``.ipynb`` files are
what nbval tests.
"""

collect_ignore_glob = ["*.py"]
