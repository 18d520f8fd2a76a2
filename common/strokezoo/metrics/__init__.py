"""3D evaluation: overlap, surface distance, volume and lesion-wise metrics (:mod:`.segmentation`),
image quality (:mod:`.image_quality`), inter-rater agreement (:mod:`.agreement`) and the
``strokezoo evaluate`` pipeline (:mod:`.evaluate`). Submodules are imported where used, so that light
callers (the synthetic cohort) do not pay for importing MONAI."""
