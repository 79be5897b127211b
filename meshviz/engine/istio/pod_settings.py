"""The capture settings of a pod, with where each came from (istio-init args, its env, annotations, the istio-proxy
container, the pod), and the collector the readers share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshviz.engine.istio.generator import generate
from meshviz.engine.istio.iptables_builder import GeneratedCapture
from meshviz.engine.istio.settings import (
    CaptureSettings,
    Flavour,
    SettingIssue,
    SettingsError,
)

SRC_ARGS = "istio-init args"
SRC_ENV = "istio-init env"
SRC_ANNOTATIONS = "annotations"
SRC_PROXY = "istio-proxy"
SRC_POD = "pod"


@dataclass(frozen=True)
class PodSettings:
    """The settings a pod is programmed with, how they were found, and what could not be read."""

    settings: CaptureSettings
    flavour: Flavour = "capture"
    notes: tuple[str, ...] = ()
    errors: tuple[SettingIssue, ...] = ()
    #: False when nothing is programmed at all (dry run, interceptionMode NONE, injection disabled, ...).
    applies: bool = True
    #: `--native-nftables`: the rules are nftables tables (`generate_nftables`), not iptables.
    nftables: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    def generate(self) -> GeneratedCapture:
        return generate(self.settings, self.flavour)

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings.to_dict(),
            "flavour": self.flavour,
            "notes": list(self.notes),
            "errors": [e.to_dict() for e in self.errors],
            "applies": self.applies,
            "nftables": self.nftables,
        }


class _Collector:
    """Loose values in, settings out; every malformed value becomes a SettingIssue instead of an exception."""

    def __init__(self, base: CaptureSettings):
        self.settings = base
        self.notes: list[str] = []
        self.errors: list[SettingIssue] = []
        self.applies = True
        self.nftables = False

    def set(self, field: str, value: object, name: str, source: str, consequence: str = "") -> bool:
        try:
            self.settings = CaptureSettings.from_values(self.settings, **{field: value})
        except SettingsError as e:
            message = e.issue.message + (f"; {consequence}" if consequence else "")
            self.errors.append(SettingIssue(name=name, value=str(value), message=message, source=source))
            return False
        return True

    def error(self, name: str, value: object, message: str, source: str) -> None:
        self.errors.append(SettingIssue(name=name, value=str(value), message=message, source=source))

    def result(self, flavour: Flavour) -> PodSettings:
        return PodSettings(self.settings, flavour, tuple(self.notes), tuple(self.errors), self.applies, self.nftables)
