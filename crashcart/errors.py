"""Errors crashcart raises at synth time."""

from __future__ import annotations


class ConfigurationError(ValueError):
    """A construct prop or settings value is invalid.

    The message names the value given, what is allowed and why, so that the failing
    ``cdk synth`` explains itself.
    """
