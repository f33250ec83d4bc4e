"""The restricted unpickler: plain data in, anything that imports code refused (and not run)."""

from __future__ import annotations

import copyreg
import os
import pickle

import pytest

from partonomy.data.unpickle import RefusedPickleError, load_plain_pickle, loads_plain
from partonomy.errors import FormatError


class _RunsShell:
    """Unpickling this with plain ``pickle.load`` would run a shell command."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


REFS = [
    {
        "ref_id": 0,
        "ann_id": 100,
        "image_id": 9,
        "split": "train",
        "sentences": [{"sent": "man on the left", "tokens": ["man", "on"], "sent_id": 0}],
        "box": (1.5, 2.0),
        "flags": None,
        "ok": True,
    }
]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_round_trips_at_every_protocol(protocol):
    assert loads_plain(pickle.dumps(REFS, protocol=protocol)) == REFS


def test_python2_style_byte_strings_decode_as_latin1():
    # protocol-2 SHORT_BINSTRING of b"caf\xe9", as Python 2 wrote str objects
    data = b"\x80\x02U\x04caf\xe9q\x00."
    assert loads_plain(data) == "café"


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_reduce_to_os_system_is_refused_and_never_runs(tmp_path, protocol):
    marker = tmp_path / "pwned"
    payload = pickle.dumps([{"sentences": _RunsShell(str(marker))}], protocol=protocol)
    # sanity: the payload really is dangerous for a plain unpickler (we do not run it)
    assert b"system" in payload
    with pytest.raises(RefusedPickleError, match="system"):
        loads_plain(payload)
    assert not marker.exists()


def test_extension_registry_opcode_is_refused(tmp_path):
    marker = tmp_path / "pwned_ext"
    copyreg.add_extension("os", "system", 0x7FF1)
    try:
        # PROTO 2, EXT2 0x7ff1 (-> os.system via the registry), arg tuple, REDUCE
        arg = f"touch {marker}".encode()
        payload = b"\x80\x02\x83\xf1\x7f" + b"X" + len(arg).to_bytes(4, "little") + arg + b"\x85R."
        with pytest.raises(RefusedPickleError):
            loads_plain(payload)
    finally:
        copyreg.remove_extension("os", "system", 0x7FF1)
    assert not marker.exists()


def test_persistent_ids_are_refused():
    with pytest.raises(RefusedPickleError, match="persistent"):
        loads_plain(b"\x80\x02X\x01\x00\x00\x00aQ.")  # BINPERSID


def test_sets_from_old_protocols_need_a_global_and_are_refused():
    with pytest.raises(RefusedPickleError, match="set"):
        loads_plain(pickle.dumps({1, 2}, protocol=2))


def test_file_errors_name_the_file(tmp_path):
    evil = tmp_path / "refs(unc).p"
    evil.write_bytes(pickle.dumps(_RunsShell(str(tmp_path / "x")), protocol=2))
    with pytest.raises(FormatError) as info:
        load_plain_pickle(evil)
    assert str(evil) in str(info.value) and "refused" in str(info.value)
    assert not (tmp_path / "x").exists()

    truncated = tmp_path / "truncated.p"
    truncated.write_bytes(pickle.dumps(REFS, protocol=2)[:20])
    with pytest.raises(FormatError, match="not a readable pickle"):
        load_plain_pickle(truncated)
    with pytest.raises(FormatError, match="not found"):
        load_plain_pickle(tmp_path / "absent.p")
