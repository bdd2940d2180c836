"""Props of :class:`~crashcart.constructs.dump_triage_job.DumpTriageJob`: its size, type checks.

Private module: the public names are re-exported by ``dump_triage_job``.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs

from crashcart import _props as props
from crashcart.constructs.incident_store import IncidentStore
from crashcart.errors import ConfigurationError

#: Fargate's task sizes: CPU units -> the memory sizes (MiB) it offers with them.
# aws-assumption: fargate-task-sizes
FARGATE_MEMORY: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}
_EPHEMERAL_GIB = (21, 200)


class TriageTaskSize:
    """The triage task's size, checked against what Fargate offers.

    :param cpu: CPU units (1024 = 1 vCPU). Default: 1024.
    :param memory_mib: memory. Default: 4096 (drgn needs about 300 MB for a 6.1 kernel's
        debug info; large dumps with many tasks need more).
    :param ephemeral_storage_gib: scratch disk for the vmcore plus the vmlinux, 21-200.
        Default: 100 (a job refuses a dump that does not fit, with this setting's name).
    :param timeout: the job gives up after this long. Default: 1 hour.
    """

    def __init__(
        self,
        *,
        cpu: int = 1024,
        memory_mib: int = 4096,
        ephemeral_storage_gib: int = 100,
        timeout: cdk.Duration | None = None,
    ) -> None:
        if cpu not in FARGATE_MEMORY:
            raise ConfigurationError(
                f"cpu={cpu}: Fargate tasks take one of {sorted(FARGATE_MEMORY)} CPU units"
            )
        allowed = FARGATE_MEMORY[cpu]
        if memory_mib not in allowed:
            step = allowed[1] - allowed[0]
            raise ConfigurationError(
                f"memory_mib={memory_mib}: with cpu={cpu} Fargate allows {allowed[0]}-"
                f"{allowed[-1]} MiB ({', '.join(map(str, allowed))})"
                if len(allowed) <= 4
                else f"memory_mib={memory_mib}: with cpu={cpu} Fargate allows {allowed[0]}-"
                f"{allowed[-1]} MiB in steps of {step}"
            )
        if not _EPHEMERAL_GIB[0] <= ephemeral_storage_gib <= _EPHEMERAL_GIB[1]:
            raise ConfigurationError(
                f"ephemeral_storage_gib={ephemeral_storage_gib}: Fargate gives "
                f"{_EPHEMERAL_GIB[0]}-{_EPHEMERAL_GIB[1]} GiB; the dump and the debug vmlinux "
                "(~0.6 GiB) must fit"
            )
        timeout = timeout or cdk.Duration.hours(1)
        seconds = timeout.to_seconds()
        if not 60 <= seconds <= 24 * 3600:
            raise ConfigurationError(
                f"timeout={timeout.to_human_string()}: give 1 minute to 24 hours"
            )
        self.cpu = cpu
        self.memory_mib = memory_mib
        self.ephemeral_storage_gib = ephemeral_storage_gib
        self.timeout_seconds = int(seconds)


def _check_prop_types(**values: object) -> None:
    """A prop of the wrong type fails here, naming it, not as an AttributeError later."""
    from crashcart.constructs.crash_dump_bucket import CrashDumpBucket
    from crashcart.constructs.debug_symbol_store import DebugSymbolStore

    owner = "DumpTriageJob"
    props.check(
        owner, "dumps", values["dumps"], CrashDumpBucket, example="CrashDumpBucket(self, 'Dumps')"
    )
    props.check(
        owner, "incidents", values["incidents"], IncidentStore, example="remediation.incidents"
    )
    props.check(
        owner,
        "symbols",
        values["symbols"],
        DebugSymbolStore,
        example="DebugSymbolStore(self, 'Symbols')",
        optional=True,
    )
    props.check(
        owner,
        "vpc",
        values["vpc"],
        ec2.IVpc,
        example="ec2.Vpc.from_lookup(self, 'Vpc', vpc_id='vpc-...')",
        optional=True,
    )
    props.check(
        owner,
        "size",
        values["size"],
        TriageTaskSize,
        example="TriageTaskSize(memory_mib=8192)",
        optional=True,
    )
    props.check(
        owner,
        "image",
        values["image"],
        ecs.ContainerImage,
        example="ecs.ContainerImage.from_ecr_repository(repo, 'v1')",
        optional=True,
    )
