"""crashcart's Lambda functions, one package each; their infrastructure is in the constructs.

=======================  =========================================  ======================
package                  what it does                                deployed by
=======================  =========================================  ======================
``remediation``          status-check alarm -> guarded diagnostic    ``UnresponsiveInstance
                         interrupt, incident record, notification    Remediation``
``dump_arrival``         a dump's metadata.json landed -> incident   ``CrashDumpBucket.
                         updated, first summary, notification        notify_incidents``
``incident_sweep``       scheduled: dumps overdue, attestation       ``DumpOverdueSweep``
                         census
=======================  =========================================  ======================

Every function has the same shape: ``handler.py`` is the thin Lambda entry (settings from
the environment, boto3 clients created once per container), the rest of the package parses
the event into a typed object and decides with pure functions over facts gathered through
adapters that receive their clients. A function imports only the standard library, boto3,
its own package (relative imports) and :mod:`crashcart.runtime`: its asset holds exactly
``crashcart/functions/<name>/`` and ``crashcart/runtime/`` (see
``crashcart.constructs._internal.function_code``), and its Lambda handler is
``crashcart.functions.<name>.handler.handler``.
"""
