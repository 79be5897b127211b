"""Bounds on the work one simulation may do, so that no input can make it explode.

The kernel walks one path per packet, but it does so by actually visiting every rule a packet reaches: chains that
each jump twice to the next (`-A F1 -j F2` written twice, depth n) make it visit 2^n rules.  The simulator memoises
chain calls that provably changed nothing (see `netfilter.walk_table`), which turns that shape linear; whatever
memoisation cannot collapse (each call changes the mark, say) runs into these limits.  Past a limit the trace ends in
a named, explained step (`StepKind.LIMIT`) with the `UNSUPPORTED` disposition: "cannot be simulated within bounds",
never an explosion.
"""

from __future__ import annotations

from dataclasses import dataclass

# Rule evaluations in one table traversal (one table at one hook for one packet).  The largest real rulesets
# (kube-proxy with 10,000 services) need a few hundred thanks to the destination index.
MAX_RULE_EVALUATIONS_PER_WALK = 10_000
# Rule evaluations over one packet's whole trace (every hook, every loopback pass).
MAX_RULE_EVALUATIONS_PER_TRACE = 40_000
# Nested user-chain calls.  The kernel refuses a ruleset with a jump loop at load time; this bounds the stack.
MAX_JUMP_DEPTH = 64
# Combinations of `statistic` branch outcomes explored for one traced packet.
MAX_PATHS = 64
# Connections one analysis may ask for.
MAX_CONNECTIONS = 64
#: Inbound connections an analysis compares in the other interception mode (each is two more stories and a side by
#: side diagram on the page): the first ones; the comparison says how many it left out.
MAX_COMPARED_CONNECTIONS = 8


@dataclass(frozen=True)
class LimitReached:
    """A named limit the simulation ran into: `name` is stable (for tests and clients), `explanation` for people."""

    name: str
    limit: int
    explanation: str

    def __str__(self) -> str:
        return f"simulation limit {self.name} ({self.limit}) reached: {self.explanation}"


def rule_budget_reached(where: str, limit: int, per: str) -> LimitReached:
    return LimitReached(
        f"rule_evaluations_per_{per}",
        limit,
        f"the rules make the packet visit more than {limit:,} rules in {where} (chains that jump to each other "
        "several times fan out exponentially, and the calls change the packet so they cannot be summarised); "
        "the kernel would walk them one by one, meshviz stops here rather than guess",
    )


def jump_depth_reached(chain: str, limit: int) -> LimitReached:
    return LimitReached(
        "jump_depth",
        limit,
        f"jumping to {chain} would nest more than {limit} user-defined chain calls: the rules loop (the kernel "
        "refuses such a ruleset at load time) or nest deeper than meshviz simulates",
    )


def paths_reached(limit: int) -> LimitReached:
    return LimitReached(
        "paths",
        limit,
        f"the statistic matches on the way fan out into more than {limit} paths; only the first {limit} are shown",
    )
