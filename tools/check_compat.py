"""Check every package's declared needle-core range and backend-protocol claim; plan the compat matrix.

    python tools/check_compat.py            the matrix (package x oldest/newest needle-core it claims)
    python tools/check_compat.py --json     the same for machines

Exit status 1 when a claim cannot be true or cannot be tested. The rules:

- every package depending on needle-core states a range with a lower and an upper bound
  (``needle-core>=0.1,<0.2``): an open upper bound claims every future release;
- the lower bound names a needle-core that exists (a ``needle-core-v*`` git tag or the working tree):
  ``>=0.0.1`` when 0.0.1 never existed claims something nobody can test;
- the range admits the working tree's needle-core (the tree's packages are installed and tested together);
- a backend package names, for each backend, the protocol versions it implements: an entry point
  ``[project.entry-points."needle.protocol"] NAME = "pkg.version:SUPPORTED_PROTOCOL"`` whose value is
  ``(oldest, newest)``; every needle-core its range admits must speak a protocol inside that pair (a core
  speaks every version of its ``SUPPORTED_PROTOCOLS``: needle-core 0.2 drives protocol-1 backends too);
- a requirement on another package of this tree (needle-dist on needle-nn and needle-data) has both
  bounds too and admits the version in this tree;
- each package's CHANGELOG.md has a section for its current version.

``nox -s compat`` then installs each package with the oldest and the newest needle-core build it claims,
in fresh virtual environments, and runs the package's tests there.
"""
import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from packaging.version import Version  # noqa: E402
from release_facts import CORE, ROOT, Package, core_builds, package, packages  # noqa: E402

_LOWER = (">=", "~=", "==", "===")  # operators whose version is the lowest admitted one


@dataclass
class Entry:
    """One package of the matrix: its claim and the needle-core builds it is tested against."""
    package: Package
    claim: str
    cores: list  # [CoreBuild]: the oldest and the newest admitted (one when they coincide)


def check_changelog(pkg):
    """Problems with ``pkg``'s CHANGELOG.md for its current version (a list of sentences)."""
    if not pkg.changelog.exists():
        return [f"{pkg.name}: no CHANGELOG.md"]
    section = pkg.changelog_sections().get(pkg.version)
    if section is None:
        return [f"{pkg.name}: CHANGELOG.md has no '## {pkg.version}' section for the version in "
                f"{pkg.version_file.relative_to(pkg.path)}"]
    if not section.entries:
        return [f"{pkg.name}: CHANGELOG.md section '{section.heading}' is empty"]
    return []


def _bound_problems(pkg, claim, spec):
    """Sentences for a missing lower or upper bound in ``claim`` (a requirement's ``spec``)."""
    problems = []
    if not [s for s in spec if s.operator in _LOWER or s.operator == ">"]:
        problems.append(f"{pkg.name}: claims {claim} with no lower bound; state the oldest version it is "
                        "tested with (>=X)")
    if not [s for s in spec if s.operator in ("<", "<=", "==", "===", "~=")]:
        problems.append(f"{pkg.name}: claims {claim} with no upper bound, i.e. every future release; add <NEXT "
                        "(e.g. <0.2)")
    return problems


def check_core_range(pkg, builds, tree_version):
    """``(entry, problems)`` for ``pkg``'s needle-core requirement against the available ``builds``."""
    req = pkg.requirement(CORE)
    if req is None:
        return None, []
    spec, claim = req.specifier, f"{CORE}{req.specifier}"
    known = ", ".join(f"{v} ({b.source})" for v, b in builds.items())
    problems = _bound_problems(pkg, claim, spec)
    for s in [s for s in spec if s.operator in _LOWER or s.operator == ">"]:
        if s.operator != ">" and not s.version.endswith(".*") and not any(v == Version(s.version) for v in builds):
            problems.append(f"{pkg.name}: claims {claim}, but there is no needle-core {s.version} to test it "
                            f"against (known builds: {known}); raise the lower bound to a version that exists")
    admitted = [b for v, b in builds.items() if spec.contains(v, prereleases=True)]
    if not admitted:
        problems.append(f"{pkg.name}: claims {claim}, which no available needle-core build satisfies "
                        f"(known builds: {known})")
    if not spec.contains(tree_version, prereleases=True):
        problems.append(f"{pkg.name}: claims {claim}, which excludes this tree's needle-core {tree_version}; "
                        "the packages of one tree must install together")
    cores = [admitted[0], admitted[-1]] if len(admitted) > 1 else admitted
    return Entry(pkg, claim, cores), problems


def check_sibling_ranges(pkg, tree):
    """Problems with ``pkg``'s requirements on the other tree packages but needle-core (``tree``: {name: Package}).

    needle-dist needs needle-nn and needle-data: the same rule as for needle-core (both bounds), and the
    range must admit the version in this tree, since the tree's packages are installed and tested together.
    """
    problems = []
    for name, other in tree.items():
        req = pkg.requirement(name) if name not in (CORE, pkg.name) else None
        if req is None:
            continue
        claim = f"{name}{req.specifier}"
        problems += _bound_problems(pkg, claim, req.specifier)
        if not req.specifier.contains(other.version, prereleases=True):
            problems.append(f"{pkg.name}: claims {claim}, which excludes this tree's {name} {other.version}; "
                            "the packages of one tree must install together")
    return problems


def check_protocol(pkg, cores):
    """Problems with the backend-protocol claims of ``pkg`` (a backend package) for the ``cores`` it is tested with."""
    problems = []
    claims = pkg.protocol_claims()
    for backend in pkg.backends:
        claim = claims.get(backend)
        if claim is None:
            problems.append(f"{pkg.name}: backend {backend!r} states no protocol range; add "
                            f"[project.entry-points.\"needle.protocol\"] {backend} = \"<module>:SUPPORTED_PROTOCOL\" "
                            "and SUPPORTED_PROTOCOL = (oldest, newest) in that module")
            continue
        if not (isinstance(claim, tuple) and len(claim) == 2 and all(isinstance(x, int) for x in claim)
                and claim[0] <= claim[1]):
            problems.append(f"{pkg.name}: backend {backend!r} SUPPORTED_PROTOCOL must be a pair of ints "
                            f"(oldest, newest), got {claim!r}")
            continue
        for core in cores:
            if not any(claim[0] <= v <= claim[1] for v in core.protocols):
                spoken = ", ".join(map(str, core.protocols))
                problems.append(f"{pkg.name}: backend {backend!r} implements protocol {claim[0]}..{claim[1]}, but "
                                f"needle-core {core.version} ({core.source}), admitted by its range, speaks protocol "
                                f"{spoken}; narrow the needle-core range or support that protocol")
    return problems


def matrix(root=ROOT):
    """``(entries, problems)`` for every package under packages/ (templates skipped)."""
    builds = core_builds(root)
    tree_version = package(CORE, root).version
    entries, problems = [], []
    tree = {p.name: p for p in packages(root)}
    for pkg in tree.values():
        problems += check_changelog(pkg)
        problems += check_sibling_ranges(pkg, tree)
        entry, found = check_core_range(pkg, builds, tree_version)
        problems += found
        if entry is not None:
            problems += check_protocol(pkg, entry.cores)
            entries.append(entry)
    return entries, problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the matrix and problems as JSON")
    args = parser.parse_args(argv)
    entries, problems = matrix()
    if args.json:
        print(json.dumps({"matrix": [{"package": e.package.name, "version": str(e.package.version), "claim": e.claim,
                                      "protocol": e.package.protocol_claims(),
                                      "cores": [{"version": str(c.version), "source": c.source,
                                                 "protocol": c.protocol, "protocols": list(c.protocols)}
                                                for c in e.cores]} for e in entries],
                          "problems": problems}, indent=2))
    else:
        builds = core_builds()
        print("needle-core builds: " + ", ".join(f"{v} ({b.source}, protocol {', '.join(map(str, b.protocols))})"
                                                 for v, b in builds.items()))
        for e in entries:
            tested = " and ".join(str(c.version) for c in e.cores) or "nothing"
            protocol = "".join(f"; {b} protocol {lo}..{hi}" for b, (lo, hi) in e.package.protocol_claims().items()
                               if isinstance(e.package.protocol_claims()[b], tuple))
            print(f"  {e.package.name} {e.package.version}: {e.claim}{protocol} -> tested with {tested}")
        for p in problems:
            print(f"PROBLEM: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
