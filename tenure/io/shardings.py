"""Shardings as the JSON strings Orbax keeps in `_sharding`, and back."""

from __future__ import annotations

import binascii
import functools
import json
from typing import Any

import jax
import numpy as np

from tenure.io.metadata import JsonValue

_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def sharding_key(name: str) -> str:
    """The `_sharding` key of parameter `name`: its url-safe base64 (`base64`'s, without its
    Python layers: a load looks up one key per leaf).

    Examples:
        >>> import base64
        >>> sharding_key("opt.mu~w?>"), base64.urlsafe_b64encode(b"opt.mu~w?>").decode()
        ('b3B0Lm11fnc_Pg==', 'b3B0Lm11fnc_Pg==')
    """
    return binascii.b2a_base64(name.encode(), newline=False).translate(_URL_SAFE).decode()


def _spec_entry(entry: Any) -> JsonValue:
    if entry is None or isinstance(entry, str):
        return entry
    return list(entry)


# A state's leaves share a few shardings: each is converted once.
@functools.lru_cache(maxsize=256)
def to_json(sharding: jax.sharding.Sharding) -> str | None:
    """The recorded form of a sharding, or None for kinds Orbax does not record."""
    if isinstance(sharding, jax.sharding.NamedSharding):
        mesh = sharding.mesh
        doc: dict[str, JsonValue] = {
            "sharding_type": "NamedSharding",
            "shape": [int(n) for n in mesh.devices.shape],
            "axis_names": list(mesh.axis_names),
            "axis_types": [str(t) for t in mesh.axis_types],
            "partition_spec": [_spec_entry(e) for e in sharding.spec],
            "device_mesh": {
                "mesh": np.vectorize(lambda d: {"id": d.id}, otypes=[object])(mesh.devices).tolist()
            },
        }
    elif isinstance(sharding, jax.sharding.SingleDeviceSharding):
        (device,) = sharding.device_set
        device_any: Any = device
        doc = {
            "sharding_type": "SingleDeviceSharding",
            "device_str": f"{device_any.platform}:{device_any.id}",
        }
    else:
        return None
    return json.dumps(doc)


@functools.lru_cache(maxsize=256)
def from_json(text: str) -> jax.sharding.Sharding | None:
    """Rebuild a recorded sharding on this machine's devices, or None when it does not fit."""
    try:
        doc = json.loads(text)
        devices = {d.id: d for d in jax.devices()}
        if doc["sharding_type"] == "SingleDeviceSharding":
            device_id = int(str(doc["device_str"]).rsplit(":", 1)[-1])
            return jax.sharding.SingleDeviceSharding(devices[device_id])
        if doc["sharding_type"] == "NamedSharding":
            ids = np.array(doc["device_mesh"]["mesh"], dtype=object)
            mesh_devices = np.vectorize(lambda d: devices[d["id"]], otypes=[object])(ids)
            types = tuple(
                getattr(jax.sharding.AxisType, t.rsplit(".", 1)[-1]) for t in doc["axis_types"]
            )
            mesh = jax.sharding.Mesh(
                mesh_devices.reshape(doc["shape"]), tuple(doc["axis_names"]), axis_types=types
            )
            spec = [tuple(e) if isinstance(e, list) else e for e in doc["partition_spec"]]
            return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*spec))  # type: ignore[no-untyped-call]
    except (KeyError, ValueError, TypeError, AttributeError):
        return None
    return None
