"""Synthetic stroke cohorts written in the ISLES/APIS release layouts (see docs/synthetic.md).

Not a claim about clinical accuracy: a cohort that carries, from physical models, the signals the
packaged methods rely on, so that their pipelines can be trained, evaluated and tested offline.
"""

from __future__ import annotations

from .cohort import synthesize_cohort

__all__ = ["synthesize_cohort"]
