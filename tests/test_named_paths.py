"""Every repository path a tracked file names exists (or is one the tools make and git
ignores: secrets, deploy state, benchmark results). A path here is text that starts with a
top-level folder of the repository and a slash, not inside a longer path or URL; a
placeholder after it (`<version>`, `{...}`, `*`, `$VAR`) ends it."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from shared.config import REPO_ROOT


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True)


@pytest.fixture(scope="module")
def tracked() -> list[str]:
    if shutil.which("git") is None or git("rev-parse").returncode != 0:
        pytest.skip("not a git checkout: the tracked files are unknown")
    return git("ls-files").stdout.splitlines()


def named_paths(text: str, folders: list[str]) -> set[str]:
    pattern = re.compile(rf"(?<![\w./$-])((?:{'|'.join(folders)})/[\w./-]*)(?![<{{*$])")
    return {match.rstrip(".,:;-") for match in pattern.findall(text)}


def test_the_pattern_finds_repository_paths_and_nothing_else():
    text = ("see shared/store/keys.py, and models/modelo/<version>/ or "
            "https://example.com/shared/x.py, /home/app/function/models/x, tests.shared")
    assert named_paths(text, ["shared", "models", "tests"]) == {"shared/store/keys.py",
                                                                "models/modelo"}


def test_every_path_a_file_names_exists(tracked):
    folders = sorted({path.split("/")[0] for path in tracked
                      if "/" in path and not path.startswith(".")})
    missing: dict[str, set[str]] = {}
    for name in tracked:
        try:
            text = (REPO_ROOT / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary (model weights), or deleted but not yet committed
        for path in named_paths(text, folders):
            if not (REPO_ROOT / path).exists():
                missing.setdefault(path, set()).add(name)
    ignored = git("check-ignore", "--no-index", *missing).stdout.split() if missing else []
    made_by_tools = {path.rstrip("/") for path in ignored}
    assert {path: sorted(names) for path, names in missing.items()
            if path.rstrip("/") not in made_by_tools} == {}
