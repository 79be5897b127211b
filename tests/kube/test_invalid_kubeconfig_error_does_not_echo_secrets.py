"""A kubeconfig that cannot be used is an invalid_kubeconfig error naming what is wrong, never a secret;
kubeconfigs that would run programs or read the worker's files are refused."""

from __future__ import annotations

import pytest

from meshviz.collect.errors import CollectError
from meshviz.collect.kube import api_client, contexts
from tests.kube.fake_apiserver import kubeconfig_text

SECRET = "s3cr3t-t0ken-do-not-leak-9f8e7d"
GOOD = kubeconfig_text("https://127.0.0.1:6443", SECRET)


def _error(text: str, **kwargs: str) -> CollectError:
    with pytest.raises(CollectError) as e:
        api_client(kubeconfig=text, **kwargs)
    assert e.value.kind == "invalid_kubeconfig" and e.value.step == "kubeconfig"
    assert SECRET not in str(e.value) and SECRET not in repr(e.value.to_dict())
    return e.value


def test_unknown_context_lists_the_known_ones() -> None:
    assert contexts(GOOD) == ["fake", "other"]
    assert "'nope' is not in the kubeconfig (contexts: fake, other)" in _error(GOOD, context="nope").message


def test_broken_yaml_on_the_token_line_names_line_not_value() -> None:
    broken = GOOD.replace(f"token: {SECRET}", f"token: [{SECRET}")
    message = _error(broken).message
    assert message.startswith("not valid YAML at line")


@pytest.mark.parametrize(
    ("replacement", "expected"),
    [
        ("exec:\n      command: /bin/sh\n      apiVersion: client.authentication.k8s.io/v1", "`exec` is not accepted"),
        ("tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token", "`tokenFile` is not accepted"),
        (
            "client-certificate: /etc/ssl/me.crt\n    client-key: /etc/ssl/me.key",
            "`client-certificate` is not accepted",
        ),
        ("token: ''", "`token` is empty"),
    ],
)
def test_credentials_that_run_programs_or_read_files_are_refused(replacement: str, expected: str) -> None:
    text = GOOD.replace(f"token: {SECRET}", replacement + f"\n    password: {SECRET}" * 0)
    assert expected in _error(text).message


def test_missing_pieces_are_named() -> None:
    assert "has no `server` URL" in _error(GOOD.replace("server: https://127.0.0.1:6443", "insecure: true")).message
    assert (
        "not base64"
        in _error(
            GOOD.replace(
                "server: https://127.0.0.1:6443",
                "server: https://127.0.0.1:6443\n    certificate-authority-data: '%%%'",
            )
        ).message
    )
    assert "must be a YAML mapping" in _error("- just\n- a list\n").message
    assert "empty" in _error("   ").message
