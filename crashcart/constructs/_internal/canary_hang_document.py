"""The SSM Command document that hangs a canary: the local drill's hang module, built on the
canary for its own kernel and loaded with ``all_cpus=1`` (every CPU spins with interrupts off,
so the status checks fail and only the diagnostic interrupt can reach the kernel)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

#: The drill's hang module (the same source the QEMU drill loads).
HANG_MODULE: Final = Path(__file__).resolve().parents[2] / "drill" / "hang_module"


def hang_document() -> dict[str, object]:
    """A ``Command`` document (schema 2.2) with one ``aws:runShellScript`` step."""
    source = (HANG_MODULE / "crashcart_hang.c").read_text(encoding="utf-8")
    kbuild = (HANG_MODULE / "Kbuild").read_text(encoding="utf-8")
    script = [
        "set -eu",
        "release=$(uname -r)",
        'if command -v dnf >/dev/null; then dnf install -y -q gcc make "kernel-devel-$release";',
        'else apt-get update -q && apt-get install -y -q gcc make "linux-headers-$release"; fi',
        "work=$(mktemp -d /var/tmp/crashcart-hang.XXXXXX)",
        "cat > \"$work/crashcart_hang.c\" <<'CRASHCART_EOF'",
        *source.rstrip("\n").split("\n"),
        "CRASHCART_EOF",
        "cat > \"$work/Kbuild\" <<'CRASHCART_EOF'",
        *kbuild.rstrip("\n").split("\n"),
        "CRASHCART_EOF",
        'make -s -C "/lib/modules/$release/build" M="$work" modules',
        "sync",
        "logger -t crashcart 'canary drill: hanging every CPU now'",
        'insmod "$work/crashcart_hang.ko" all_cpus=1',
    ]
    return {
        "schemaVersion": "2.2",
        "description": "crashcart canary drill: hang every CPU of this throw-away canary",
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "hangEveryCpu",
                "inputs": {"timeoutSeconds": "900", "runCommand": script},
            }
        ],
    }


def hang_document_json() -> str:
    return json.dumps(hang_document())
