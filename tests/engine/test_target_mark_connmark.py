"""MARK and CONNMARK follow xt_MARK / xt_CONNMARK arithmetic, masks included."""

from meshviz.engine.core.model import Packet
from meshviz.engine.netfilter.walk import Action, _new_mark

from .helpers import POD, pod, receive, tcp


def mark(old: int, key: str, value: str) -> int:
    return _new_mark(old, Action("MARK", params=((key, value),)))


def test_set_xmark_clears_mask_then_xors_value() -> None:
    assert mark(0xFF, "set-xmark", "0x4000/0x4000") == 0x40FF
    assert mark(0x40FF, "set-xmark", "0x0/0x4000") == 0xFF


def test_set_mark_with_mask_zeroes_mask_bits_then_ors_value() -> None:
    assert mark(0xF0F0, "set-mark", "0x1/0xff") == 0xF001
    assert mark(0xFFFF, "set-mark", "1337") == 1337  # no mask: the whole mark


def test_and_or_xor_marks() -> None:
    assert mark(0b1111, "and-mark", "0b0101") == 0b0101
    assert mark(0b0001, "or-mark", "0b0100") == 0b0101
    assert mark(0b0101, "xor-mark", "0b0001") == 0b0100


def test_connmark_save_copies_packet_mark_to_connection() -> None:
    rules = """*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -j MARK --set-mark 1337
-A PREROUTING -p tcp -m mark --mark 1337 -j CONNMARK --save-mark
-A PREROUTING -p tcp -m connmark --mark 1337 -j MARK --set-mark 7
COMMIT
"""
    t = receive(pod(rules), tcp("10.0.0.1", 40000, POD, 80))
    fp = t.final_packet
    assert isinstance(fp, Packet)
    assert fp.ctmark == 1337
    assert fp.mark == 7  # the connmark match saw the saved mark


def test_connmark_restore_with_masks_only_touches_masked_bits() -> None:
    rules = """*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -j CONNMARK --set-xmark 0xab/0xffffffff
-A PREROUTING -p tcp -j MARK --set-mark 0xff00
-A PREROUTING -p tcp -j CONNMARK --restore-mark --nfmask 0xf --ctmask 0xf
COMMIT
"""
    t = receive(pod(rules), tcp("10.0.0.1", 40000, POD, 80))
    assert t.final_packet is not None
    assert t.final_packet.mark == 0xFF0B


def test_connmark_on_untracked_packet_has_no_effect() -> None:
    rules = """*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -j CT --notrack
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -j CONNMARK --set-mark 5
-A PREROUTING -p tcp -m connmark --mark 5 -j DROP
COMMIT
"""
    t = receive(pod(rules), tcp("10.0.0.1", 40000, POD, 80))
    assert t.final_packet is not None and t.final_packet.ctmark == 0
    assert t.disposition.value != "DROPPED"
