"""Reading the pickles of the NWM/GNM format without running code.

`traj_data.pkl` (a dict of numpy arrays), the eval indices (lists of tuples) and the nested
`observation` dict inside a TartanDrive `.npz` export are pickles, and a pickle is a program: its
GLOBAL opcodes name any importable callable (`os.system`, `subprocess.Popen`, ...) and REDUCE
calls it. Python's own `pickle.load` therefore runs whatever the file asks for. This module
unpickles with a `find_class` that resolves only the names numpy arrays are rebuilt from —
`ndarray`, `dtype`, the array reconstructor (`_reconstruct`, and `_frombuffer` of protocol 5),
the scalar constructor — under both the NumPy 1 (`numpy.core.*`) and NumPy 2 (`numpy._core.*`)
module names they are pickled with, plus a few builtin containers and numbers, and latin-1
`_codecs.encode`, which protocol 0-2 pickles use to carry the arrays' bytes. Every other name is
refused before anything is called, with one line naming the file and the name. Dicts, lists,
tuples, strings, ints and floats need no names at all. The functions are taken from numpy's own
pickling (`ndarray.__reduce_ex__`), so nothing private is imported and the deprecated
`numpy.core` alias module is never loaded.
"""
from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path

import numpy as np


class UnsafePickleError(ValueError):
    """A pickle asked for something other than numpy arrays and builtin containers; one line."""


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` limited to the one use protocol 0-2 pickles make of it (bytes as latin-1 text)."""
    if encoding != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode is accepted only for latin1 text, got encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _allowed() -> dict[tuple[str, str], object]:
    reconstruct = np.zeros(1).__reduce__()[0]
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]
    scalar = np.float64(0).__reduce__()[0]
    names: dict[tuple[str, str], object] = {}
    for root in ("numpy.core", "numpy._core"):
        names[(f"{root}.multiarray", "_reconstruct")] = reconstruct
        names[(f"{root}.multiarray", "scalar")] = scalar
        names[(f"{root}.numeric", "_frombuffer")] = frombuffer
    for module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray"):
        names[(module, "ndarray")] = np.ndarray
        names[(module, "dtype")] = np.dtype
    for builtin in (dict, list, tuple, set, frozenset, bytes, bytearray, float, int, complex):
        names[("builtins", builtin.__name__)] = builtin
        names[("__builtin__", builtin.__name__)] = builtin  # how Python 2 pickles named them
    names[("_codecs", "encode")] = _latin1_encode
    return names


ALLOWED = _allowed()


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"{self.source}: refused to load {module}.{name}: only numpy arrays, dicts, lists, "
                                    "tuples, strings and numbers are read from pickles") from None

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self.source}: refused a persistent id in the pickle")


def loads(data: bytes, source: str = "pickle"):
    """Unpickle `data` accepting only numpy arrays and builtin values; `source` names it in errors."""
    try:
        return _ArrayUnpickler(io.BytesIO(data), source).load()
    except UnsafePickleError:
        raise
    except Exception as err:  # truncated or garbled data: pickle raises many kinds
        raise ValueError(f"{source}: not a readable pickle ({type(err).__name__}: {err})".splitlines()[0]) from None


def load(path: str | Path):
    """Unpickle the file at `path` the same restricted way."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err.strerror or err})") from None
    return loads(data, str(path))
