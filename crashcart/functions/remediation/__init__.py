"""The remediation function: status-check alarm -> guarded ``SendDiagnosticInterrupt``.

Deployed by ``UnresponsiveInstanceRemediation``; entry ``handler.handler``, configuration
``settings.py``, event ``events.py``, guards ``decision.py``, AWS calls ``adapter.py`` and
``claims.py``, flow ``service.py``.
"""
