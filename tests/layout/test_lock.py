"""The lock (`requirements.lock`, what `make install`/`install-dev` constrain every install
to) agrees with pyproject.toml: every dependency, dev extras included, is pinned exactly, at a
version its specifier accepts (a floor raised past the lock fails here, not on a fresh clone);
the lock pins no Cobro and no unpinned line; and the Makefile installs through it."""

from __future__ import annotations

import re
import subprocess
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.helpers import ROOT


def _lock() -> dict[str, Version]:
    pinned = {}
    for number, line in enumerate((ROOT / "requirements.lock").read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line.strip())
        assert m, f"requirements.lock:{number}: not a `name==version` pin: {line!r}"
        pinned[canonicalize_name(m.group(1))] = Version(m.group(2))
    return pinned


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return [Requirement(text) for text in wanted]


def test_every_dependency_is_pinned_within_its_specifier() -> None:
    pinned = _lock()
    assert "cobro" not in pinned, "the project itself is not locked"
    for req in _requirements():
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is not in requirements.lock (run `make lock`)"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"requirements.lock pins {req.name}=={pinned[name]}, outside {req} (run `make lock`)"
        )


def test_the_security_floors() -> None:
    floors = {canonicalize_name(r.name): r.specifier for r in _requirements()}
    for name, fixed in [
        ("jinja2", "3.1.6"),
        ("starlette", "0.49.1"),
        ("h11", "0.16.0"),
        ("python-multipart", "0.0.18"),
        ("aiosmtpd", "1.4.6"),
        ("cryptography", "44.0.1"),
        ("urllib3", "2.6.0"),
    ]:
        *head, last = Version(fixed).release
        below = ".".join(map(str, [*head, last - 1]))
        assert not floors[name].contains(below), f"{name} {floors[name]} allows {below}"


def test_the_makefile_installs_through_the_lock() -> None:
    """What `make install install-dev` would run on a fresh clone (`-n -B`: print, run nothing)."""
    for target in ("install", "install-dev"):
        planned = subprocess.run(
            ["make", "-n", "-B", "-C", str(ROOT), target],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        installs = [line for line in planned.splitlines() if re.search(r"pip install .*-e ", line)]
        assert installs and all("-c requirements.lock" in line for line in installs), planned
    lock = subprocess.run(
        ["make", "-n", "-B", "-C", str(ROOT), "lock"], capture_output=True, text=True, check=True
    ).stdout
    assert "pip freeze --exclude-editable" in lock and "> requirements.lock" in lock
