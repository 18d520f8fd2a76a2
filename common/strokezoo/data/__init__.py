"""Dataset layer: NIfTI input checks, ISLES/APIS release layouts, datalists and folds, synthetic cohorts."""
