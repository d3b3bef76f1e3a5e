"""The version rules of tools/ on made-up package trees (run by `nox -s compat`).

Each test writes a small packages/ tree (and, where tags matter, a git repository) and checks the
verdict against what the rule says by hand: which needle-core builds exist, which a claim admits,
which claims are refused and why.
"""
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bump_version  # noqa: E402
import check_compat  # noqa: E402
import release_facts  # noqa: E402

HATCH = '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'


def write_package(root, name, module, version, deps=(), changelog=None, backends=None, protocol=None):
    """A package directory with pyproject.toml, version.py and CHANGELOG.md (``changelog`` text or a default)."""
    path = root / "packages" / name
    (path / "src" / module).mkdir(parents=True, exist_ok=True)
    lines = [HATCH, "[project]", f'name = "{name}"', 'dynamic = ["version"]',
             "dependencies = [" + ", ".join(f'"{d}"' for d in deps) + "]", ""]
    if backends:
        lines += ['[project.entry-points."needle.backends"]'] + [f'{b} = "{module}._plugin"' for b in backends] + [""]
    if protocol is not None:
        lines += ['[project.entry-points."needle.protocol"]'] + [f'{b} = "{module}.version:SUPPORTED_PROTOCOL"'
                                                                 for b in backends] + [""]
    lines += ["[tool.hatch.version]", f'path = "src/{module}/version.py"', ""]
    (path / "pyproject.toml").write_text("\n".join(lines))
    text = f'__version__ = "{version}"\n' + (f"SUPPORTED_PROTOCOL = {protocol!r}\n" if protocol is not None else "")
    (path / "src" / module / "version.py").write_text(text)
    (path / "CHANGELOG.md").write_text(changelog if changelog is not None else f"# Changelog\n\n## {version}\n- x\n")
    return path


def write_core(root, version, protocol=1, spoken=None):
    path = write_package(root, "needle-core", "needle", version, deps=["numpy>=1.22"])
    (path / "src/needle/backend_ndarray").mkdir(exist_ok=True)
    text = f"PROTOCOL_VERSION = {protocol}\n" + (f"SUPPORTED_PROTOCOLS = {spoken!r}\n" if spoken else "")
    (path / "src/needle/backend_ndarray/protocol.py").write_text(text)
    return path


def git(root, *args):
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                   capture_output=True)


@pytest.fixture
def tree(tmp_path):
    write_core(tmp_path, "0.1.0")
    (tmp_path / "packages" / "_template").mkdir()  # templates are skipped
    return tmp_path


def problems_of(root):
    return check_compat.matrix(root)[1]


def test_a_true_claim_is_tested_with_the_tree_core(tree):
    write_package(tree, "needle-nn", "needle/nn", "0.1.0", deps=["needle-core>=0.1,<0.2"])
    entries, problems = check_compat.matrix(tree)
    assert problems == []
    assert [(e.package.name, [(str(c.version), c.tag) for c in e.cores]) for e in entries] == \
        [("needle-nn", [("0.1.0", None)])]


@pytest.mark.parametrize("claim, needle", [
    ("needle-core>=0.0.1,<0.2", "no needle-core 0.0.1 to test it against"),
    ("needle-core>=0.1", "no upper bound"),
    ("needle-core<0.2", "no lower bound"),
    ("needle-core>=0.2,<0.3", "excludes this tree's needle-core 0.1.0"),
    ("needle-core>=0.2,<0.3", "which no available needle-core build satisfies"),
])
def test_false_or_untestable_claims_are_refused(tree, claim, needle):
    write_package(tree, "needle-nn", "needle/nn", "0.1.0", deps=[claim])
    problems = problems_of(tree)
    assert any(needle in p and p.startswith("needle-nn:") for p in problems), problems


def test_changelog_must_describe_the_current_version(tree):
    write_package(tree, "needle-nn", "needle/nn", "0.1.0", deps=["needle-core>=0.1,<0.2"],
                  changelog="# Changelog\n\n## 0.0.9\n- old\n")
    assert any("no '## 0.1.0' section" in p for p in problems_of(tree))


def test_changelog_headings_forms(tree):
    pkg = release_facts.Package(write_package(
        tree, "needle-nn", "needle/nn", "0.1.0",
        changelog="# Changelog\n\n## [0.3.0] - 2026-05-01\n- a\n- b\n\n## v0.2.0 (unreleased)\n\n## Notes\ntext\n"))
    sections = pkg.changelog_sections()
    assert sorted(sections) == [Version("0.2.0"), Version("0.3.0")]
    assert (sections[Version("0.3.0")].entries, sections[Version("0.3.0")].unreleased) == (2, False)
    assert (sections[Version("0.2.0")].entries, sections[Version("0.2.0")].unreleased) == (0, True)


def test_tags_give_the_oldest_and_the_tree_the_newest(tree):
    write_package(tree, "needle-nn", "needle/nn", "0.1.0", deps=["needle-core>=0.1,<0.3"])
    git(tree, "init", "-q")
    git(tree, "add", ".")
    git(tree, "commit", "-q", "-m", "0.1.0")
    git(tree, "tag", "needle-core-v0.1.0")
    write_core(tree, "0.2.0")
    entries, problems = check_compat.matrix(tree)
    assert problems == []
    assert [(str(c.version), c.tag) for c in entries[0].cores] == [("0.1.0", "needle-core-v0.1.0"), ("0.2.0", None)]


def test_a_tag_that_disagrees_with_its_version_file_is_an_error(tree):
    git(tree, "init", "-q")
    git(tree, "add", ".")
    git(tree, "commit", "-q", "-m", "0.1.0")
    git(tree, "tag", "needle-core-v0.0.5")
    with pytest.raises(ValueError, match="needle-core-v0.0.5"):
        release_facts.core_builds(tree)


def test_backend_protocol_claim_must_cover_every_admitted_core(tree):
    write_package(tree, "needle-cpu", "needle_cpu", "0.1.0", deps=["needle-core>=0.1,<0.3"], backends=["cpu"],
                  protocol=(1, 1))
    git(tree, "init", "-q")
    git(tree, "add", ".")
    git(tree, "commit", "-q", "-m", "0.1.0")
    git(tree, "tag", "needle-core-v0.1.0")
    write_core(tree, "0.2.0", protocol=2)  # the newest admitted core speaks protocol 2
    problems = problems_of(tree)
    assert any("implements protocol 1..1" in p and "needle-core 0.2.0" in p for p in problems), problems
    assert not any("needle-core 0.1.0" in p for p in problems)


def test_a_core_that_still_drives_protocol_1_admits_a_protocol_1_backend(tree):
    # needle-core 0.2 speaks protocol 2 and still drives protocol-1 backends (SUPPORTED_PROTOCOLS = (1, 2)).
    write_core(tree, "0.2.0", protocol=2, spoken=(1, 2))
    write_package(tree, "needle-old", "needle_old", "0.1.1", deps=["needle-core>=0.2,<0.3"], backends=["old"],
                  protocol=(1, 1))
    write_package(tree, "needle-new", "needle_new", "0.2.0", deps=["needle-core>=0.2,<0.3"], backends=["new"],
                  protocol=(2, 2))
    entries, problems = check_compat.matrix(tree)
    assert problems == []
    assert [c.protocols for c in entries[0].cores] == [(1, 2)]
    write_package(tree, "needle-future", "needle_future", "0.1.0", deps=["needle-core>=0.2,<0.3"], backends=["f"],
                  protocol=(3, 3))
    assert [p for p in problems_of(tree) if "needle-future" in p] == [
        "needle-future: backend 'f' implements protocol 3..3, but needle-core 0.2.0 (working tree), admitted by its "
        "range, speaks protocol 1, 2; narrow the needle-core range or support that protocol"]


def test_backend_without_protocol_claim_is_refused(tree):
    write_package(tree, "needle-cpu", "needle_cpu", "0.1.0", deps=["needle-core>=0.1,<0.2"], backends=["cpu"])
    assert any("backend 'cpu' states no protocol range" in p for p in problems_of(tree))


def test_bump_refuses_without_changelog_section_then_writes_one_line(tree):
    path = write_package(tree, "needle-nn", "needle/nn", "0.1.0", deps=["needle-core>=0.1,<0.2"])
    with pytest.raises(bump_version.Refused, match="no '## 0.2.0' section"):
        bump_version.bump("needle-nn", "0.2.0", root=tree)
    assert (path / "src/needle/nn/version.py").read_text() == '__version__ = "0.1.0"\n'
    (path / "CHANGELOG.md").write_text("# Changelog\n\n## [0.2.0]\n- new\n\n## 0.1.0\n- x\n")
    with pytest.raises(bump_version.Refused, match="must be greater"):
        bump_version.bump("needle-nn", "0.1.0", root=tree)
    bump_version.bump("needle-nn", "0.2.0", root=tree)
    assert (path / "src/needle/nn/version.py").read_text() == '__version__ = "0.2.0"\n'


def test_core_bump_lists_dependents_left_behind(tree):
    write_package(tree, "needle-nn", "needle/nn", "0.1.0", deps=["needle-core>=0.1,<0.2"])
    write_package(tree, "needle-data", "needle/data", "0.1.0", deps=["needle-core>=0.1,<0.3"])
    assert bump_version.outdated_dependents(Version("0.2.0"), root=tree) == ["needle-nn (needle-core<0.2,>=0.1)"]


def test_release_check_refuses_an_unreleased_section(tree):
    write_package(tree, "needle-nn", "needle/nn", "0.1.0", changelog="# Changelog\n\n## 0.1.0 (unreleased)\n- x\n")
    with pytest.raises(bump_version.Refused, match="marked unreleased"):
        bump_version.release_check("needle-nn", root=tree)


@pytest.mark.parametrize("claim, needle", [
    ("needle-nn>=0.1", "claims needle-nn>=0.1 with no upper bound"),
    ("needle-nn<0.2", "claims needle-nn<0.2 with no lower bound"),
    ("needle-nn>=0.2,<0.3", "excludes this tree's needle-nn 0.1.0"),
])
def test_requirements_on_sibling_packages_follow_the_same_rules(tree, claim, needle):
    write_package(tree, "needle-nn", "needle/nn", "0.1.0", deps=["needle-core>=0.1,<0.2"])
    write_package(tree, "needle-dist", "needle/distributed", "0.1.0", deps=["needle-core>=0.1,<0.2", claim])
    problems = problems_of(tree)
    assert any(p.startswith("needle-dist:") and needle in p for p in problems), problems


def test_a_bounded_sibling_range_that_admits_the_tree_passes(tree):
    write_package(tree, "needle-nn", "needle/nn", "0.1.0", deps=["needle-core>=0.1,<0.2"])
    write_package(tree, "needle-dist", "needle/distributed", "0.1.0",
                  deps=["needle-core>=0.1,<0.2", "needle-nn>=0.1,<0.2"])
    assert problems_of(tree) == []


def test_the_templates_in_this_repository_follow_the_rules():
    # Templates are skipped by the matrix (nothing to build), but a copy becomes a real package:
    # its claims must already pass the rules.
    builds = release_facts.core_builds()
    tree_core = release_facts.package(release_facts.CORE).version
    templates = sorted(p for p in release_facts.PACKAGES.iterdir() if p.name.startswith("_template"))
    assert templates, "no packages/_template* found"
    for path in templates:
        pkg = release_facts.Package(path)
        entry, problems = check_compat.check_core_range(pkg, builds, tree_core)
        assert entry is not None, f"{path.name} states no needle-core range"
        problems += check_compat.check_protocol(pkg, entry.cores) + check_compat.check_changelog(pkg)
        assert problems == [], problems
