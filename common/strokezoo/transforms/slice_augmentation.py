"""The train-time augmentation of Gómez's slices (thesis Sec. 5.2; Sec. 5.3 applies it to CT; the MICCAI 2023
cross-domain model's training follows it), as one list of MONAI's random transforms that a config names once.

The thesis names the kinds and two values: random brightness and contrast, random flips along the horizontal and
vertical axes, random rotations between -7 and 7 degrees, random elastic transformations, random grid and optical
distortions. It gives no probability or magnitude for the others: the defaults here are ours, stated once for the
three bundles that use it and listed in their READMEs (intensity changes up to ±20 %, each with probability 0.5; flips
and rotations with 0.5; the elastic, grid and optical distortions each with 0.2, mild enough that a lesion keeps its
place in the slice).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from monai.config import KeysCollection
from monai.transforms import MapTransform, Rand2DElasticd, RandFlipd, RandGridDistortiond, RandRotated, RandScaleIntensityd, RandShiftIntensityd

from .optical_distortion import RandOpticalDistortiond

__all__ = ["slice_augmentation"]


def slice_augmentation(
    keys: KeysCollection,
    image_size: int,
    rotation_degrees: float,
    flip_axes: Sequence[int],
    intensity: float = 0.2,
    intensity_prob: float = 0.5,
    flip_prob: float = 0.5,
    rotation_prob: float = 0.5,
    distortion_prob: float = 0.2,
    elastic_magnitude: tuple[float, float] = (1.0, 2.0),
    grid_cells: int = 5,
    grid_limit: float = 0.3,
    optical_limit: float = 0.05,
) -> list[MapTransform]:
    """Random brightness (``RandShiftIntensityd``) and contrast (``RandScaleIntensityd``) of the image; random flips
    along ``flip_axes``, a rotation within ±``rotation_degrees``, an elastic deformation, a grid and an optical
    distortion of image and label alike (bilinear for the image, nearest for the label), in that order.

    Args:
        keys: the image key, then the label key.
        image_size: the slices' side in pixels; the elastic deformation's control points are ``image_size // 7``
            pixels apart.
        rotation_degrees: rotations are drawn from ``[-rotation_degrees, rotation_degrees]`` (thesis: 7).
        flip_axes: the spatial axes flipped, each on its own (thesis: horizontal and vertical, ``[0, 1]``).
        intensity: the largest relative change of brightness and of contrast.
        intensity_prob, flip_prob, rotation_prob: each transform's probability.
        distortion_prob: the probability of each of the elastic, grid and optical distortions.
        elastic_magnitude: the elastic deformation's magnitude range, in control-point spacings.
        grid_cells, grid_limit: the grid distortion's cells per axis and largest relative step.
        optical_limit: the optical distortion's largest coefficient.

    Returns the transforms as a list, so that the training's ``Compose`` holds them side by side with the label
    targets (one random state per transform, as when a config lists them one by one).
    """
    keys = list(keys)
    if len(keys) != 2:
        raise ValueError(f"keys must be [image, label], got {keys}")
    image = keys[0]
    modes = ["bilinear", "nearest"]
    spacing = max(1, int(image_size) // 7)
    return [
        RandScaleIntensityd(image, factors=intensity, prob=intensity_prob),
        RandShiftIntensityd(image, offsets=intensity, prob=intensity_prob),
        *(RandFlipd(keys, spatial_axis=int(axis), prob=flip_prob) for axis in flip_axes),
        RandRotated(keys, range_x=math.radians(rotation_degrees), prob=rotation_prob, mode=modes, padding_mode="zeros"),
        Rand2DElasticd(keys, spacing=(spacing, spacing), magnitude_range=tuple(elastic_magnitude), prob=distortion_prob, mode=modes, padding_mode="zeros"),
        RandGridDistortiond(keys, num_cells=grid_cells, distort_limit=grid_limit, prob=distortion_prob, mode=modes, padding_mode="zeros"),
        RandOpticalDistortiond(keys, distort_limit=optical_limit, prob=distortion_prob, mode=modes),
    ]
