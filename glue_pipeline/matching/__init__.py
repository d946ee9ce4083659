"""Matching as pure functions over DataFrames: no I/O, so each rule can be tested and
benchmarked on its own."""

from typing import TypeAlias

import numpy as np
import numpy.typing as npt

# The arrays matching computes with: positions, codes and counts; flags; strings (object arrays).
Ints: TypeAlias = npt.NDArray[np.int64]
Flags: TypeAlias = npt.NDArray[np.bool_]
Texts: TypeAlias = npt.NDArray[np.object_]
