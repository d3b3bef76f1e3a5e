"""Print non-blank, non-comment source lines per package (tinygrad's sz.py idea)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def count(path):
    lines = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            lines += 1
    return lines


def main():
    rows = []
    for pkg in sorted((ROOT / "packages").iterdir()):
        src = pkg / "src"
        if not src.is_dir():
            continue
        py = sum(count(f) for f in src.rglob("*.py"))
        cc = sum(count(f) for ext in ("*.cc", "*.cpp", "*.h", "*.hpp") for f in src.rglob(ext))
        tests = sum(count(f) for f in (pkg / "tests").rglob("*.py")) if (pkg / "tests").is_dir() else 0
        rows.append((pkg.name, py, cc, tests))
    print(f"{'package':<16}{'python':>8}{'c++':>8}{'tests':>8}")
    for name, py, cc, tests in rows:
        print(f"{name:<16}{py:>8}{cc:>8}{tests:>8}")
    print(f"{'total':<16}{sum(r[1] for r in rows):>8}{sum(r[2] for r in rows):>8}{sum(r[3] for r in rows):>8}")


if __name__ == "__main__":
    main()
