"""Collection failures as data: what kind of failure, in which step, and whether trying again may help."""

from __future__ import annotations

from typing import Any, Final

#: Every kind a CollectError can have, with what it means for the user.
KINDS: Final[dict[str, str]] = {
    "forbidden": "the credentials are not allowed to do this (RBAC or admission said no)",
    "not_found": "the pod (or namespace) does not exist (any more)",
    "container_not_running": "the container is not running (starting, crashed, or the pod is terminating)",
    "exec_unsupported": "the API server or the container cannot run the command (no websocket exec, no binary)",
    "timeout": "the cluster did not answer, or the capture did not finish, in time",
    "unreachable": "the API server could not be reached or kept failing (connection errors, 5xx)",
    "invalid_kubeconfig": "the kubeconfig cannot be used (malformed, missing fields, unsupported credentials)",
    "bad_output": "a command ran but its output is not what the engine can read",
    "no_sidecar": "the pod has no Istio sidecar (no istio-proxy container)",
}

#: Kinds worth retrying later by default (the library already retried transient errors itself).
RETRYABLE_KINDS: Final[frozenset[str]] = frozenset({"timeout", "unreachable"})


class CollectError(Exception):
    """A collection step failed.

    `kind` is one of `KINDS`; `step` names the step ("kubeconfig", "capabilities", "namespaces", "pods",
    "pod", "config_dump", "netfilter", "reconstruct"); `message` says what happened in words a user can
    act on and never contains credentials; `retryable` tells a caller whether the same request may succeed
    later.
    """

    def __init__(self, kind: str, step: str, message: str, *, retryable: bool | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown CollectError kind {kind!r} (one of {', '.join(KINDS)})")
        self.kind = kind
        self.step = step
        self.message = message
        self.retryable = kind in RETRYABLE_KINDS if retryable is None else retryable
        super().__init__(f"{step}: {kind}: {message}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "step": self.step, "message": self.message, "retryable": self.retryable}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CollectError:
        return cls(str(data["kind"]), str(data["step"]), str(data["message"]), retryable=bool(data["retryable"]))
