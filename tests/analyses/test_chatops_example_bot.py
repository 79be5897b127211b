"""docs/chatops.md's example bot, taken from the page and run as Slack would: a signed /meshviz slash command with
a pod's IP and iptables-save output; the bot uploads the evidence to a running meshviz (a live server) and posts
the Block Kit summary to the command's response_url."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import re
import threading
import time
import types
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from .helpers import POD_IP, REDIRECT_RULES

DOC = Path(__file__).resolve().parents[2] / "docs" / "chatops.md"
SECRET = "slack-signing-secret-for-the-test"


def _bot(monkeypatch: pytest.MonkeyPatch, url: str, key: str) -> types.ModuleType:
    code = re.search(r"<!-- the test extracts the block below -->\n```python\n(.*?)\n```", DOC.read_text(), re.S)
    assert code is not None, "docs/chatops.md lost its example bot"
    monkeypatch.setenv("MESHVIZ_URL", url)
    monkeypatch.setenv("MESHVIZ_KEY", key)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    module = types.ModuleType("meshviz_bot")
    exec(compile(code.group(1), str(DOC), "exec"), module.__dict__)
    return module


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def response_url() -> Iterator[tuple[str, queue.Queue[dict[str, Any]]]]:
    """Where Slack would receive the bot's message."""
    received: queue.Queue[dict[str, Any]] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.put(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def _signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    ts = str(int(time.time()))
    sig = "v0=" + hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig}


def test_the_documented_bot_answers_a_slash_command_with_the_verdict(
    live_server: Any,
    api_key: str,
    monkeypatch: pytest.MonkeyPatch,
    response_url: tuple[str, queue.Queue[dict[str, Any]]],
) -> None:
    bot = _bot(monkeypatch, live_server.url, api_key)
    server = make_server("127.0.0.1", 0, bot.app, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook, received = response_url
    try:
        body = urllib.parse.urlencode(
            {"command": "/meshviz", "text": f"{POD_IP}\n{REDIRECT_RULES}", "response_url": hook}
        ).encode()
        bot_url = f"http://127.0.0.1:{server.server_port}/"

        forged = urllib.request.Request(bot_url, data=body, headers=_signed(body, "not-the-secret"))
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(forged, timeout=10)
        assert refused.value.code == 401

        with urllib.request.urlopen(urllib.request.Request(bot_url, data=body, headers=_signed(body)), timeout=10) as r:
            assert "analysing" in json.loads(r.read())["text"]  # Slack's 3-second answer

        message = received.get(timeout=60)
    finally:
        server.shutdown()
    assert message["response_type"] == "in_channel", message
    assert "127.0.0.6" in message["text"]
    assert message["blocks"][0]["type"] == "section"
    assert any(
        b["type"] == "actions" and b["elements"][0]["url"].startswith(live_server.url) for b in message["blocks"]
    )
