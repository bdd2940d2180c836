"""The drill's images, by name: the component document each is prepared from.

``pipeline`` is the Debian 12 crash-dump document exactly as the pipeline renders it;
``running-instance`` is the running-instance arming script as a document. Preparation
(:mod:`crashcart.drill.prepare`) applies one of them to the base image.
"""

from __future__ import annotations

from collections.abc import Callable

FAMILY = "debian-12"


def render_document() -> str:
    """The Debian 12 crash-dump document exactly as the pipeline ships it."""
    from crashcart.components.render import render_component

    return render_component(FAMILY, "crash-dump")


#: The drill guest's memory floor for the running-instance path: the guest has
#: ``GUEST_MEMORY_MIB`` (1024 MiB), below the document's default floor (1536 MiB), which
#: would refuse it (as it should a 1 GiB instance unless its owner lowers the floor knowingly).
RUNNING_INSTANCE_MIN_MEMORY_MIB = 768


def render_running_instance_document() -> str:
    """The running-instance arming script (:mod:`crashcart.components.arming`) as the drill's
    component document: arm (reboot pending), reboot, arm again (armed), then the pipeline's
    own validate step. Applied to the base image, which has no crashcart configuration: it
    stands for an instance the pipeline did not build."""
    from crashcart.components.arming import render_arming_drill_document

    return render_arming_drill_document(min_memory_mib=RUNNING_INSTANCE_MIN_MEMORY_MIB)


#: The drill's images, by name: the document each is prepared from (applied to the base).
#: ``pipeline``: an instance launched from the pipeline's AMI; ``running-instance``: an
#: instance the pipeline never touched, armed in place by the SSM document's script.
IMAGES: dict[str, Callable[[], str]] = {
    "pipeline": render_document,
    "running-instance": render_running_instance_document,
}

#: What each image's instance has before its document runs, beyond the base: installed on the
#: host side of preparation (natively, from the local repository), not by the document. The
#: running-instance image stands for an instance launched from Debian's own Debian 12 AMI,
#: which ships Python 3 (its EC2 image installs cloud-init and awscli, both Python 3 programs:
#: debian-cloud-images, config_space/bookworm/package_config/EC2), so the arming script finds
#: python3 there and installs only what such an instance lacks (kdump-tools, kexec-tools,
#: makedumpfile, python3-venv), in the guest, as on EC2. The pipeline image stays the bare
#: base: its document's own install step (on the host) puts python3 in.
# aws-assumption: debian-ami-ships-python3
PLATFORM_PACKAGES: dict[str, tuple[str, ...]] = {
    "pipeline": (),
    "running-instance": ("python3",),
}
