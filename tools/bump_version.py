"""Set one package's version, refusing when its CHANGELOG.md does not describe that version.

    python tools/bump_version.py needle-nn 0.2.0      (or: nox -s bump -- needle-nn 0.2.0)
    python tools/bump_version.py --check needle-nn     is the current version releasable?

The version lives in one place per package (the version.py its pyproject.toml names); this rewrites
that line only. It refuses when:
- the new version is not a valid version, or not greater than the current one;
- CHANGELOG.md has no ``## 0.2.0`` (or ``## [0.2.0]``) heading with at least one line under it.
``--check`` refuses also a section marked "unreleased" and a version whose release tag already exists
on another commit. After a needle-core bump it lists the packages whose needle-core range excludes the
new version: they need a release too (``nox -s compat`` fails until they admit it).
"""
import argparse
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from packaging.version import InvalidVersion, Version  # noqa: E402
from release_facts import CORE, ROOT, package, packages, tag_name  # noqa: E402


class Refused(Exception):
    """The bump or release check cannot go ahead; the message says why and what to do."""


def changelog_problem(pkg, version, release=False):
    """Why ``pkg``'s CHANGELOG.md does not allow releasing ``version`` (None when it does)."""
    rel = pkg.changelog.relative_to(pkg.path.parent.parent)
    if not pkg.changelog.exists():
        return f"{rel} does not exist; create it with a '## {version}' section listing the changes"
    section = pkg.changelog_sections().get(version)
    if section is None:
        return f"{rel} has no '## {version}' section; add one listing what changed in {pkg.name} {version}"
    if not section.entries:
        return f"{rel}: section '{section.heading}' is empty; list what changed"
    if release and section.unreleased:
        return f"{rel}: section '{section.heading}' is marked unreleased; remove the marker when releasing"
    return None


def bump(name, new, root=ROOT):
    """Write ``new`` into ``name``'s version file; returns (package, old version)."""
    pkg = package(name, root)
    try:
        version = Version(new)
    except InvalidVersion:
        raise Refused(f"{new!r} is not a valid version (PEP 440), e.g. 0.2.0") from None
    old = pkg.version
    if version <= old:
        raise Refused(f"{pkg.name} is at {old}; the new version {version} must be greater")
    problem = changelog_problem(pkg, version)
    if problem:
        raise Refused(problem)
    path = pkg.version_file
    text = path.read_text(encoding="utf-8")
    new_text, count = re.subn(r"""^(__version__\s*=\s*)(["'])[^"']*\2""", rf"\g<1>\g<2>{version}\g<2>", text,
                              count=1, flags=re.M)
    if count != 1:
        raise Refused(f"{path}: no __version__ line to update")
    path.write_text(new_text, encoding="utf-8")
    return pkg, old


def outdated_dependents(core_version, root=ROOT):
    """Packages whose needle-core range excludes ``core_version`` (each as 'name (claim)')."""
    out = []
    for pkg in packages(root):
        req = pkg.requirement(CORE)
        if req is not None and not req.specifier.contains(core_version, prereleases=True):
            out.append(f"{pkg.name} ({CORE}{req.specifier})")
    return out


def _git(root, *args):
    """git's stdout, or "" when git or the revision is missing (an unpacked sdist has no history)."""
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def release_check(name, root=ROOT):
    """Raise Refused unless ``name``'s current version is ready to be tagged and built."""
    pkg = package(name, root)
    problem = changelog_problem(pkg, pkg.version, release=True)
    if problem:
        raise Refused(problem)
    tag = tag_name(pkg.name, pkg.version)
    tagged, head = _git(root, "rev-list", "-n", "1", tag), _git(root, "rev-parse", "HEAD")
    if tagged and tagged != head:
        raise Refused(f"tag {tag} already marks another commit ({tagged[:10]}): {pkg.name} {pkg.version} was "
                      "released; bump the version first")
    return pkg, tag


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="check the current version can be released")
    parser.add_argument("package", help="distribution or directory name under packages/, e.g. needle-nn")
    parser.add_argument("version", nargs="?", help="the new version, e.g. 0.2.0")
    args = parser.parse_args(argv)
    try:
        if args.check:
            if args.version:
                parser.error("--check takes a package only")
            pkg, tag = release_check(args.package)
            print(f"{pkg.name} {pkg.version} is releasable: changelog section present; tag it with "
                  f"`git tag {tag}` once the build is checked")
            return 0
        if not args.version:
            parser.error("give the new version, e.g. bump_version.py needle-nn 0.2.0")
        pkg, old = bump(args.package, args.version)
    except (Refused, KeyError) as exc:
        print(f"refused: {exc.args[0]}", file=sys.stderr)
        return 1
    print(f"{pkg.name}: {old} -> {pkg.version} in {pkg.version_file.relative_to(ROOT)}")
    if pkg.name == CORE:
        for line in outdated_dependents(pkg.version):
            print(f"note: {line} does not admit needle-core {pkg.version}; widen its range after testing "
                  "(nox -s compat) and release it too")
    print(f"next: commit, `nox -s release -- {pkg.name}` (changelog, build, metadata), then `git tag "
          f"{tag_name(pkg.name, pkg.version)}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
