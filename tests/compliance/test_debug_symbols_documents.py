"""The debug-symbols component documents: structure, shellcheck on every bash step, the
embedded publisher, and the install / remove steps run against stub package managers.

Same checks as tests/compliance/test_pipeline_documents.py (whose shellcheck helper and
step rules are reused), for documents that ``list_documents()`` does not list: they exist
only when a pipeline is given a DebugSymbolStore.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from crashcart.components.debug_symbols import (
    PUBLISHER,
    STATE_DIR,
    debug_symbols_info,
    render_debug_symbols,
)
from crashcart.components.families import FAMILIES
from crashcart.errors import ConfigurationError
from tests.compliance.test_pipeline_documents import KNOWN_INPUTS, PLATFORM_ACTIONS, _shellcheck
from tests.support.tools import require_shellcheck

LINUX = [f for f, info in FAMILIES.items() if info.platform == "Linux"]
STEPS = ["InstallDebugSymbols", "PublishDebugSymbols", "RemoveDebugSymbols"]


def _document(family: str) -> dict[str, Any]:
    parsed = yaml.safe_load(render_debug_symbols(family))
    assert isinstance(parsed, dict)
    return parsed


def _script(family: str, step: str) -> str:
    (found,) = [s for s in _document(family)["phases"][0]["steps"] if s["name"] == step]
    return "\n".join(found["inputs"]["commands"])


BASH_STEPS = [(f"{family}:{step}", _script(family, step)) for family in LINUX for step in STEPS]


@pytest.mark.parametrize("family", LINUX)
def test_document_structure(family: str) -> None:
    document = _document(family)
    assert set(document) == {"name", "description", "schemaVersion", "parameters", "phases"}
    assert document["name"] == f"crashcart-publish-debug-symbols-{family}"
    assert str(document["schemaVersion"]) == "1.0"
    assert document["parameters"] == [
        {
            "BucketName": {
                "type": "string",
                "description": "The debug-symbol store's bucket (DebugSymbolStore.bucket).",
            }
        }
    ]
    assert [phase["name"] for phase in document["phases"]] == ["build"]
    steps = document["phases"][0]["steps"]
    assert [step["name"] for step in steps] == STEPS
    for step in steps:
        assert set(step) == {"name", "action", "inputs"}
        assert step["action"] == "ExecuteBash"
        assert step["action"] in PLATFORM_ACTIONS["Linux"]
        assert set(step["inputs"]) <= KNOWN_INPUTS["ExecuteBash"]
    # The only Image Builder variable is the parameter, and it is in the publish step.
    text = render_debug_symbols(family)
    assert set(re.findall(r"\{\{[^}]*\}\}", text)) == {"{{ BucketName }}"}
    assert "{{ BucketName }}" in _script(family, "PublishDebugSymbols")
    unverified = debug_symbols_info(family).unverified
    assert ("UNVERIFIED" in document["description"]) is bool(unverified)


def test_every_linux_family_has_a_document_and_windows_none() -> None:
    assert set(LINUX) == {
        "amazon-linux-2023",
        "debian-12",
        "ubuntu-22.04",
        "ubuntu-24.04",
        "rhel-9",
    }
    for family in ("windows-server-2022", "windows-server-2025"):
        with pytest.raises(ConfigurationError, match="WinDbg"):
            render_debug_symbols(family)


@pytest.fixture(scope="module")
def shellcheck_available() -> None:
    require_shellcheck()


@pytest.mark.parametrize(("name", "script"), BASH_STEPS, ids=[n for n, _ in BASH_STEPS])
def test_bash_step_passes_shellcheck(
    name: str, script: str, tmp_path: Path, shellcheck_available: None
) -> None:
    assert script.startswith("set -euo pipefail\n"), name
    result = _shellcheck(script, tmp_path, name)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(("name", "script"), BASH_STEPS, ids=[n for n, _ in BASH_STEPS])
def test_bash_step_is_valid_bash(name: str, script: str) -> None:
    result = subprocess.run(
        ["bash", "-n"], input=script, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("family", LINUX)
def test_the_embedded_publisher_is_the_file_byte_for_byte(family: str) -> None:
    script = _script(family, "PublishDebugSymbols")
    match = re.search(r"<<'(CRASHCART_SYMBOLS_[0-9a-f]{12}_EOF)'\n(.*?)\n\1\n", script, re.S)
    assert match, script[:500]
    assert match.group(2) + "\n" == PUBLISHER.read_text(encoding="utf-8")
    assert f"--family '{family}'" in script


@pytest.mark.parametrize(
    ("family", "package"),
    [
        ("debian-12", "linux-image-${release}-dbg"),
        ("ubuntu-22.04", "linux-image-unsigned-${release}-dbgsym"),
        ("ubuntu-24.04", "linux-image-unsigned-${release}-dbgsym"),
        ("amazon-linux-2023", "${source_rpm%-*-*}-debuginfo-${release}"),
        ("rhel-9", "${source_rpm%-*-*}-debuginfo-${release}"),
    ],
)
def test_install_step_names_the_package_of_the_running_kernel(family: str, package: str) -> None:
    script = _script(family, "InstallDebugSymbols")
    assert f'package="{package}"' in script
    assert "release=$(uname -r)" in script


# --- the install and remove steps, run against stub package managers ----------------------------

RELEASE = {"apt": "6.1.0-27-cloud-amd64", "dnf": "6.1.112-122.189.amzn2023.x86_64"}

_STUBS = {
    "uname": '[ "$1" = -r ] && echo "$FAKE_RELEASE"\n',
    # dpkg / apt: the installed set is one package name a line in $FAKE/installed.
    "dpkg-query": 'cat "$FAKE/installed"\n',
    "apt-get": """echo "apt-get $*" >>"$FAKE/log"
case "$1" in
  install) for p in "$@"; do case "$p" in -*|install) ;; *) echo "$p" >>"$FAKE/installed";
           [ "$p" = ubuntu-dbgsym-keyring ] || echo "${p}-dep" >>"$FAKE/installed";; esac; done ;;
  purge) for p in "$@"; do case "$p" in -*|purge) ;; *) grep -vx "$p" "$FAKE/installed" \\
         >"$FAKE/tmp" || true; mv "$FAKE/tmp" "$FAKE/installed"; echo "$p" >>"$FAKE/removed";;
         esac; done ;;
esac
""",
    # rpm / dnf
    "rpm": """case "$1" in
  -qa) cat "$FAKE/installed" ;;
  -qf) echo "kernel6.12-6.12.40-63.114.amzn2023.src.rpm" ;;
esac
""",
    "dnf": """echo "dnf $*" >>"$FAKE/log"
for p in "$@"; do
  case "$p" in
    *-debuginfo-*) echo "${p%%-debuginfo-*}-debuginfo" >>"$FAKE/installed"
                   echo "${p%%-debuginfo-*}-debuginfo-common-x86_64" >>"$FAKE/installed" ;;
  esac
done
if [ "$2" = remove ]; then
  for p in "${@:3}"; do grep -vx "$p" "$FAKE/installed" >"$FAKE/tmp" || true
    mv "$FAKE/tmp" "$FAKE/installed"; echo "$p" >>"$FAKE/removed"; done
fi
""",
}


def _run_steps(family: str, tmp_path: Path) -> tuple[Path, list[str]]:
    """Install, then Remove, with stubs first on PATH and the state dir in ``tmp_path``."""
    manager = "dnf" if family in ("amazon-linux-2023", "rhel-9") else "apt"
    fake = tmp_path / "fake"
    bin_dir = fake / "bin"
    bin_dir.mkdir(parents=True)
    for name, body in _STUBS.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}")
        (bin_dir / name).chmod(0o755)
    (fake / "installed").write_text("bash\ncoreutils\nkernel\ngpg-pubkey\n")
    state = tmp_path / "state"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE": str(fake), "FAKE_RELEASE": RELEASE[manager]}
    outputs = []
    for step in ("InstallDebugSymbols", "RemoveDebugSymbols"):
        script = _script(family, step).replace(STATE_DIR, str(state))
        # The Ubuntu steps write their ddebs source under /etc/apt: keep that in the sandbox.
        script = script.replace("/etc/apt/sources.list.d/", f"{fake}/")
        script = script.replace("/etc/os-release", str(fake / "os-release"))
        (fake / "os-release").write_text("VERSION_CODENAME=noble\n")
        done = subprocess.run(
            ["bash", "-c", script], env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, (step, done.stdout, done.stderr)
        outputs.append(done.stdout)
        if step == "InstallDebugSymbols":
            assert (state / "package").is_file()
            assert (fake / "installed").read_text().count("\n") > 4
    return fake, outputs


@pytest.mark.parametrize("family", ["debian-12", "ubuntu-24.04"])
def test_apt_steps_remove_exactly_what_they_added(family: str, tmp_path: Path) -> None:
    fake, outputs = _run_steps(family, tmp_path)
    package = f"linux-image-{RELEASE['apt']}-dbg"
    if family.startswith("ubuntu"):
        package = f"linux-image-unsigned-{RELEASE['apt']}-dbgsym"
        assert not (fake / "crashcart-ddebs.list").exists()  # the ddebs source is gone again
        assert "ubuntu-dbgsym-keyring" in (fake / "removed").read_text().split()
    log = (fake / "log").read_text()
    assert f"install -y -q --no-install-recommends {package}" in log
    assert f"{package}-dep" in (fake / "removed").read_text().split()
    assert (fake / "installed").read_text().split() == ["bash", "coreutils", "kernel", "gpg-pubkey"]
    assert "apt-get clean" in log
    assert f"installed {package} for kernel {RELEASE['apt']}" in outputs[0]
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("family", ["amazon-linux-2023", "rhel-9"])
def test_dnf_steps_remove_exactly_what_they_added(family: str, tmp_path: Path) -> None:
    fake, outputs = _run_steps(family, tmp_path)
    # The debuginfo package is named after the kernel's source package (kernel6.12 here).
    package = f"kernel6.12-debuginfo-{RELEASE['dnf']}"
    repos = "*debuginfo*" if family == "amazon-linux-2023" else "*-debug-rpms"
    log = (fake / "log").read_text()
    assert f"dnf -y --enablerepo={repos} install {package}" in log
    assert sorted((fake / "removed").read_text().split()) == [
        "kernel6.12-debuginfo",
        "kernel6.12-debuginfo-common-x86_64",
    ]
    assert (fake / "installed").read_text().split() == ["bash", "coreutils", "kernel", "gpg-pubkey"]
    assert "dnf clean packages" in log
    assert f"vmlinux: /usr/lib/debug/lib/modules/{RELEASE['dnf']}/vmlinux" in outputs[0]
    assert not (tmp_path / "state").exists()
