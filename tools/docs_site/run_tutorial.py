"""Execute one tutorial script cell by cell and record each cell's printed output and figures.

    python tools/docs_site/run_tutorial.py docs/tutorials/mnist_mlp.py OUT_DIR
    mpiexec -n 2 python tools/docs_site/run_tutorial.py docs/tutorials/distributed.py OUT_DIR

A tutorial is a plain Python script split into cells by ``# %%`` lines; a ``# %% [markdown]`` cell
holds prose as ``# `` comment lines. All code cells run in one namespace, in order, with the
working directory set to OUT_DIR. Writes OUT_DIR/cells.json (a list of {"kind", "source", "output",
"images"}) and one PNG per open matplotlib figure after each code cell. Under MPI every rank runs
the cells and only rank 0 writes. An exception in a cell exits non-zero: the site build stops.
"""
import contextlib
import io
import json
import os
import sys
import traceback
from pathlib import Path


def split_cells(text):
    """[(kind, source)] from a script with ``# %%`` separators (text before the first one is a code cell)."""
    cells, kind, lines = [], "code", []
    for line in text.splitlines():
        if line.startswith("# docs:"):  # build directives (hooks.py reads them), not part of the tutorial
            continue
        if line.startswith("# %%"):
            cells.append((kind, lines))
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    cells.append((kind, lines))
    out = []
    for kind, lines in cells:
        if kind == "markdown":
            source = "\n".join(ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in lines).strip()
        else:
            source = "\n".join(lines).strip()
        if source:
            out.append((kind, source))
    return out


def _rank():
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def main(script, out_dir):
    script, out_dir = Path(script).resolve(), Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    os.chdir(out_dir)
    sys.path.insert(0, str(script.parent))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace = {"__name__": "__main__", "__file__": str(script)}
    record = []
    for index, (kind, source) in enumerate(split_cells(script.read_text())):
        cell = {"kind": kind, "source": source, "output": "", "images": []}
        if kind == "code":
            buffer = io.StringIO()
            try:
                with contextlib.redirect_stdout(buffer):
                    exec(compile(source, f"{script.name} (cell {index})", "exec"), namespace)
            except BaseException:
                sys.stdout.write(buffer.getvalue())
                traceback.print_exc()
                sys.exit(f"tutorial {script.name}: cell {index} failed")
            cell["output"] = buffer.getvalue()
            for number in plt.get_fignums():
                name = f"{script.stem}-{index}-{number}.png"
                plt.figure(number).savefig(out_dir / name, dpi=90, bbox_inches="tight")
                cell["images"].append(name)
            plt.close("all")
        record.append(cell)
    if _rank() == 0:
        (out_dir / "cells.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
