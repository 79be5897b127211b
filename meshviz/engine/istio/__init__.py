"""Istio's traffic capture, reproduced: what `istio-iptables` and the istio-cni plugin program for a pod.

* `CaptureSettings` - every knob istio-iptables reads (`settings`);
* `generate(settings, flavour)` -> `GeneratedCapture`: iptables-restore text, commands, parsed
  `Ruleset`s, `ip rule`/`ip route` for TPROXY (`generator`);
* `settings_from_init_args`, `settings_from_annotations`, `settings_from_pod` -> `PodSettings`:
  the settings a pod was (or will be) programmed with, with notes and errors as data (`pod`);
* `generate_nftables(settings, flavour)` -> `GeneratedNftables`: the same capture as Istio's native
  nftables backend writes it (`nft_generator`); `AmbientSettings`, `generate_ambient_inpod`: ambient's
  in-pod nftables rules (`nft_ambient`); the fix's repairs in nft syntax (`nft_commands`).

Pure Python: no Django, Celery or Kubernetes imports.  See docs/istio-generator.md.
"""

from __future__ import annotations

from meshviz.engine.istio.annotations import settings_from_annotations
from meshviz.engine.istio.generator import effective_settings, generate
from meshviz.engine.istio.init_args import settings_from_init_args
from meshviz.engine.istio.iptables_builder import BuiltRule, GeneratedCapture, TraceCommand
from meshviz.engine.istio.nft_ambient import AmbientSettings, generate_ambient_host, generate_ambient_inpod
from meshviz.engine.istio.nft_generator import GeneratedNftables, generate_nftables
from meshviz.engine.istio.pod import settings_from_pod
from meshviz.engine.istio.pod_settings import PodSettings
from meshviz.engine.istio.settings import (
    FLAVOURS,
    WILDCARD,
    CaptureSettings,
    Flavour,
    InterceptionMode,
    SettingIssue,
    SettingsError,
)

__all__ = [
    "FLAVOURS",
    "WILDCARD",
    "AmbientSettings",
    "BuiltRule",
    "CaptureSettings",
    "Flavour",
    "GeneratedCapture",
    "GeneratedNftables",
    "InterceptionMode",
    "PodSettings",
    "SettingIssue",
    "SettingsError",
    "TraceCommand",
    "effective_settings",
    "generate",
    "generate_ambient_host",
    "generate_ambient_inpod",
    "generate_nftables",
    "settings_from_annotations",
    "settings_from_init_args",
    "settings_from_pod",
]
