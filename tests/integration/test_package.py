"""The wheel alone is enough: built, installed into a fresh venv, its commands migrate a database.

Like DBOS's test_package.py: no source checkout on the path, migrations found inside the
installed package (durable/_migrations).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

from tests.helpers.processes import REPO_ROOT


def run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result.stdout


def test_wheel_installs_and_migrates(empty_db_url: str, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, REPO_ROOT)
    (wheel,) = dist.glob("durable_engine-*.whl")
    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    bin_dir = target / "bin"
    run(bin_dir / "pip", "install", "-q", wheel)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DATABASE_URL")}
    env["DURABLE_DATABASE_URL"] = empty_db_url
    outside = tmp_path / "elsewhere"  # no checkout in sight
    outside.mkdir()
    listing = run(bin_dir / "python", "-m", "zipfile", "-l", wheel)
    assert "durable/_migrations/env.py" in listing
    assert "durable_cli/main.py" in listing
    assert "examples/" not in listing and "tests/" not in listing
    check = subprocess.run(
        [bin_dir / "durable", "migrate", "--check"], capture_output=True, text=True, env=env,
        cwd=outside,
    )  # fmt: skip
    assert check.returncode == 1
    run(bin_dir / "durable", "migrate", env=env, cwd=outside)
    run(bin_dir / "durable", "migrate", env=env, cwd=outside)  # twice is fine
    run(bin_dir / "durable", "migrate", "--check", env=env, cwd=outside)
    assert run(bin_dir / "durable", "list", "--json", env=env, cwd=outside).strip() == "[]"
    run(bin_dir / "durable-worker", "--help", env=env, cwd=outside)
