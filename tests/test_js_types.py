"""The web UI's JavaScript type-checks: TypeScript (pinned in package-lock.json, installed by
`make test` into node_modules/) reads the JSDoc of every module under
src/onebox/web/static with the settings in tsconfig.json (checkJs, strict) and must find
nothing wrong. Without tsc the check is skipped locally and fails under CI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tsconfig.json"
TSC = ROOT / "node_modules" / ".bin" / "tsc"
STATIC = ROOT / "src" / "onebox" / "web" / "static"
TSC_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def tsc() -> Path:
    problem = None
    if shutil.which("node") is None:
        problem = "node is not installed (apt-get install nodejs npm)"
    elif not TSC.exists():
        problem = f"{TSC} is missing (npm ci --no-audit --no-fund)"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"cannot type-check the web UI: {problem} (required when CI is set)")
        pytest.skip(f"cannot type-check the web UI: {problem}")
    return TSC


def run_tsc(tsc: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tsc), "--pretty", "false", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TSC_TIMEOUT_S,
        check=False,
    )


def static_modules() -> list[Path]:
    return sorted(STATIC.rglob("*.js"))


def test_every_module_opts_in_to_type_checking() -> None:
    # The pragma makes editors check a module even when they ignore tsconfig.json.
    missing = [
        str(path.relative_to(STATIC))
        for path in static_modules()
        if not path.read_text(encoding="utf-8").startswith("// @ts-check\n")
    ]
    assert not missing, f"these modules do not start with // @ts-check: {missing}"


def test_the_config_covers_every_module(tsc: Path) -> None:
    listed = run_tsc(tsc, "-p", str(CONFIG), "--listFilesOnly")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    checked = {Path(line).resolve() for line in listed.stdout.splitlines() if line.strip()}
    missing = [str(path.relative_to(STATIC)) for path in static_modules() if path not in checked]
    assert not missing, f"tsconfig.json does not include: {missing}"


def test_the_config_is_strict(tsc: Path) -> None:
    shown = run_tsc(tsc, "-p", str(CONFIG), "--showConfig")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    options = json.loads(shown.stdout)["compilerOptions"]
    for name in ("checkJs", "strict", "noImplicitAny", "strictNullChecks"):
        assert options.get(name) is True, f"tsconfig.json must keep {name} on"


def test_a_type_error_fails_the_check(tsc: Path, tmp_path: Path) -> None:
    # The same settings on a module with a real mistake: the check must not pass it.
    (tmp_path / "broken.js").write_text(
        "// @ts-check\n"
        'const banner = document.getElementById("error-banner");\n'
        "banner.hidden = 1;\n",
        encoding="utf-8",
    )
    config = {"extends": str(CONFIG), "include": [str(tmp_path / "broken.js")]}
    (tmp_path / "tsconfig.json").write_text(json.dumps(config), encoding="utf-8")
    result = run_tsc(tsc, "-p", str(tmp_path / "tsconfig.json"))
    assert result.returncode != 0
    assert "TS18047" in result.stdout  # 'banner' is possibly 'null'
    assert "TS2322" in result.stdout  # a number is not a boolean


def test_web_ui_type_checks(tsc: Path) -> None:
    result = run_tsc(tsc, "-p", str(CONFIG))
    if result.returncode != 0:
        pytest.fail(
            f"tsc -p {CONFIG.name} reported errors:\n{result.stdout}{result.stderr}",
            pytrace=False,
        )
