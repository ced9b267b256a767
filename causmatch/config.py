"""The one configuration system: frozen dataclasses read from JSON, ``--set dotted.key=value`` and checkpoints.

Every config of the library (:class:`~causmatch.models.MatcherConfig` and its sections,
:class:`~causmatch.training.TrainConfig`) is a frozen dataclass that validates its values in
``__post_init__``; this module is the one parser in front of them:

* :func:`from_dict` — a nested dict (a JSON file, a checkpoint's ``config.json``) → a config. Unknown keys,
  a section that is not an object, and values of the wrong JSON type (``"3"`` for an int, ``true`` for an
  int; an int is accepted for a float) raise a one-line :class:`ConfigError`; keys left out keep the
  ``base`` config's values (or the field defaults), so configs written before a setting existed still load.
* :func:`apply_override` — one ``dotted.key=value`` (the CLI's ``--set``), parsed by the field's type.
* :func:`load_config_file` — a JSON file holding an object.

Public API::

    from_dict(cls, data, base=None, prefix="") -> cls instance
    apply_override(config, "dotted.key=value") -> a new config
    load_config_file(path) -> dict
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path

from causmatch.errors import ConfigError


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _first_option(tp, convert, what: str):
    """The first non-None member of the union ``tp`` that ``convert`` accepts (ConfigError when none does)."""
    for option in typing.get_args(tp):
        if option is type(None):
            continue
        try:
            return convert(option)
        except ConfigError:
            continue
    raise ConfigError(f"{what}: expected {tp}")


def _parse_scalar(text: str, tp, key: str):
    """Parse ``text`` (from ``--set``) as type ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null"):
            return None
        return _first_option(tp, lambda option: _parse_scalar(text, option, key), f"bad value '{text}' for {key}")
    if origin is typing.Literal:
        if text not in [str(a) for a in typing.get_args(tp)]:
            raise ConfigError(f"bad value '{text}' for {key}: choose one of {typing.get_args(tp)}")
        return text
    if tp is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"bad value '{text}' for {key}: expected true or false")
    if tp in (int, float):
        try:
            return tp(text)
        except ValueError:
            raise ConfigError(f"bad value '{text}' for {key}: expected {_type_name(tp)}") from None
    return text


def _check_json_value(value, tp, key: str):
    """Type-check a value read from JSON (ints are accepted for floats)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        return _first_option(tp, lambda option: _check_json_value(value, option, key), f"bad value {value!r} for {key}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"bad value {value!r} for {key}: choose one of {typing.get_args(tp)}")
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(tp, type) and not (isinstance(value, tp) and not (tp is int and isinstance(value, bool))):
        raise ConfigError(f"bad value {value!r} for {key}: expected {_type_name(tp)}")
    return value


def _field_types(cls) -> dict:
    return typing.get_type_hints(cls if isinstance(cls, type) else type(cls))


def _unknown(key: str, cls) -> ConfigError:
    names = ", ".join(f.name for f in dataclasses.fields(cls))
    return ConfigError(f"unknown config key '{key}'; valid keys here: {names}")


def _section(tp):
    """The dataclass a field of type ``tp`` holds (None for a plain value)."""
    return tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None


def _make(cls, base, changes: dict):
    """``base`` with ``changes`` applied, or a new ``cls(**changes)`` (its own validation raises ConfigError)."""
    try:
        return dataclasses.replace(base, **changes) if base is not None else cls(**changes)
    except (TypeError, ValueError) as err:  # a missing required field, or a section's ValueError
        raise ConfigError(f"bad config value: {str(err).splitlines()[0]}") from None
    # ConfigError from a section's __post_init__ passes through unchanged


def from_dict(cls, data, base=None, prefix: str = ""):
    """Config ``cls`` from the nested dict ``data`` (keys left out: ``base``'s values, else the defaults).

    ``prefix`` names the section in messages (``"model."``). An instance of ``cls`` itself is returned as is.
    """
    if type(data) is cls:
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.') or 'top level'}' must be a JSON object, "
                          f"got {type(data).__name__}")
    hints, changes = _field_types(cls), {}
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if key not in names:
            raise _unknown(prefix + key, cls)
        section = _section(hints[key])
        if section is not None:
            inner = getattr(base, key) if base is not None else None
            changes[key] = from_dict(section, value, inner, prefix + key + ".")
        else:
            changes[key] = _check_json_value(value, hints[key], prefix + key)
    return _make(cls, base, changes)


def apply_override(obj, assignment: str):
    """Apply one ``dotted.key=value`` to config ``obj`` and return the new config."""
    if "=" not in assignment:
        raise ConfigError(f"bad --set '{assignment}': write it as key=value, e.g. --set lambda_eff=0")
    key, text = assignment.split("=", 1)
    return _set_path(obj, key.strip().split("."), text.strip(), key.strip())


def _set_path(obj, parts: list[str], text: str, full_key: str):
    hints = _field_types(obj)
    head = parts[0]
    if head not in {f.name for f in dataclasses.fields(obj)}:
        raise _unknown(full_key, obj)
    current = getattr(obj, head)
    if len(parts) > 1:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"unknown config key '{full_key}': '{head}' is not a section")
        return _make(type(obj), obj, {head: _set_path(current, parts[1:], text, full_key)})
    if dataclasses.is_dataclass(current):
        raise ConfigError(f"'{full_key}' is a section: set one of its keys, e.g. {full_key}.<key>=value")
    return _make(type(obj), obj, {head: _parse_scalar(text, hints[head], full_key)})


def load_config_file(path: str | Path) -> dict:
    """Read a JSON config file into a dict (ConfigError when missing or not JSON)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found — pass an existing JSON file to --config")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} is not valid JSON ({err.msg if hasattr(err, 'msg') else err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    return data
