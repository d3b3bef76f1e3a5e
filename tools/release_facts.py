"""Release facts of the packages under packages/: versions, changelogs, needle-core ranges, protocol claims.

Shared by tools/bump_version.py, tools/check_compat.py and the noxfile's build/compat/bump sessions.
It reads files (and git tags) only; it never imports the packages. Needs the standard library and
``packaging`` (nox itself depends on it).
"""
import ast
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version

try:
    import tomllib
except ImportError:  # Python 3.10: the same parser from PyPI (nox installs it there)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ROOT / "packages"
CORE = "needle-core"
PROTOCOL_FILE = "src/needle/backend_ndarray/protocol.py"  # inside needle-core
BACKENDS_GROUP = "needle.backends"
PROTOCOL_GROUP = "needle.protocol"  # backend name -> "module:ATTR", ATTR = (oldest, newest) protocol version
_HEADING = re.compile(r"^##\s+\[?v?(?P<version>\d[^\]\s]*)\]?(?P<rest>.*)$")
_VERSION_LINE = re.compile(r"""^__version__\s*=\s*["'](?P<version>[^"']+)["']""", re.M)


def tag_name(dist, version):
    """The git tag that marks a release: ``needle-nn-v0.2.0``."""
    return f"{dist}-v{version}"


def _literal(source, name):
    """The literal assigned to ``name`` at module level in Python ``source`` (None when absent)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    return None


@dataclass(frozen=True)
class ChangelogSection:
    version: Version
    heading: str
    entries: int  # non-blank lines under the heading
    unreleased: bool


class Package:
    """One directory under packages/ (its pyproject.toml, version.py and CHANGELOG.md)."""

    def __init__(self, path):
        self.path = Path(path)
        self.pyproject = tomllib.loads((self.path / "pyproject.toml").read_text(encoding="utf-8"))
        self.name = self.pyproject["project"]["name"]

    def __repr__(self):
        return f"Package({self.name})"

    @property
    def version_file(self):
        """The one file holding the version: what the build backend reads."""
        tool = self.pyproject.get("tool", {})
        rel = (tool.get("hatch", {}).get("version", {}).get("path")
               or tool.get("scikit-build", {}).get("metadata", {}).get("version", {}).get("input"))
        if not rel:
            raise ValueError(f"{self.name}: pyproject.toml names no version file "
                             "([tool.hatch.version] path or [tool.scikit-build] metadata.version.input)")
        return self.path / rel

    @property
    def version(self):
        text = self.version_file.read_text(encoding="utf-8")
        match = _VERSION_LINE.search(text)
        if not match:
            raise ValueError(f"{self.version_file}: no line like __version__ = \"0.1.0\"")
        return Version(match["version"])

    @property
    def changelog(self):
        return self.path / "CHANGELOG.md"

    def changelog_sections(self):
        """``{Version: ChangelogSection}`` for every ``## X.Y.Z`` / ``## [X.Y.Z]`` heading."""
        if not self.changelog.exists():
            return {}
        sections, current, lines = {}, None, []

        def close():
            if current is not None:
                version, heading, rest = current
                sections[version] = ChangelogSection(version, heading, sum(1 for s in lines if s.strip()),
                                                     "unreleased" in rest.lower())

        for line in self.changelog.read_text(encoding="utf-8").splitlines():
            if line.startswith("## "):
                close()
                current, lines = None, []
                match = _HEADING.match(line)
                if match:
                    try:
                        current = (Version(match["version"]), line, match["rest"])
                    except InvalidVersion:
                        current = None
            elif current is not None:
                lines.append(line)
        close()
        return sections

    def requirement(self, dist):
        """This package's ``[project] dependencies`` entry on ``dist`` (a Requirement), or None."""
        for line in self.pyproject["project"].get("dependencies", []):
            req = Requirement(line)
            if req.name.lower().replace("_", "-") == dist:
                return req
        return None

    def entry_points(self, group):
        return dict(self.pyproject["project"].get("entry-points", {}).get(group, {}))

    @property
    def backends(self):
        """Backend names this package registers (entry point group ``needle.backends``)."""
        return sorted(self.entry_points(BACKENDS_GROUP))

    def protocol_claims(self):
        """``{backend: (oldest, newest)}`` read from the files the ``needle.protocol`` entry points name."""
        claims = {}
        for backend, target in self.entry_points(PROTOCOL_GROUP).items():
            module, _, attr = target.partition(":")
            source = self.path / "src" / (module.replace(".", "/") + ".py")
            value = _literal(source.read_text(encoding="utf-8"), attr) if source.exists() and attr else None
            claims[backend] = value
        return claims


def packages(root=ROOT):
    """Every real package under packages/ (directories starting with ``_`` are templates)."""
    base = Path(root) / "packages"
    return [Package(p) for p in sorted(base.iterdir())
            if p.is_dir() and not p.name.startswith("_") and (p / "pyproject.toml").exists()]


def package(name, root=ROOT):
    for pkg in packages(root):
        if pkg.name == name or pkg.path.name == name:
            return pkg
    known = ", ".join(p.name for p in packages(root))
    raise KeyError(f"no package {name!r} under packages/ (known: {known})")


def _git(root, *args):
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


@dataclass(frozen=True)
class CoreBuild:
    """A needle-core version that can be built: from a release tag or from the working tree."""
    version: Version
    tag: str | None  # None: the working tree
    protocol: int  # PROTOCOL_VERSION: the newest protocol it speaks
    protocols: tuple = ()  # every protocol it drives (SUPPORTED_PROTOCOLS; just ``protocol`` where absent)

    def __post_init__(self):
        if not self.protocols:
            object.__setattr__(self, "protocols", (self.protocol,))

    @property
    def source(self):
        return f"tag {self.tag}" if self.tag else "working tree"


def _core_build(version, tag, protocol_source):
    """A CoreBuild from the text of its protocol.py (needle-core 0.2 drives protocols 1 and 2)."""
    newest = _literal(protocol_source, "PROTOCOL_VERSION")
    spoken = _literal(protocol_source, "SUPPORTED_PROTOCOLS")
    return CoreBuild(version, tag, newest, tuple(spoken) if spoken else (newest,))


def core_builds(root=ROOT):
    """``{Version: CoreBuild}``: every ``needle-core-v*`` tag, plus the working tree's version.

    A tag is a release: where a tag and the tree carry the same version, the tag wins (it is what users
    installed). A tag whose version.py disagrees with its name is an error, not silently skipped.
    """
    core = package(CORE, root)
    rel_version = core.version_file.relative_to(root).as_posix()
    rel_protocol = (core.path / PROTOCOL_FILE).relative_to(root).as_posix()
    tree = _core_build(core.version, None, (core.path / PROTOCOL_FILE).read_text(encoding="utf-8"))
    builds = {tree.version: tree}
    try:
        tags = _git(root, "tag", "--list", tag_name(CORE, "*")).split()
    except (OSError, subprocess.CalledProcessError):
        return builds  # not a git checkout (an unpacked sdist): the tree is all there is
    for tag in tags:
        named = Version(tag[len(tag_name(CORE, "")):])
        found = _VERSION_LINE.search(_git(root, "show", f"{tag}:{rel_version}"))
        if not found or Version(found["version"]) != named:
            raise ValueError(f"tag {tag}: {rel_version} there says {found and found['version']!r}, not {named}")
        builds[named] = _core_build(named, tag, _git(root, "show", f"{tag}:{rel_protocol}"))
    return dict(sorted(builds.items()))
