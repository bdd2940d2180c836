"""The prepared image's cache key covers exactly what changes the guest.

Preparing the guest costs minutes of emulation: an edit that does not change the guest must
not re-prepare it, and one that does must. The key is a hash of named inputs
(``crashcart.drill.prepare.drill_inputs``); these tests work on copies of the files it reads.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crashcart.components import render
from crashcart.drill import image, kdumpinitrd, module, prepare

BASE = {"base_key": "0123456789abcdef", "kernel_release": "6.1.0-50-cloud-amd64"}


def key() -> str:
    return prepare.prepared_key(prepare.drill_inputs(prepare.render_document(), **BASE))


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Copies of everything the key reads, the code pointed at them."""
    components = tmp_path / "components"
    shutil.copytree(render.COMPONENTS_DIR, components, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(render, "TEMPLATES_DIR", components / "templates")
    monkeypatch.setattr(render, "FRAGMENTS_DIR", components / "fragments")
    monkeypatch.setattr(render, "AGENT_DIR", components / "agent")
    guest = tmp_path / "guest"
    shutil.copytree(image.GUEST_DIR, guest)
    monkeypatch.setattr(image, "GUEST_DIR", guest)
    hang = tmp_path / "hang_module"
    shutil.copytree(module.HANG_MODULE_DIR, hang)
    monkeypatch.setattr(module, "HANG_MODULE_DIR", hang)
    sandbox = tmp_path / "sandbox.sh"
    shutil.copy(prepare.SANDBOX, sandbox)
    monkeypatch.setattr(prepare, "SANDBOX", sandbox)
    kdump_initrd = tmp_path / "kdump-initrd.sh"
    shutil.copy(kdumpinitrd.KDUMP_INITRD_SCRIPT, kdump_initrd)
    monkeypatch.setattr(kdumpinitrd, "KDUMP_INITRD_SCRIPT", kdump_initrd)
    return tmp_path


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_the_key_is_made_of_exactly_these_inputs() -> None:
    inputs = prepare.drill_inputs(prepare.render_document(), **BASE)
    assert set(inputs) == {
        "base",  # debootstrap's package lists, mirror, suite, platform settings
        "kernel",
        "platform",  # what the image's platform has before the document (running instance)
        "document",  # the rendered Debian 12 document: kdump set-up, the agent, validate
        "wheels",  # the pinned AWS CLI the document installs, for the guest's Python
        "format",
        "host/sandbox.sh",
        "host/kdump-initrd.sh",  # the kdump initrd, built on the host
        "host/kdump-initrd answers",  # what it is told of the guest (MODULES=dep, root fs)
        "guest:/usr/local/lib/crashcart-drill/runner.sh",
        "guest:/etc/systemd/system/crashcart-drill.service",
        "hang_module/Kbuild",
        "hang_module/crashcart_hang.c",
    }
    assert inputs["document"].decode() == prepare.render_document()
    assert key() == key()  # stable


@pytest.mark.usefixtures("sources")
def test_unrelated_edits_leave_the_key_unchanged(sources: Path) -> None:
    before = key()
    # another family's document, a fragment the Debian document does not use
    _append(sources / "components/templates/amazon-linux-2023.crash-dump.yaml", "# edit\n")
    _append(sources / "components/fragments/kdumpctl-enable.sh", "\n# edit\n")
    _append(sources / "components/fragments/windows-validate.ps1", "\n# edit\n")
    # new files next to the ones the key reads
    (sources / "guest" / "NOTES.md").write_text("notes\n")
    (sources / "components/agent/README.md").write_text("notes\n")
    assert key() == before


@pytest.mark.parametrize(
    "edit",
    [
        "components/templates/debian-12.crash-dump.yaml",
        "components/fragments/kdump-tools-enable.sh",
        "components/fragments/validate.sh",
        "components/agent/crashcart-agent.py",
        "guest/runner.sh",
        "hang_module/crashcart_hang.c",
        "sandbox.sh",
        "kdump-initrd.sh",
    ],
)
def test_edits_that_change_the_guest_change_the_key(sources: Path, edit: str) -> None:
    before = key()
    _append(sources / edit, "\n# an edit\n")
    assert key() != before, edit


def test_the_base_and_its_kernel_change_the_key() -> None:
    text = prepare.render_document()
    keys = {
        prepare.prepared_key(prepare.drill_inputs(text, base_key=b, kernel_release=k))
        for b, k in (("a" * 16, "6.1.0-50"), ("b" * 16, "6.1.0-50"), ("a" * 16, "6.1.0-51"))
    }
    assert len(keys) == 3


def test_a_mode_change_of_a_guest_file_changes_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    before = key()
    files = image.guest_files()
    changed = {path: (content, 0o700) for path, (content, _mode) in files.items()}
    monkeypatch.setattr(prepare, "guest_files", lambda: changed)
    assert key() != before


def test_two_runs_sharing_the_cache_build_one_after_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from crashcart.drill.paths import cache_lock

    monkeypatch.setenv("CRASHCART_DRILL_CACHE", str(tmp_path))
    entered = threading.Event()

    def second() -> None:
        with cache_lock("prepared-0123"):
            entered.set()

    with cache_lock("prepared-0123"):
        thread = threading.Thread(target=second)
        thread.start()
        assert not entered.wait(0.5), "the second run went in while the first held the lock"
        with cache_lock("prepared-other"):  # another image is not held up
            pass
    thread.join(5)
    assert entered.is_set()


def test_the_platforms_packages_and_what_the_guest_is_said_to_have_change_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = prepare.render_document()
    bare = prepare.prepared_key(prepare.drill_inputs(text, **BASE))
    with_python = prepare.prepared_key(prepare.drill_inputs(text, **BASE, platform=("python3",)))
    assert with_python != bare
    monkeypatch.setattr(kdumpinitrd, "GUEST_DEP_MODULES", ("virtio_blk",))
    assert key() != bare
    monkeypatch.undo()
    monkeypatch.setattr(kdumpinitrd, "GUEST_ROOT_FSTYPE", "xfs")
    assert key() != bare


def test_each_image_names_its_platform_and_the_running_instance_lacks_kdump() -> None:
    from crashcart.drill.documents import IMAGES, PLATFORM_PACKAGES

    assert set(PLATFORM_PACKAGES) == set(IMAGES)
    assert PLATFORM_PACKAGES["pipeline"] == ()
    # a Debian 12 AMI has Python 3 (cloud-init, awscli), not kdump: the arming script installs it
    assert PLATFORM_PACKAGES["running-instance"] == ("python3",)
    assert not {"kdump-tools", "kexec-tools", "makedumpfile", "python3-venv"} & set(
        PLATFORM_PACKAGES["running-instance"]
    )


def test_a_document_whose_guest_reboots_has_its_kdump_initrd_built_between_boots() -> None:
    from crashcart.drill.component import parse_document
    from crashcart.drill.documents import render_running_instance_document

    pipeline, running = prepare.render_document(), render_running_instance_document()
    # the pipeline document's Reboot is the image's first boot: the host builds before it
    assert not kdumpinitrd.guest_reboots(parse_document(pipeline))
    assert "host/kdump-initrd between boots" not in prepare.drill_inputs(pipeline, **BASE)
    # the arming script runs in the guest, then the operator's Reboot: the guest reboots
    assert kdumpinitrd.guest_reboots(parse_document(running))
    inputs = prepare.drill_inputs(running, **BASE)
    assert inputs["host/kdump-initrd between boots"] == kdumpinitrd.BETWEEN_BOOTS
    without = {k: v for k, v in inputs.items() if k != "host/kdump-initrd between boots"}
    assert prepare.prepared_key(inputs) != prepare.prepared_key(without)
