"""`manage.py rotate_cluster_keys`: re-encrypt every stored kubeconfig with the newest MESHVIZ_ENCRYPTION_KEY.

Rotate a key: put the new key first (`MESHVIZ_ENCRYPTION_KEY=new,old`), run this, then drop the old key.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from meshviz.clusters import crypto, services


class Command(BaseCommand):
    help = "Re-encrypt every stored kubeconfig with the first key of MESHVIZ_ENCRYPTION_KEY."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            count = services.rotate_kubeconfigs()
        except (crypto.EncryptionKeyMissing, crypto.EncryptionKeyInvalid, crypto.DecryptionFailed) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"re-encrypted {count} kubeconfig(s) with the newest key")
