"""The lifecycle-hold function: keep a terminating Auto Scaling instance until its crash dump
ships, and escalate an interrupted instance that stays hung past its dump deadline.

Deployed by ``AutoScalingHold``; entry ``handler.handler``, configuration ``settings.py``,
events ``events.py``, decisions ``decision.py``, AWS calls ``adapter.py`` (and the
remediation's adapters), flow ``service.py``. Its own interrupt of an impaired terminating
instance goes through ``crashcart.functions.remediation`` (copied into its asset).
"""
