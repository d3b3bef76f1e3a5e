"""Non-blank, non-comment source lines per package, checked against a budget (tinygrad's sz.py and its
CI's MAX_LINE_COUNT). `nox -s lint` runs it: a package whose source (Python + C++ under src/) grows past
its budget fails lint. Raising a budget is a decision to write down in the commit that does it."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Source lines (Python + C++ under src/) each package may have: its count when the budgets were set
#: (issue 16) plus about 12% headroom. Tests are counted and printed, not budgeted.
BUDGETS = {
    "_template": 50,
    "_template-backend": 230,
    "needle-core": 11200,
    "needle-cpu": 5150,
    "needle-cuda": 970,
    "needle-data": 730,
    "needle-dist": 1200,
    "needle-nn": 1960,
}


def count(path):
    """Lines of ``path`` that are neither blank nor only a comment."""
    lines = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "//")):
            lines += 1
    return lines


def package_counts():
    """``[(package, python, c++, tests)]`` for every package with a src/ folder."""
    rows = []
    for pkg in sorted((ROOT / "packages").iterdir()):
        src = pkg / "src"
        if not src.is_dir():
            continue
        py = sum(count(f) for f in src.rglob("*.py"))
        cc = sum(count(f) for ext in ("*.cc", "*.cpp", "*.h", "*.hpp") for f in src.rglob(ext))
        tests = sum(count(f) for f in (pkg / "tests").rglob("*.py")) if (pkg / "tests").is_dir() else 0
        rows.append((pkg.name, py, cc, tests))
    return rows


def main():
    """Print the counts with each budget; the exit status is 1 when a package is over (or has none)."""
    rows = package_counts()
    print(f"{'package':<18}{'python':>8}{'c++':>8}{'source':>8}{'budget':>8}{'tests':>8}")
    over = []
    for name, py, cc, tests in rows:
        budget = BUDGETS.get(name)
        flag = ""
        if budget is None:
            flag = "  NO BUDGET (add one to tools/line_counts.py)"
        elif py + cc > budget:
            flag = f"  OVER BUDGET by {py + cc - budget}"
        if flag:
            over.append(name)
        print(f"{name:<18}{py:>8}{cc:>8}{py + cc:>8}{budget or '-':>8}{tests:>8}{flag}")
    print(f"{'total':<18}{sum(r[1] for r in rows):>8}{sum(r[2] for r in rows):>8}"
          f"{sum(r[1] + r[2] for r in rows):>8}{sum(BUDGETS.values()):>8}{sum(r[3] for r in rows):>8}")
    if over:
        print(f"line budget exceeded: {', '.join(over)} (tools/line_counts.py BUDGETS)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
