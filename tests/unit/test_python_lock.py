"""The Python lock files: complete, consistent with each other and with pyproject.toml, and
what this environment runs.

``make install`` installs ``requirements-dev.lock`` (hashes required) and the image the wheels of
``requirements.lock``; ``make lock`` writes both from ``pyproject.toml``.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
#: A pin and its first hash (pip-compile --generate-hashes writes one hash a line below the pin).
HASHED_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+) \\\n\s+--hash=sha256:[0-9a-f]{64}", re.M)


def pins(name: str) -> dict[str, str]:
    """Name → version of every pin in lock file ``name``; each must carry its hashes."""
    text = (ROOT / name).read_text()
    found = {canonicalize_name(n): v for n, v in HASHED_PIN.findall(text)}
    assert len(found) == len(re.findall(r"^[A-Za-z0-9_.\-]+==", text, re.M)), f"a pin of {name} has no hash"
    return found


def project() -> dict[str, list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"runtime": data["dependencies"], "dev": data["optional-dependencies"]["dev"]}


def test_every_pin_carries_its_hashes() -> None:
    assert pins("requirements.lock")
    assert pins("requirements-dev.lock")


def test_the_locks_satisfy_pyproject() -> None:
    # A dependency added to pyproject.toml without `make lock` fails here.
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    deps = project()
    for lock, requirements in ((runtime, deps["runtime"]), (dev, deps["runtime"] + deps["dev"])):
        for text in requirements:
            req = Requirement(text)
            name = canonicalize_name(req.name)
            assert name in lock, f"{req.name} is not in the lock: run make lock"
            assert req.specifier.contains(lock[name], prereleases=True), f"{name}=={lock[name]} does not satisfy {req}"


def test_the_image_runs_the_versions_the_venv_runs() -> None:
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {n: v for n, v in runtime.items() if dev.get(n) != v} == {}


def test_this_environment_runs_exactly_the_locked_versions() -> None:
    # What `pip freeze` shows against the lock: make install installs nothing else.
    locked = pins("requirements-dev.lock")
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    # The project's own: srs and its compiled classifier step (native/).
    installed.pop("srs", None)
    installed.pop("srs-native", None)
    assert {n: (v, installed.get(n)) for n, v in locked.items() if installed.get(n) != v} == {}
    assert sorted(set(installed) - set(locked)) == []
