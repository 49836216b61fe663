"""The config package's tables agree with its schema, so adding a key cannot half-register it.

These are the checks behind the package docstring's "Adding a configuration key" steps: a
flag, an alias or a reloadable key that names a path the schema does not have, a user map
the HCL pre-parser does not know, or an unnamed validation step fails here.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from muster.config import RELOADABLE_KEYS, USAGE, Config
from muster.config.flags import _FLAGS
from muster.config.schema import PASSTHROUGH_TOP
from muster.config.sources import _HCL_USER_MAP_BLOCK, _TOP_ALIASES, _TOP_LIST_ALIASES
from muster.config.validate import FINALISE_STEPS

KINDS = {
    "bool", "int", "str", "float", "dur", "optstr", "optint", "optbool", "optdur",
    "strlist", "strmap", "durmap", "rawmap", "deflist", "section", "internal",
}

# Which schema kinds a flag kind may set.
FLAG_KINDS = {
    "bool": {"bool", "optbool"},
    "int": {"int", "optint"},
    "str": {"str", "optstr"},
    "dur": {"dur", "optdur"},
    "list": {"strlist"},
    "meta": {"strmap"},
}


def _field(path: tuple[str, ...]) -> dataclasses.Field[Any]:
    """The schema field at ``path`` (``("ports", "http")``); KeyError if there is none."""
    cls: Any = Config
    found: dataclasses.Field[Any] | None = None
    for part in path:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        found = fields[part]
        cls = found.metadata.get("cls")
    assert found is not None
    return found


def _all_fields(cls: type = Config, prefix: str = "") -> list[tuple[str, dataclasses.Field[Any]]]:
    out = []
    for f in dataclasses.fields(cls):
        out.append((prefix + f.name, f))
        if f.metadata.get("kind") == "section":
            out.extend(_all_fields(f.metadata["cls"], prefix + f.name + "."))
    return out


@pytest.mark.parametrize(("path", "field"), _all_fields(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_field_has_a_known_kind(path: str, field: dataclasses.Field[Any]) -> None:
    assert field.metadata.get("kind") in KINDS, f"{path}: declare it with _f/_fl/_fm/_fs"


def test_user_map_fields_are_known_to_the_hcl_pre_parser() -> None:
    """A ``strmap``/``durmap`` is a user map: HCL writes it ``name { "key" = "v" }``."""
    known = set(re.findall(r"[a-z_]+", _HCL_USER_MAP_BLOCK.pattern.split("(?P<key>")[1].split(")")[0]))
    for path, field in _all_fields():
        if field.metadata.get("kind") in ("strmap", "durmap"):
            assert path.rsplit(".", 1)[-1] in known, f"add {path} to _HCL_USER_MAP_BLOCK in config/sources.py"


@pytest.mark.parametrize("name", sorted(n for n, f in _FLAGS.items() if f.kind != "special"))
def test_every_flag_sets_a_schema_field_of_a_matching_kind(name: str) -> None:
    flag = _FLAGS[name]
    field = _field(flag.path)
    assert field.metadata["kind"] in FLAG_KINDS[flag.kind], f"-{name} ({flag.kind}) -> {'.'.join(flag.path)}"
    assert f"  -{name}" in USAGE


@pytest.mark.parametrize(("alias", "target"), sorted(_TOP_ALIASES.items()))
def test_every_alias_names_a_schema_field(alias: str, target: tuple[str, ...]) -> None:
    assert _field(target).metadata["kind"] not in ("section", "internal")
    assert alias not in PASSTHROUGH_TOP


@pytest.mark.parametrize(("alias", "target"), sorted(_TOP_LIST_ALIASES.items()))
def test_every_list_alias_names_a_list_field(alias: str, target: str) -> None:
    assert _field((target,)).metadata["kind"] in ("strlist", "deflist")


def test_passthrough_keys_are_not_modelled_keys() -> None:
    modelled = {f.name for f in dataclasses.fields(Config)}
    assert not PASSTHROUGH_TOP & modelled


@pytest.mark.parametrize("key", RELOADABLE_KEYS)
def test_reloadable_keys_name_schema_fields(key: str) -> None:
    _field(tuple(key.split(".")))


def test_finalise_steps_are_named_and_documented() -> None:
    names = [step.__name__ for step in FINALISE_STEPS]
    assert len(names) == len(set(names))
    for step in FINALISE_STEPS:
        assert step.__doc__, f"{step.__name__}: say what it checks"
