"""What a chat message, a link preview or a bot needs from an analysis, small whatever the evidence's size.

* `verdicts(analysis, permalink)`: the light verdict document of `GET /api/v1/analyses/{slug}/verdicts/` (each
  connection's verdict and cause, the verified fix's first command, the permalink), bounded to MAX_VERDICT_BYTES.
* `summary(analysis, permalink, fmt)`: a message a bot can post as is: plain text, Markdown, or Slack Block Kit.
* `card(analysis)`: the Open Graph title, description and the story the preview image draws.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .models import Analysis

#: the verdict document stays under this many bytes of JSON, whatever the evidence
MAX_VERDICT_BYTES = 10 * 1024
#: characters of one text (a verdict line, a cause, a command) in the verdict document
MAX_TEXT = 400
#: connections listed in the verdict document
MAX_CONNECTIONS = 12

FORMATS = ("text", "markdown", "slack")


def _cut(text: Any, limit: int = MAX_TEXT) -> str:
    s = " ".join(str(text or "").split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def plain(text: Any) -> str:
    """A sentence for people: no Markdown backticks around names and commands."""
    return str(text or "").replace("`", "")


def _first_inbound(stories: list[dict[str, Any]]) -> tuple[int, dict[str, Any]] | None:
    for i, s in enumerate(stories, 1):
        if s.get("direction") == "inbound":
            return i, s
    return (1, stories[0]) if stories else None


def cause_of(story: dict[str, Any]) -> str:
    """The story's cause: the evidence's own (a rejected listener...) or its first cause finding, else ''."""
    facts = story.get("facts") or {}
    if facts.get("evidence_cause"):
        return plain(facts["evidence_cause"])
    for f in story.get("findings") or []:
        if f.get("kind") == "cause":
            return plain(f.get("text"))
    return ""


def verdict_line(story: dict[str, Any]) -> str:
    return plain(story.get("verdict_line") or str(story.get("summary") or "").split(" - ")[0])


def first_command(fix: dict[str, Any] | None) -> dict[str, str] | None:
    """The verified fix's first patch: its title and the first line of its first artifact that is a command."""
    if not fix or not fix.get("works") or not fix.get("patches"):
        return None
    patch = fix["patches"][0]
    for artifact in patch.get("artifacts") or []:
        content = str(artifact.get("content") or "")
        lines = [ln for ln in content.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if not lines:
            continue
        if artifact.get("kind") in ("envoyfilter",) or content.lstrip().startswith("apiVersion"):
            command = "kubectl apply -f envoyfilter.yaml  # the EnvoyFilter on the analysis page"
        else:
            command = lines[0]
        return {"title": plain(patch.get("title")), "kind": str(artifact.get("kind") or ""), "command": command}
    return {"title": plain(patch.get("title")), "kind": "", "command": ""}


def verdicts(analysis: Analysis, permalink: str) -> dict[str, Any]:
    """The light verdict document (under MAX_VERDICT_BYTES)."""
    results = analysis.results or {}
    stories = results.get("stories") or []
    fix = results.get("fix")
    conns = []
    for number, s in enumerate(stories[:MAX_CONNECTIONS], 1):
        v = s.get("verdict") or {}
        conns.append(
            {
                "number": number,
                "direction": s.get("direction"),
                "verdict": _cut(verdict_line(s)),
                "failure": v.get("failure"),
                "app_peer_ip": v.get("app_peer_ip"),
                "cause": _cut(cause_of(s)),
            }
        )
    cmd = first_command(fix)
    doc: dict[str, Any] = {
        "slug": analysis.slug,
        "state": analysis.state,
        "permalink": permalink,
        "pod": {
            "name": analysis.pod_name,
            "namespace": analysis.namespace,
            "ip": str(analysis.pod_ip),
            "interception_mode": analysis.interception_mode,
        },
        "summary": _cut(plain(results.get("summary")), 600),
        "connections": conns,
        "connections_total": len(stories),
        "fix": {
            "verified": bool(fix and fix.get("works") and fix.get("patches")),
            "title": _cut(cmd["title"]) if cmd else "",
            "first_command": _cut(cmd["command"]) if cmd else "",
        },
    }
    while len(json.dumps(doc).encode()) > MAX_VERDICT_BYTES and doc["connections"]:
        doc["connections"].pop()
    return doc


# --------------------------------------------------------------------------
# messages
# --------------------------------------------------------------------------


def _parts(analysis: Analysis) -> dict[str, str]:
    results = analysis.results or {}
    stories = results.get("stories") or []
    first = _first_inbound(stories)
    who = "/".join(x for x in (analysis.namespace, analysis.pod_name) if x) or f"pod {analysis.pod_ip}"
    if analysis.state == Analysis.State.FAILED and not results:
        line = f"the analysis failed: {(analysis.error or 'unknown error').splitlines()[0]}"
    elif not first:
        line = f"analysis {analysis.state}" if not results else "no connections to simulate"
    else:
        line = verdict_line(first[1])
    cmd = first_command(results.get("fix"))
    return {
        "who": who,
        "verdict": line,
        "cause": cause_of(first[1]) if first else "",
        "fix_title": cmd["title"] if cmd else "",
        "fix_command": cmd["command"] if cmd else "",
        "pending": "yes" if analysis.state in (Analysis.State.QUEUED, Analysis.State.RUNNING) else "",
    }


def summary(analysis: Analysis, permalink: str, fmt: str) -> str | dict[str, Any]:
    """The message in `fmt` (text, markdown: a string; slack: a Block Kit payload)."""
    p = _parts(analysis)
    if fmt == "slack":
        return slack(p, permalink)
    if fmt == "markdown":
        lines = [f"**{_md(p['who'])}**: {_md(p['verdict'])}"]
        if p["cause"]:
            lines.append(f"**Cause:** {_md(p['cause'])}")
        if p["fix_command"]:
            lines.append(f"**Fix:** {_md(p['fix_title'])}")
            lines.append(f"```\n{p['fix_command']}\n```")
        if p["pending"]:
            lines.append("_still running: these are the previous results, if any_")
        lines.append(f"[Open in meshviz]({permalink})")
        return "\n".join(lines) + "\n"
    lines = [f"{p['who']}: {p['verdict']}"]
    if p["cause"]:
        lines.append(f"Cause: {p['cause']}")
    if p["fix_command"]:
        lines.append(f"Fix ({p['fix_title']}): {p['fix_command']}")
    lines.append(permalink)
    return "\n".join(lines) + "\n"


_MD_SPECIAL = re.compile(r"([\\*_\[\]`])")


def _md(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)


def _mrkdwn(text: str) -> str:
    """Slack mrkdwn escaping (&, <, >), as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(p: dict[str, str], permalink: str) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_mrkdwn(p['who'])}*: {_mrkdwn(p['verdict'])}"}}
    ]
    if p["cause"]:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Cause:* {_mrkdwn(p['cause'])}"}})
    if p["fix_command"]:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"*Fix:* {_mrkdwn(p['fix_title'])}\n```{_mrkdwn(p['fix_command'])}```",
                },
            }
        )
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Open in meshviz"}, "url": permalink}
            ],
        }
    )
    return {"text": f"{p['who']}: {p['verdict']} {permalink}", "blocks": blocks}


# --------------------------------------------------------------------------
# link previews
# --------------------------------------------------------------------------


def card(analysis: Analysis) -> dict[str, Any]:
    """Open Graph title (the verdict line), description (the cause) and the number of the story to draw."""
    p = _parts(analysis)
    stories = (analysis.results or {}).get("stories") or []
    first = _first_inbound(stories)
    return {
        "title": f"{p['who']}: {p['verdict']}",
        "description": p["cause"] or (f"Fix: {p['fix_title']}" if p["fix_title"] else "meshviz analysis"),
        "number": first[0] if first else None,
    }
