"""The install lines of the docs: what `nox -s install_docs` runs, read by its extractor (tools/release_sessions.py).

Every `pip install` of README.md and examples/README.md is found, and none names a needle package by its
index name without the local wheelhouse (the packages are not on an index: such a line fails on a fresh
machine). Running them is the nox session's job.
"""
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NEEDLE_PACKAGES = ("needle-core", "needle-nn", "needle-data", "needle-cpu", "needle-cuda", "needle-dist")


@pytest.fixture(scope="module")
def release_sessions():
    """tools/release_sessions.py, which holds the body of `nox -s install_docs`."""
    pytest.importorskip("nox")
    spec = importlib.util.spec_from_file_location("needle_release_sessions", ROOT / "tools" / "release_sessions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_extractor_reads_fenced_lines_and_inline_spans(release_sessions):
    text = ("Run `pip install ./a b` first.\n| x | `pip install ./c` |\n"
            "```bash\npip install ./d \"./e[x]\"     # a comment\npython -m pip install nox\n```\n"
            "`pip install ./a b` again\n")
    expected = ["pip install ./a b", "pip install ./c", 'pip install ./d "./e[x]"']
    assert release_sessions._install_commands(text) == expected


def test_every_install_line_of_the_docs_is_run_and_none_needs_an_index(release_sessions):
    for doc in release_sessions.INSTALL_DOCS:
        text = (ROOT / doc).read_text()
        commands = release_sessions._install_commands(text)
        # Every "pip install " in a code span or block is one of them (the newcomer commands aside).
        mentioned = len(re.findall(r"(?<!-m )pip install [^`\n]", text))
        assert mentioned and len(set(commands)) <= mentioned, doc
        for command in commands:
            words = command.replace('"', " ").split()
            named = [w for w in words if w.split("[")[0] in NEEDLE_PACKAGES]
            assert not named or "--find-links" in words, f"{doc}: {command!r} needs a package index for {named}"
            for path in (w for w in words if w.startswith("./")):
                assert (ROOT / path.split("[")[0]).is_dir(), f"{doc}: {command!r}: no folder {path}"
    readme = release_sessions._install_commands((ROOT / "README.md").read_text())
    assert any("--find-links dist/wheels" in c for c in readme)
    assert "pip install ./packages/needle-core ./packages/needle-nn ./packages/needle-data ./packages/needle-dist" \
        in readme  # needle-dist never alone: its needle dependencies are not on an index


def test_the_newcomer_commands_stay_as_they_are():
    readme = (ROOT / "README.md").read_text()
    assert 'python -m pip install "nox>=2024.3" && python -m nox -s demo\n' in readme
    assert 'python -m pip install "nox>=2024.3" && python -m nox\n' in readme
