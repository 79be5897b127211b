"""The new-analysis form: each piece of evidence pasted or uploaded, the pod IP and the application ports."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from meshviz.analyses import bundles, services

from . import uploads

#: (field, label, help) for each piece of evidence, in the form's order
EVIDENCE = (
    (
        "iptables",
        "iptables rules",
        "the output of iptables-save in the pod (or istio-iptables' dry run); this or the nft ruleset is required",
    ),
    ("ip_rule", "ip rule", "optional: the output of ip rule in the pod"),
    ("ip_route", "ip route", "optional: the output of ip route show table all in the pod"),
    ("ip6tables", "ip6tables rules", "optional: the output of ip6tables-save in the pod (IPv6)"),
    ("ip6_rule", "ip -6 rule", "optional: the output of ip -6 rule in the pod"),
    ("ip6_route", "ip -6 route", "optional: the output of ip -6 route show table all in the pod"),
    ("addr", "ip addr", "optional: the output of ip -o addr in the pod (its interfaces and addresses)"),
    ("nftables", "nft ruleset", "the output of nft list ruleset in the pod (native nftables interception)"),
    ("sysctl", "sysctls", "optional: the output of sysctl -a (or its net.* lines) in the pod"),
    (
        "envoy_config_dump",
        "Envoy config dump",
        "optional: the output of pilot-agent request GET config_dump; secrets are redacted before it is stored",
    ),
)
#: the engine's `source` names -> form fields (the reverse of services.SOURCES)
FIELD_OF_SOURCE = {source: field for field, source in services.SOURCES.items()} | {"pod_ip": "pod_ip"}


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one input (the Envoy config: several `istioctl proxy-config ... -o json` outputs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> Any:
        if isinstance(data, list | tuple):
            return [super(MultipleFileField, self).clean(d, initial) for d in data] or None
        return super().clean(data, initial)


def _whole_json_message(err: dict[str, Any], text: str) -> str:
    """The JSON parser's message as a whole sentence, saying so when the text simply stops (a dump cut off while
    copying): "not valid JSON: Expecting value" alone reads as if the message itself were cut."""
    message = str(err.get("message") or "")
    if not message.startswith("not valid JSON"):
        return message
    lines = text.rstrip().splitlines() or [""]
    if int(err.get("line") or 0) >= len(lines):  # on the last line: the text stops inside the JSON
        return (
            f"{message}, on the last line: the JSON stops before it is complete, as if the dump was cut off while "
            "it was copied. Paste or upload the whole dump."
        )
    return message if message.endswith(".") else message + "."


def error_summary(form: NewAnalysisForm) -> list[dict[str, str]]:
    """Every error of the form, each with the id of the input it is about, for the summary at the top."""
    out: list[dict[str, str]] = []
    labels = {name: str(f.label) for name, f in form.fields.items()}
    for name, errors in form.errors.items():
        if name == "__all__":
            continue
        base = name.removesuffix("_file")
        for message in errors:
            out.append({"field": labels.get(base, base), "message": str(message), "target": f"field-{base}"})
    for name, found in form.evidence_errors.items():
        for err in found:
            out.append(
                {
                    "field": labels.get(name, name),
                    "message": f"line {err['line']}, column {err['column']}: {err['message']}",
                    "target": f"field-{name}",
                }
            )
    return out


class NewAnalysisForm(forms.Form):
    bundle = forms.FileField(
        label="or upload a collect.sh bundle",
        required=False,
        help_text="meshviz-<namespace>-<pod>.tar.gz from /collect.sh: evidence, pod IP and ports from it",
    )
    pod_ip = forms.GenericIPAddressField(
        label="Pod IP",
        required=False,
        help_text="the pod's own address, e.g. 172.16.188.31; optional with an Envoy config dump or a bundle",
    )
    app_ports = forms.CharField(
        label="Application ports",
        required=False,
        help_text="comma-separated; empty: the Envoy dump's inbound ports, else 8080",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, label, help_text in EVIDENCE:
            self.fields[name] = forms.CharField(
                label=label, required=False, help_text=help_text, widget=forms.Textarea(attrs={"rows": 6})
            )
            upload = MultipleFileField if name == "envoy_config_dump" else forms.FileField
            self.fields[f"{name}_file"] = upload(label=f"or upload {label}", required=False)
        # the engine's errors, by field: [{line, column, text, message}]
        self.evidence_errors: dict[str, list[dict[str, Any]]] = {}
        self.warnings: list[dict[str, Any]] = []
        # evidence read from uploaded files, by field: put back into the text boxes when the form comes back with
        # errors (a browser never keeps a file input's file)
        self.uploaded_texts: dict[str, str] = {}
        # create_analysis fields read from a bundle (None: the evidence is in the text/file fields)
        self.bundle_fields: dict[str, Any] | None = None
        self.bundle_errors: list[dict[str, Any]] = []

    def evidence_fields(self) -> list[tuple[forms.BoundField, forms.BoundField, list[dict[str, Any]]]]:
        """(text field, file field, engine errors) for each piece of evidence, for the template."""
        return [(self[name], self[f"{name}_file"], self.evidence_errors.get(name, [])) for name, _, _ in EVIDENCE]

    def clean_app_ports(self) -> list[int]:
        raw = self.cleaned_data.get("app_ports") or ""
        ports: list[int] = []
        for part in raw.replace(" ", ",").split(","):
            if not part:
                continue
            if not part.isdigit() or not 0 < int(part) < 65536:
                raise forms.ValidationError(f"not a port (1-65535): {part!r}")
            ports.append(int(part))
        return ports

    def _evidence_text(self, name: str) -> str:
        upload: Any = self.cleaned_data.get(f"{name}_file")
        if isinstance(upload, list) and len(upload) == 1:
            upload = upload[0]
        if isinstance(upload, list):  # several Envoy inputs: merged into one dump
            inputs = []
            for f in upload:
                text = self._upload_text(name, f)
                if text is None:
                    return ""
                inputs.append((f.name or name, text))
            merged, errors = bundles.merge_envoy(inputs)
            for err in errors:
                self.add_error(f"{name}_file", f"{err['source']}:{err['line']}:{err['column']}: {err['message']}")
            self.uploaded_texts[name] = merged
            return merged
        if upload is not None:
            try:  # in pieces, gunzipped when it is gzip (meshviz.web.uploads)
                text = uploads.read_text(upload, upload.name or name)
            except uploads.TooLarge as exc:
                if "decompresses" in exc.message:
                    self.add_error(f"{name}_file", exc.message)
                else:
                    self.add_error(f"{name}_file", f"larger than the {settings.MESHVIZ_MAX_UPLOAD_BYTES}-byte limit")
                return ""
            except uploads.Unreadable as exc:
                self.add_error(f"{name}_file", exc.message)
                return ""
            if "\x00" not in text:
                self.uploaded_texts[name] = text
        else:
            text = str(self.cleaned_data.get(name) or "")
            # browsers send pasted text with CRLF line ends
            text = text.replace("\r\n", "\n")
        if "\x00" in text:
            self.add_error(f"{name}_file" if upload is not None else name, "contains NUL bytes: not a text file")
            return ""
        return text

    def _upload_text(self, name: str, upload: UploadedFile[bytes]) -> str | None:
        try:
            text = uploads.read_text(upload, str(upload.name or name))
        except uploads.TooLarge as exc:
            if "decompresses" in exc.message:
                self.add_error(f"{name}_file", exc.message)
            else:
                self.add_error(
                    f"{name}_file", f"{upload.name}: larger than the {settings.MESHVIZ_MAX_UPLOAD_BYTES}-byte limit"
                )
            return None
        except uploads.Unreadable as exc:
            self.add_error(f"{name}_file", f"{upload.name}: {exc.message}")
            return None
        if "\x00" in text:
            self.add_error(f"{name}_file", f"{upload.name}: contains NUL bytes: not a text file")
            return None
        return text

    def _clean_bundle(self, data: dict[str, Any], upload: UploadedFile[bytes]) -> dict[str, Any]:
        given = [label for name, label, _ in EVIDENCE if data.get(name) or data.get(f"{name}_file")]
        if given or data.get("pod_ip"):
            self.add_error("bundle", "a bundle replaces the evidence and the pod IP: leave them empty")
            return data
        limit = settings.MESHVIZ_MAX_UPLOAD_BYTES
        raw = upload.read(limit + 1)
        if len(raw) > limit:
            self.add_error("bundle", f"larger than the {limit}-byte limit")
            return data
        bundle, errors = bundles.read_uploaded_bundle(raw, upload.name or bundles.BUNDLE_SOURCE)
        if bundle is not None:
            fields, errors, self.warnings = bundles.bundle_analysis_fields(bundle)
            if data.get("app_ports"):
                fields["app_ports"] = data["app_ports"]
            self.bundle_fields = fields
        self.bundle_errors = errors
        for err in errors:
            if err.get("line"):  # a parse error in a member: "bundle:member: line L, column C: message | text"
                self.add_error(
                    "bundle",
                    f"{err['source']}: line {err['line']}, column {err['column']}: {err['message']}: {err['text']}",
                )
            else:  # the archive itself: the message names the member
                self.add_error("bundle", str(err["message"]))
        return data

    def clean(self) -> dict[str, Any]:
        data = super().clean() or self.cleaned_data
        if data.get("bundle") is not None:
            return self._clean_bundle(data, data["bundle"])
        for name, _, _ in EVIDENCE:
            data[name] = self._evidence_text(name)
        if self.errors:
            return data
        errors, warnings = services.validate_evidence(
            iptables=data["iptables"],
            ip_rule=data["ip_rule"] or None,
            ip_route=data["ip_route"] or None,
            ip6tables=data["ip6tables"] or None,
            ip6_rule=data["ip6_rule"] or None,
            ip6_route=data["ip6_route"] or None,
            addr=data["addr"] or None,
            nftables=data["nftables"] or None,
            sysctl=data["sysctl"] or None,
            envoy_config_dump=data["envoy_config_dump"] or None,
            pod_ip=str(data["pod_ip"]) if data.get("pod_ip") else None,
        )
        self.warnings = warnings
        for err in errors:
            field = FIELD_OF_SOURCE.get(err["source"], "iptables")
            err = {**err, "message": _whole_json_message(err, str(data.get(field) or ""))}
            # a caret under the offending column, below "LINE | text"
            gutter = len(f"{err['line']} | ")
            self.evidence_errors.setdefault(field, []).append(
                {**err, "caret": " " * (gutter + max(int(err["column"]) - 1, 0)) + "^"}
            )
        if errors:
            raise forms.ValidationError(
                f"the evidence has {len(errors)} error{'s' if len(errors) != 1 else ''}: see the marked inputs"
            )
        if not data.get("pod_ip"):
            data["pod_ip"] = services.pod_ip_from_evidence(data)
            if data["pod_ip"] is None:
                self.add_error(
                    "pod_ip",
                    "the evidence does not say the pod IP (no Envoy config dump, no single pod address in the "
                    "routes): enter it, or upload a bundle",
                )
        return data
