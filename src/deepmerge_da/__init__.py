"""DeepMerge-DA: domain adaptation for merging-galaxy classification (DeepMerge II)."""

__version__ = "0.1.0"
