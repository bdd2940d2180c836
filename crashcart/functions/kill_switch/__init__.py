"""The kill switch's reach to alarm actions: the switch on -> acting alarms' actions off.

Deployed by ``KillSwitchReach``; entry ``handler.handler``, configuration ``settings.py``,
AWS calls ``adapter.py``, the reconcile ``service.py``.
"""
