"""Per-step attention metadata, installed around a forward by the engine's model runner."""

import contextlib
import threading

_local = threading.local()


@contextlib.contextmanager
def forward_metadata(metadata):
    previous = getattr(_local, "metadata", None)
    _local.metadata = metadata
    try:
        yield
    finally:
        _local.metadata = previous


def current():
    metadata = getattr(_local, "metadata", None)
    if metadata is None:
        raise RuntimeError("attention called outside forward_metadata()")
    return metadata
