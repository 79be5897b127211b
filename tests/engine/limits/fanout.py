"""Rulesets that make a naive simulator explode: chains that each jump twice to the next (issue 17)."""

from __future__ import annotations


def twice_jumping_chains(depth: int, *, change_mark: bool = False, table: str = "mangle") -> str:
    """`-A F{i} -j F{i+1}` written twice, `depth` chains deep; optionally each chain flips a mark bit first."""
    hooks = ["PREROUTING", "OUTPUT"]
    lines = [f"*{table}", *(f":{h} ACCEPT [0:0]" for h in hooks), *(f":F{i} - [0:0]" for i in range(depth + 1))]
    lines += [f"-A {h} -j F0" for h in hooks]
    for i in range(depth):
        if change_mark:
            lines.append(f"-A F{i} -j MARK --xor-mark 0x1")
        lines += [f"-A F{i} -j F{i + 1}"] * 2
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def chain_of_jumps(depth: int) -> str:
    """F0 -> F1 -> ... -> F{depth}, each once: a stack `depth` calls deep."""
    lines = ["*filter", ":INPUT ACCEPT [0:0]", *(f":F{i} - [0:0]" for i in range(depth + 1)), "-A INPUT -j F0"]
    lines += [f"-A F{i} -j F{i + 1}" for i in range(depth)]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
