"""Chip data: modalities, the ChipStore, the torch dataset, labels and the synthetic world."""
