"""The remediation function: status-check alarm -> guarded ``SendDiagnosticInterrupt``.

Deployed by ``UnresponsiveInstanceRemediation``; entry ``handler.handler``, configuration
``settings.py``, event ``events.py``, guards ``decision.py``, AWS calls ``adapter.py`` and
``claims.py``, flow ``service.py``; the scheduled missed-alarm sweep, a second entry into
the same decision, ``sweep.py``.
"""
