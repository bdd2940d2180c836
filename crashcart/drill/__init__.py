"""The local NMI drill: prove the kdump path end to end on a real Linux kernel under QEMU.

See docs/drill.md. Entry point: ``python -m crashcart.drill`` (``make drill``).
"""
