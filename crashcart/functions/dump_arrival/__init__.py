"""The dump-arrival function: a dump's metadata.json landed -> incident + notification.

Deployed by ``CrashDumpBucket.notify_incidents``; entry ``handler.handler``.
"""
