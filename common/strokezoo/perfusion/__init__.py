"""Perfusion physics: the indicator-dilution forward model and SVD deconvolution of concentration curves."""

from __future__ import annotations

from .deconvolution import PerfusionMaps, block_circulant_svd, time_to_peak
from .indicator_dilution import HEMATOCRIT_FACTOR, TISSUE_DENSITY, gamma_variate, tissue_concentration

__all__ = [
    "PerfusionMaps",
    "block_circulant_svd",
    "time_to_peak",
    "gamma_variate",
    "tissue_concentration",
    "HEMATOCRIT_FACTOR",
    "TISSUE_DENSITY",
]
