#!/usr/bin/env python3
"""Execute notebooks in place at full size, then strip volatile metadata.

Used by ``make notebooks``. Each notebook runs in a fresh kernel of the Python
that runs this script (the ``.venv`` one under make), with the notebook's own
folder as working directory, the same as nbval and JupyterLab use. Full size
means ``REGDAKIT_FAST=0`` (which also overrides ``CI=true``), so the committed
outputs are the ones a person reading the notebook should see.

Usage::

    python tools/run_notebooks.py                     # every notebook under notebooks/
    python tools/run_notebooks.py notebooks/01_x.ipynb
    python tools/run_notebooks.py --timeout 1800 --fast   # fast mode, e.g. a quick look
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from strip_notebook import dumps, strip  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def find_notebooks(folder: Path) -> list[Path]:
    """Every ``*.ipynb`` under ``folder``, sorted, skipping ``.ipynb_checkpoints``."""
    return sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def run(path: Path, timeout: int) -> float:
    """Execute ``path`` in place, strip it, and return the seconds it took."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    km = _this_python_kernel()
    client = NotebookClient(nb, km=km, timeout=timeout, resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    finally:  # nbclient leaves a kernel it did not create running
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    elapsed = time.perf_counter() - start
    path.write_text(dumps(strip(nb)), encoding="utf-8")
    return elapsed


def _this_python_kernel():
    """A kernel manager for an ipykernel of this interpreter, whatever the notebook names.

    The same as nbval's ``--nbval-current-env``: a ``python3`` kernelspec
    installed elsewhere (say in ``~/.local/share/jupyter``) cannot hijack the run.
    """
    from ipykernel import kernelspec as ipykernel_spec
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import KernelManager

    class ThisPython(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):  # noqa: D102
            return KernelSpec(resource_dir=ipykernel_spec.RESOURCES, **ipykernel_spec.get_kernel_dict())

    return KernelManager(kernel_name="python3", kernel_spec_manager=ThisPython())


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/**/*.ipynb")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--fast", action="store_true", help="run in fast mode instead")
    args = parser.parse_args(argv)

    # Set before any kernel starts: kernels inherit this environment.
    os.environ["REGDAKIT_FAST"] = "1" if args.fast else "0"
    # Figures should render inline into the saved outputs.
    os.environ.pop("MPLBACKEND", None)

    paths = args.notebooks or find_notebooks(ROOT / "notebooks")
    if not paths:
        print("no notebooks found")
        return 0
    failed = []
    for path in paths:
        print(f"running {path} ...", flush=True)
        try:
            seconds = run(path, args.timeout)
        except Exception as exc:  # report every failing notebook, then fail
            failed.append(path)
            print(f"FAILED {path}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        else:
            print(f"  done in {seconds:.1f} s", flush=True)
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(map(str, failed))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
