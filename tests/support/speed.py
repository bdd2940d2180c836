"""Two costs of the fake AWS that every test paid again, paid once per process (issue 24).

Profiled on tests/functional/test_canary_drill_execution.py, moto in process: about a quarter
of the time went to moto building its default EC2 images again for every region of every
fresh mock (``AmiBackend._load_amis``: a thousand-odd ECS-optimised and "latest" images per
region, each with random ids), and about a sixth to botocore parsing the same service models
again for every new session (moto's ``mock_aws`` starts each test with a fresh default
session, and each session has its own loader cache).

- :func:`moto_amis_file`: moto's own default images (``ec2/resources/amis.json``, the images
  tests name, such as ``ami-12c6146b``, and what ``describe_images(Owners=["amazon"])``
  lists first) without the per-region ECS-optimised and latest images, which no test uses:
  moto reads the file named by ``MOTO_AMIS_PATH`` instead of its defaults and then skips
  those.
- :func:`share_botocore_models`: a service model (and botocore's other data files) parsed once
  per process, shared by every session, as botocore already shares it between the clients
  of one session (``instance_cache``); nobody mutates them.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import threading
from functools import wraps
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any


def moto_amis_file() -> Path:
    """moto's default-images file, uncompressed, in the temporary folder (one per moto version)."""
    version = metadata.version("moto")
    target = Path(tempfile.gettempdir()) / f"crashcart-tests-moto-{version}-amis.json"
    if target.is_file():
        return target
    spec = find_spec("moto")
    assert spec is not None and spec.origin is not None
    source = Path(spec.origin).parent / "ec2" / "resources" / "amis.json.gz"
    data = gzip.decompress(source.read_bytes())
    partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    partial.write_bytes(data)
    partial.replace(target)  # atomic: another worker may write the same file at once
    return target


_SHARED: dict[tuple[Any, ...], Any] = {}
_LOCK = threading.Lock()


def share_botocore_models() -> None:
    """Make every botocore loader of this process share what any of them parsed."""
    from botocore import loaders

    if getattr(loaders.Loader, "_crashcart_shared", False):
        return
    for name in ("load_service_model", "load_data_with_path"):
        setattr(loaders.Loader, name, _shared(getattr(loaders.Loader, name)))
    loaders.Loader._crashcart_shared = True  # type: ignore[attr-defined]


def _shared(method: Any) -> Any:
    @wraps(method)
    def load(self: Any, *args: Any, **kwargs: Any) -> Any:
        key = (method.__name__, tuple(self.search_paths), args, tuple(sorted(kwargs.items())))
        with _LOCK:
            if key in _SHARED:
                return _SHARED[key]
        value = method(self, *args, **kwargs)
        with _LOCK:
            return _SHARED.setdefault(key, value)

    return load


_CLASSES: dict[tuple[Any, ...], tuple[Any, Any]] = {}


def share_client_classes() -> None:
    """Make every botocore client creator of this process share the classes it builds."""
    from botocore import client

    if getattr(client.ClientCreator, "_crashcart_shared", False):
        return
    build = client.ClientCreator._create_client_class

    @wraps(build)
    def create_client_class(self: Any, service_name: str, service_model: Any) -> Any:
        key = _class_key(self._event_emitter, service_name, service_model)
        if key is None:
            return build(self, service_name, service_model)
        description = service_model._service_description
        with _LOCK:
            kept = _CLASSES.get(key)
        # the description is kept alive with the class, so its id is never reused
        if kept is not None and kept[0] is description:
            return kept[1]
        made = build(self, service_name, service_model)
        with _LOCK:
            _CLASSES[key] = (description, made)
        return made

    client.ClientCreator._create_client_class = create_client_class  # type: ignore[method-assign]
    client.ClientCreator._crashcart_shared = True  # type: ignore[attr-defined]


def _class_key(emitter: Any, service_name: str, service_model: Any) -> tuple[Any, ...] | None:
    """Service, its model and the handlers that shape its class (None: not known here)."""
    inner = getattr(emitter, "_emitter", emitter)
    handlers = getattr(inner, "_handlers", None)
    description = getattr(service_model, "_service_description", None)
    if handlers is None or description is None:
        return None
    event = f"creating-client-class.{service_model.service_id.hyphenize()}"
    return (service_name, id(description), tuple(handlers.prefix_search(event)))
