"""The wheel (and so the image) ships every Python package of the project.

``pyproject.toml`` lists packages by name: a new subpackage missing from the list imports
fine from a checkout and is absent from the installed wheel.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_of_the_project_is_listed_for_the_wheel() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    where = {name: ROOT / path for name, path in setuptools["package-dir"].items()}
    missing = []
    for top in [name for name in listed if "." not in name]:
        base = where.get(top, ROOT / top)
        for init in base.rglob("__init__.py"):
            relative = init.parent.relative_to(base).parts
            name = ".".join((top, *relative))
            if "__pycache__" not in relative and name not in listed:
                missing.append(name)
    assert missing == [], f"packages missing from [tool.setuptools] packages: {missing}"


def test_the_srs_image_is_rebuilt_when_any_shipped_package_changes() -> None:
    from devstack.images import SRS_SOURCES

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {name: path for name, path in setuptools["package-dir"].items()}
    tops = {folders.get(name, name).split("/")[0] for name in setuptools["packages"] if "." not in name}
    assert tops <= set(SRS_SOURCES), f"missing from devstack/images.py SRS_SOURCES: {sorted(tops - set(SRS_SOURCES))}"
