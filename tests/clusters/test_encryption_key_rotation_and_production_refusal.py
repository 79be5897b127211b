"""Kubeconfigs are Fernet-encrypted with MESHVIZ_ENCRYPTION_KEY: the newest key encrypts, older ones still decrypt,
rotation re-encrypts; without a key, DEBUG derives one from SECRET_KEY (warning once) and production refuses."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet
from django.test import override_settings

from meshviz.clusters import crypto

SECRET = "apiVersion: v1\nusers:\n- name: u\n  user:\n    token: s3cr3t-t0ken-value\n"


def test_old_key_still_decrypts_and_rotation_moves_to_the_new_key() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(MESHVIZ_ENCRYPTION_KEY=old):
        token = crypto.encrypt(SECRET)
    assert SECRET not in token and "s3cr3t" not in token
    with override_settings(MESHVIZ_ENCRYPTION_KEY=f"{new},{old}"):
        assert crypto.decrypt(token) == SECRET
        rotated = crypto.rotate(token)
    assert rotated != token
    with override_settings(MESHVIZ_ENCRYPTION_KEY=new):
        assert crypto.decrypt(rotated) == SECRET
        with pytest.raises(crypto.DecryptionFailed, match="upload the kubeconfig again"):
            crypto.decrypt(token)


@override_settings(DEBUG=False, MESHVIZ_ENCRYPTION_KEY="")
def test_production_without_a_key_refuses_with_a_clear_error() -> None:
    with pytest.raises(crypto.EncryptionKeyMissing, match="MESHVIZ_ENCRYPTION_KEY must be set when DEBUG is false"):
        crypto.encrypt(SECRET)


@override_settings(MESHVIZ_ENCRYPTION_KEY="not-a-fernet-key")
def test_a_malformed_key_is_named_but_not_echoed() -> None:
    with pytest.raises(crypto.EncryptionKeyInvalid) as info:
        crypto.require_key()
    assert "key 1 of 1 is not a Fernet key" in str(info.value)
    assert "not-a-fernet-key" not in str(info.value)


@override_settings(DEBUG=True, MESHVIZ_ENCRYPTION_KEY="", SECRET_KEY="dev-secret-for-this-test")
def test_debug_without_a_key_derives_one_from_secret_key_and_warns_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(crypto, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="meshviz.clusters.crypto"):
        token = crypto.encrypt(SECRET)
        assert crypto.decrypt(token) == SECRET
        crypto.encrypt(SECRET)
    warnings = [r for r in caplog.records if "MESHVIZ_ENCRYPTION_KEY is not set" in r.getMessage()]
    assert len(warnings) == 1
    # the derived key is the SECRET_KEY-based one, so a plain Fernet with it opens the token
    assert Fernet(crypto.derived_key("dev-secret-for-this-test")).decrypt(token.encode()).decode() == SECRET
    assert "dev-secret-for-this-test" not in caplog.text


@pytest.mark.django_db
def test_rotate_cluster_keys_command_re_encrypts_stored_kubeconfigs(user: object) -> None:
    from io import StringIO

    from django.core.management import call_command

    from meshviz.clusters.models import Cluster

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(MESHVIZ_ENCRYPTION_KEY=old):
        cluster = Cluster.objects.create(
            owner=user, name="c", kind=Cluster.Kind.KUBECONFIG, kubeconfig_encrypted=crypto.encrypt(SECRET)
        )
    out = StringIO()
    with override_settings(MESHVIZ_ENCRYPTION_KEY=f"{new},{old}"):
        call_command("rotate_cluster_keys", stdout=out)
    assert "re-encrypted 1 kubeconfig(s)" in out.getvalue()
    cluster.refresh_from_db()
    with override_settings(MESHVIZ_ENCRYPTION_KEY=new):  # the old key is gone now
        assert crypto.decrypt(cluster.kubeconfig_encrypted) == SECRET
