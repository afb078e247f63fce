"""Procedural hand and body domains that reproduce the RegDA benchmarks' gaps.

See :mod:`regdakit.data.synthetic.dataset` for the API and
``docs/synthetic_domains.md`` for what each choice models.
"""

from regdakit.data.synthetic.dataset import (
    GENERATOR_VERSION,
    GENERATOR_VERSIONS,
    SKELETONS,
    SPLITS,
    SyntheticDataset,
    SyntheticStream,
    make_dataset,
)
from regdakit.data.synthetic.render import DOMAINS, render

__all__ = [
    "DOMAINS",
    "GENERATOR_VERSION",
    "GENERATOR_VERSIONS",
    "SKELETONS",
    "SPLITS",
    "SyntheticDataset",
    "SyntheticStream",
    "make_dataset",
    "render",
]
