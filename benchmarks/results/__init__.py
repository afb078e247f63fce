"""The committed benchmark results, installed as the package ``regdakit.results``.

This folder is mapped onto ``regdakit.results`` by ``pyproject.toml``
(``[tool.setuptools] package-dir``) so that the notebooks that show these
numbers find them after a wheel install too. Read them through
:mod:`regdakit.resources`, e.g. ``regdakit.resources.read_json("results/table1_synthetic.json")``.
The scripts in ``benchmarks/`` write them (``benchmarks/_record.py``).
"""
