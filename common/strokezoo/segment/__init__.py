"""``strokezoo segment``: one study's NIfTI files in; through each bundle's own ``inference.json``, a mask, its lesion
volume, an overlay and a report out (and, for several bundles on the same inputs, their ensemble)."""

from .inputs import study_inputs
from .lesions import lesion_statistics
from .report import write_overlay
from .run import StudyFailed, segment_studies, segment_study

__all__ = ["StudyFailed", "lesion_statistics", "segment_studies", "segment_study", "study_inputs", "write_overlay"]
