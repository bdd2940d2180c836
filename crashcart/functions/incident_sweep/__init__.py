"""The overdue sweep: incidents whose dump is late -> ``dump-overdue``; attestation census.

Deployed by ``DumpOverdueSweep``; entry ``handler.handler``, rule ``overdue.py``, census
``attestation.py``.
"""
