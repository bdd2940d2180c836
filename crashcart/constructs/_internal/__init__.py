"""Private building blocks of crashcart's constructs: not part of the public API.

Each module builds one secure part the constructs share, so that every construct gets the
same defaults and acknowledgements and a newcomer copies the right example.
"""
