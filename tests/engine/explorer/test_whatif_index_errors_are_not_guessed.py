"""Out-of-range indexes, unknown chains, listeners and clusters are errors, never guesses."""

from __future__ import annotations

import pytest

from meshviz.engine.explorer.edits import Edit
from meshviz.engine.explorer.whatif import apply_edits

from .helpers import REDIRECT, TPROXY_OK, evidence


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (Edit(op="delete", table="mangle", chain="ISTIO_INBOUND", index=9), "index 9 is out of range"),
        (Edit(op="delete", table="mangle", chain="ISTIO_INBOUND", index=0), "index 0 is out of range"),
        (Edit(op="replace", table="mangle", chain="ISTIO_INBOUND", index=9, rule="-j RETURN"), "out of range"),
        (Edit(op="insert", table="mangle", chain="ISTIO_INBOUND", index=10, rule="-j RETURN"), "(valid: 1-9)"),
        (Edit(op="move", table="mangle", chain="ISTIO_INBOUND", index=1, to_index=9), "to_index 9 is out of range"),
        (Edit(op="delete", table="mangle", chain="NOPE", index=1), "no chain NOPE in table mangle"),
        (Edit(op="delete", table="raw", chain="PREROUTING", index=1), "no raw table"),
        (Edit(op="envoy_bind", address="127.0.0.6", cluster="nope"), "no cluster 'nope'"),
        (Edit(op="envoy_bind", address="not-an-ip"), "not an IP address"),
        (Edit(op="envoy_original_src", mark=1337, listener="nope"), "no listener 'nope'"),
        (Edit(op="set_text", kind="ip_rule", text="ip rule add frobnicate"), ""),
        (Edit(op="set_text", kind="nope", text="x"), "unknown kind"),
        (Edit(op="sysctl", key="net.ipv4.ip_forward", value=""), "one-line value"),
    ],
)
def test_refused(edit: Edit, words: str) -> None:
    ev = evidence(TPROXY_OK)
    result = apply_edits(ev, [edit])
    assert result.errors, edit
    assert all(e.source.startswith("edit 1") for e in result.errors)
    assert words in result.errors[0].message
    assert result.evidence == ev


def test_envoy_edit_without_a_dump() -> None:
    ev = evidence(REDIRECT)
    from dataclasses import replace

    (err,) = apply_edits(replace(ev, envoy=None), [Edit(op="envoy_original_src", mark=1337)]).errors
    assert "no Envoy config dump" in err.message
