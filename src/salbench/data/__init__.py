"""Ground-truth datasets: MRI lesions (document 000), synthetic cells (document 001), user folders.

Every dataset is a :class:`GroundTruthDataset` (``x``, ``y``, ``masks``, ``meta``, ``classes``);
``save``/``load`` write and lazily read the on-disk format that ``salbench data`` produces.
"""

from salbench.data.dataset import SPLITS, GroundTruthDataset
from salbench.data.shards import load, save

__all__ = ["SPLITS", "GroundTruthDataset", "load", "save"]
