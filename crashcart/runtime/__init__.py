"""crashcart's shared runtime: the contracts every unit that runs in AWS (or beside it) shares.

One home for each contract used by more than one unit: the incident record
(:mod:`~crashcart.runtime.incident`), the kdump attestation and its judge
(:mod:`~crashcart.runtime.attestation`), the kernel-log summary
(:mod:`~crashcart.runtime.kernel_log`), the crash-dump object layout
(:mod:`~crashcart.runtime.dumps`), and the names of environment variables and metrics
(:mod:`~crashcart.runtime.environment`, :mod:`~crashcart.runtime.metrics`).

Rules of this package, checked by tests/unit/test_runtime_package.py:

- **Standard library only.** It is copied into every Lambda function asset at synth (local
  bundling, no Docker: ``crashcart.constructs._internal.function_code``), baked into the
  triage job's image, and imported by the drill and the operator CLIs. The Lambda runtime
  provides boto3, but nothing here needs it.
- **No import of the rest of crashcart** (it is not in a function asset): this package
  imports only itself.
- Importing it does nothing: no environment read, no client created, no I/O.
"""
