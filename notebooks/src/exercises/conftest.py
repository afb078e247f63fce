"""Keep pytest from importing the notebook sources here.

``make test`` passes ``notebooks/`` to a pytest run with ``--doctest-modules``,
which imports every ``.py`` file it finds to look for doctests: importing a
percent-format source would run the whole exercise notebook (blanks included).
The built notebooks in ``notebooks/exercises/`` are what nbval runs.
"""

collect_ignore_glob = ["[0-9]*.py"]
