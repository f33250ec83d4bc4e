"""A pickle reader that accepts plain data only (the refCOCO ``refs(*).p`` files).

A pickle is a small program: its ``GLOBAL`` / ``STACK_GLOBAL`` opcodes import any callable and
``REDUCE`` calls it, so ``pickle.load`` on a file from the internet can run arbitrary code
(``os.system`` included). Every way a pickle can name a callable (``GLOBAL``, ``STACK_GLOBAL``,
``INST``, ``OBJ``, the ``EXT*`` extension registry) goes through
:meth:`pickle.Unpickler.find_class`, and persistent ids go through ``persistent_load``. Refusing
both leaves exactly the opcodes that build plain containers and scalars: ``dict``, ``list``,
``tuple``, ``set``/``frozenset`` (protocol 4+ opcodes), ``str``, ``bytes``, ``int``, ``float``,
``bool`` and ``None``. That is all the refer-seg pickles hold (lists of dicts of ids and sentences).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, BinaryIO

from partonomy.errors import FormatError


class RefusedPickleError(pickle.UnpicklingError):
    """The pickle asked to import or call something; nothing was imported or run."""


class PlainDataUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` and ``persistent_load`` refuse everything.

    Python 2 pickles (the refer-seg files were written by Python 2) store ``str`` as bytes; they
    are decoded as latin-1, which maps every byte and so never fails, like ``encoding="latin1"``
    in :func:`pickle.load`.
    """

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file, encoding="latin1")

    def find_class(self, module: str, name: str) -> Any:
        raise RefusedPickleError(
            f"the pickle wants to load '{module}.{name}'; only plain containers and scalars "
            "are accepted (a pickle that imports code can run it)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedPickleError("the pickle uses persistent ids; only plain data is accepted")


def loads_plain(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`PlainDataUnpickler`.

    Raises:
        RefusedPickleError: the pickle names a global or a persistent id.
        pickle.UnpicklingError: the bytes are not a valid pickle.
    """
    return PlainDataUnpickler(io.BytesIO(data)).load()


def load_plain_pickle(path: str | Path) -> Any:
    """Read a pickle file that must hold only plain data (dicts, lists, strings, numbers).

    Raises:
        FormatError: the file is missing, truncated, not a pickle, or asks to import anything
            (naming the file and the refused global; nothing was executed).
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError("pickle file not found", file=path, hint="check the path")
    try:
        with open(path, "rb") as handle:
            return PlainDataUnpickler(handle).load()
    except RefusedPickleError as err:
        raise FormatError(
            f"refused: {err}",
            file=path,
            hint="this file is not a plain-data pickle; re-download it from a trusted source",
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, IndexError, KeyError) as err:
        raise FormatError(
            f"not a readable pickle ({type(err).__name__}: {err})",
            file=path,
            hint="the file is truncated or corrupt; re-download it",
        ) from None
