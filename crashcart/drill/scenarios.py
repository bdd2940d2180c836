"""Drill scenarios: what is done to a fresh copy of the prepared image, and what must happen.

Positive scenarios must end with a dump; negative controls change the image AFTER the
component ran (as drift or a bad change would) and must fail for their stated reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from crashcart.drill import diskfs

KDUMP_UNIT = "kdump-tools.service"


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    description: str
    #: What the guest does once ready: "idle" or "hang" (crashcart_hang.ko, all CPUs).
    action: str = "idle"
    #: Positive scenarios expect a dump; negatives expect failure at ``expect_stage``.
    positive: bool = True
    #: negatives: where the drill must stop ("validate" by default; "nmi" when forced past
    #: validation) and a phrase that must be in the failure reason.
    expect_stage: str = ""
    expect_reason: str = ""
    #: for forced negatives: what the NMI stage must report.
    expect_nmi_reason: str = ""
    #: The prepared image it runs on (:data:`crashcart.drill.documents.IMAGES`): ``pipeline``
    #: (the pipeline's component applied) or ``running-instance`` (the SSM arming script
    #: applied to a guest the pipeline did not build).
    image: str = "pipeline"

    def modify(self, editor: diskfs.DiskEditor, image: object) -> list[str]:
        """Change the image after the component ran; returns what was changed (for the report)."""
        return []


@dataclass(frozen=True, kw_only=True)
class DriftFile(Scenario):
    """A negative control that writes one file after the component ran (drift)."""

    #: The file written, its content, and what the report says it does.
    path: str
    content: str
    effect: str

    def modify(self, editor: diskfs.DiskEditor, image: object) -> list[str]:
        editor.write(self.path, self.content)
        return [f"wrote {self.path}: {self.effect}"]


@dataclass(frozen=True, kw_only=True)
class KdumpDisabled(Scenario):
    def modify(self, editor: diskfs.DiskEditor, image: object) -> list[str]:
        # What `systemctl disable kdump-tools` does on Debian 12: remove the unit's wants link
        # and (through systemd-sysv-install / update-rc.d) turn the S links into K links.
        from pathlib import Path

        assert isinstance(image, Path)
        changes: list[str] = []
        for target in ("basic.target.wants", "multi-user.target.wants", "sysinit.target.wants"):
            link = f"/etc/systemd/system/{target}/{KDUMP_UNIT}"
            if diskfs.exists(image, link):
                editor.remove(link)
                changes.append(f"removed {link}")
        for level in "2345":
            for name in diskfs.list_dir(image, f"/etc/rc{level}.d"):
                if name.startswith("S") and name[3:] == "kdump-tools":
                    editor.link(f"/etc/rc{level}.d/{name}", f"/etc/rc{level}.d/K01kdump-tools")
                    editor.unlink(f"/etc/rc{level}.d/{name}")
                    changes.append(f"/etc/rc{level}.d/{name} -> K01kdump-tools")
        if not changes:
            raise RuntimeError(f"{KDUMP_UNIT} is not enabled in the prepared image")
        return changes


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            name="idle",
            description="an idle guest: alarm -> remediation -> NMI -> panic -> kdump -> reboot",
        ),
        Scenario(
            name="hung-cpus",
            description="every CPU spinning with interrupts disabled (crashcart_hang.ko): the "
            "guest stops answering; the NMI must still get through",
            action="hang",
        ),
        Scenario(
            name="running-instance",
            description="a guest the pipeline did not build, armed in place by the SSM "
            "document's script (reboot pending, reboot, armed): alarm -> NMI -> kdump -> "
            "upload",
            image="running-instance",
        ),
        DriftFile(
            name="negative-nmi-panic-off",
            description="kernel.unknown_nmi_panic overridden to 0 after the component ran",
            positive=False,
            expect_stage="validate",
            expect_reason="kernel.unknown_nmi_panic = 0, expected 1",
            expect_nmi_reason="NMI received for unknown reason",
            path="/etc/sysctl.d/zzz-crashcart-drill-negative.conf",
            content="# crashcart drill negative control: drift that turns the NMI panic off\n"
            "kernel.unknown_nmi_panic = 0\n",
            effect="kernel.unknown_nmi_panic = 0 (sorts after the component's file)",
        ),
        KdumpDisabled(
            name="negative-kdump-disabled",
            description="kdump-tools disabled (systemctl disable) after the component ran",
            positive=False,
            expect_stage="validate",
            expect_reason="capture kernel not loaded",
            expect_nmi_reason="no dump",
        ),
        DriftFile(
            name="negative-crashkernel-missing",
            description="the boot configuration loses crashkernel= after the component ran",
            positive=False,
            expect_stage="validate",
            expect_reason="/proc/cmdline has 'no crashkernel='",
            expect_nmi_reason="no dump",
            path="/etc/default/grub.d/zzz-crashcart-drill-negative.cfg",
            content="# crashcart drill negative control: a later boot configuration drops "
            "crashkernel=\n"
            'GRUB_CMDLINE_LINUX="$(printf \'%s\' "${GRUB_CMDLINE_LINUX:-}" | '
            "sed -E 's/(^|[[:space:]])crashkernel=[^[:space:]]*//g')\"\n"
            'GRUB_CMDLINE_LINUX_DEFAULT="$(printf \'%s\' "${GRUB_CMDLINE_LINUX_DEFAULT:-}" | '
            "sed -E 's/(^|[[:space:]])crashkernel=[^[:space:]]*//g')\"\n",
            effect="removes every crashkernel= (sorts after the component's file)",
        ),
    )
}
POSITIVE = tuple(name for name, scenario in SCENARIOS.items() if scenario.positive)
NEGATIVE = tuple(name for name, scenario in SCENARIOS.items() if not scenario.positive)
