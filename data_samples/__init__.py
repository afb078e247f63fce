"""The sample data that ships with regdakit, installed as the package ``regdakit.samples``.

This folder is mapped onto ``regdakit.samples`` by ``pyproject.toml``
(``[tool.setuptools] package-dir``): an editable install reads the files here,
a wheel carries them. Read them through :mod:`regdakit.resources`, e.g.
``regdakit.resources.path("samples/checkpoints/hands_source_only.pt")``, never
by a path relative to the repository. What each file is: ``README.md``.
"""
