"""tools/line_counts.py: counts lines by hand-made files and fails past a budget (run by `nox -s compat`)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import line_counts  # noqa: E402


def make_tree(root):
    src = root / "packages" / "needle-x" / "src" / "needle_x"
    src.mkdir(parents=True)
    (src / "a.py").write_text("# a comment\n\nx = 1\ny = 2\n")  # 2 lines
    (src / "k.cc").write_text("// comment\nint f() {\n  return 1;\n}\n")  # 3 lines
    (root / "packages" / "needle-x" / "tests").mkdir()
    (root / "packages" / "needle-x" / "tests" / "test_a.py").write_text("def test():\n    pass\n")


def test_counts_skip_blank_and_comment_lines(tmp_path, monkeypatch):
    make_tree(tmp_path)
    monkeypatch.setattr(line_counts, "ROOT", tmp_path)
    assert line_counts.package_counts() == [("needle-x", 2, 3, 2)]


def test_a_package_over_its_budget_or_without_one_fails(tmp_path, monkeypatch, capsys):
    make_tree(tmp_path)
    monkeypatch.setattr(line_counts, "ROOT", tmp_path)
    monkeypatch.setattr(line_counts, "BUDGETS", {"needle-x": 5})
    assert line_counts.main() == 0
    monkeypatch.setattr(line_counts, "BUDGETS", {"needle-x": 4})
    assert line_counts.main() == 1
    assert "OVER BUDGET by 1" in capsys.readouterr().out
    monkeypatch.setattr(line_counts, "BUDGETS", {})
    assert line_counts.main() == 1
    assert "NO BUDGET" in capsys.readouterr().out

