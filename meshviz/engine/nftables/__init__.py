"""Native nftables: parse `nft list ruleset` / `nft -j list ruleset` / `nft -f` scripts (`parser.py`,
`json_parser.py`) into a typed model (`model.py`) and simulate its base chains as the kernel runs them,
interleaved with iptables' tables on the same hook (`hooks.py`, `evaluate.py`)."""
