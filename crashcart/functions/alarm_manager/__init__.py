"""The alarm manager: one status-check alarm per opted-in instance, kept at run time.

Deployed by ``UnresponsiveInstanceRemediation(fleet=ManagedAlarms())`` for fleets past what
one Metrics Insights alarm can watch (10,000 metrics scanned per query). Entry
``handler.handler``; events in ``events.py``, the alarm each instance should have in
``alarms.py``, the AWS calls (paced and backed off) in ``adapter.py``, the passes in
``service.py``.
"""
