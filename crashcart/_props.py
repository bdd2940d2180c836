"""Type checks for construct props: a wrong type fails at the call with a ConfigurationError.

Python does not check annotations, and jsii checks only the values that reach a CDK
constructor, so a string passed where an :class:`~crashcart.opt_in.OptInTag` or an
``sns.ITopic`` belongs used to fail later, deep inside a construct, as an ``AttributeError``
(``'str' object has no attribute 'key'``). These helpers name the construct, the prop, the
value given and what is allowed instead.

CDK interfaces (``sns.ITopic``, ``kms.IKey``, ...) are typing protocols that ``isinstance``
cannot test; :func:`implements` reads the ``__jsii_ifaces__`` that jsii records on every
class that implements one (CDK's own classes, imported resources, and a user's
``@jsii.implements(...)`` classes).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aws_cdk import aws_kms as kms

from crashcart.errors import ConfigurationError


def implements(value: object, interface: type) -> bool:
    """True when ``value`` is a jsii object that implements ``interface`` (or a sub-interface)."""
    delegates = getattr(value, "_delegates", None)
    if type(value).__name__ == "InterfaceDynamicProxy" and isinstance(delegates, list):
        return any(implements(delegate, interface) for delegate in delegates)
    proxy_of = getattr(interface, "__jsii_proxy_class__", None)
    proxy = proxy_of() if callable(proxy_of) else None
    for cls in type(value).__mro__:
        if cls is interface or (proxy is not None and cls is proxy):
            return True  # e.g. an imported resource: a proxy object of the interface itself
        for declared in getattr(cls, "__jsii_ifaces__", None) or ():
            if interface in getattr(declared, "__mro__", (declared,)):
                return True
    return False


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} (a {type(value).__name__})"


def check(
    owner: str,
    name: str,
    value: object,
    expected: type | tuple[type, ...],
    *,
    example: str,
    optional: bool = False,
) -> None:
    """``value`` must be an ``expected``: a class (``isinstance``) or a CDK interface.

    :param owner: the construct or function, e.g. ``"UnresponsiveInstanceRemediation"``.
    :param example: how a correct value is written, shown in the message.
    :param optional: None is allowed (the prop's default).
    :raises ConfigurationError: naming ``owner``, ``name``, the value given and what is allowed.
    """
    if isinstance(expected, type) and getattr(expected, "_is_protocol", False):
        check_interface(owner, name, value, expected, example=example, optional=optional)
    else:
        check_value(owner, name, value, expected, example=example, optional=optional)


def check_key(owner: str, value: object, *, key_id: str = "Key") -> None:
    """``encryption_key`` must be a KMS key or None (the construct makes its own key).

    :param key_id: the construct id the example gives the key.
    """
    check(
        owner,
        "encryption_key",
        value,
        kms.IKey,
        example=f"kms.Key(self, '{key_id}', enable_key_rotation=True)",
        optional=True,
    )


def check_value(
    owner: str,
    name: str,
    value: object,
    expected: type | tuple[type, ...],
    *,
    example: str,
    optional: bool = False,
) -> None:
    """``value`` must be an instance of ``expected`` (a crashcart settings value, an enum...)."""
    if value is None and optional:
        return
    if isinstance(value, expected):
        return
    names = " or ".join(cls.__name__ for cls in _tuple(expected))
    raise ConfigurationError(
        f"{owner} {name}={_describe(value)}: must be {_article(names)} {names}, e.g. {example}"
        + (" (or None for the default)" if optional else "")
    )


def check_interface(
    owner: str,
    name: str,
    value: object,
    interface: type,
    *,
    example: str,
    optional: bool = False,
) -> None:
    """``value`` must implement the CDK interface ``interface`` (``sns.ITopic``...)."""
    if value is None and optional:
        return
    if implements(value, interface):
        return
    module = interface.__module__.removeprefix("aws_cdk.").removeprefix("aws_")
    label = f"{module}.{interface.__name__}"
    raise ConfigurationError(
        f"{owner} {name}={_describe(value)}: must be a CDK {label} object (not a name or an "
        f"ARN string), e.g. {example}" + (" (or None for the default)" if optional else "")
    )


def check_sequence(
    owner: str,
    name: str,
    values: object,
    check: Any,
    *,
    what: str,
) -> list[Any]:
    """``values`` must be a list or tuple (not a string); ``check(index, item)`` each item."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ConfigurationError(
            f"{owner} {name}={_describe(values)}: must be a list of {what}, e.g. [{what}, ...]"
        )
    items = list(values)
    for index, item in enumerate(items):
        check(f"{name}[{index}]", item)
    return items


def _tuple(expected: type | tuple[type, ...]) -> tuple[type, ...]:
    return expected if isinstance(expected, tuple) else (expected,)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
