"""MkDocs hooks: the pages made from the repository's own files, the executed tutorials, link rewriting.

Generated pages (so that the site never drifts from the files it shows):
- index.md        README.md without its Packages section (what Needle is, the two commands, ...)
                  plus the package table;
- versioning.md   README.md's Packages section (versions, ranges, releasing a package);
- benchmarks.md   benchmarks/README.md;
- api/protocol.md the kernel table of contract.py at its ``<!-- kernel-table -->`` and the `#:` comment
                  blocks of protocol.py at its ``<!-- protocol-contract -->``;
- tutorials/*.md  each docs/tutorials/*.py run by run_tutorial.py (a failing cell fails the build),
                  its prose, code, printed output and figures.

Relative links that leave the docs (``../packages/...``) point at files that are not in the site:
a known one is mapped to its page, any other becomes its repository path in code font.
"""
import json
import logging
import os
import posixpath
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "docs" / "tutorials"
RUNNER = Path(__file__).with_name("run_tutorial.py")
PROTOCOL = ROOT / "packages" / "needle-core" / "src" / "needle" / "backend_ndarray" / "protocol.py"
log = logging.getLogger("mkdocs.hooks.needle")
#: needle's subpackages come from several distributions (pkgutil portions), which griffe does not merge:
#: mkdocstrings reads one ``needle`` tree of symlinks made here (mkdocs.yml's python ``paths``).
API_SOURCE = ROOT / "build" / "docs-api-src"
PORTIONS = ["needle-core", "needle-nn", "needle-data", "needle-dist"]


def _merge_portions():
    import shutil

    target = API_SOURCE / "needle"
    shutil.rmtree(API_SOURCE, ignore_errors=True)
    target.mkdir(parents=True)
    for package in PORTIONS:
        for entry in sorted((ROOT / "packages" / package / "src" / "needle").iterdir()):
            if entry.name != "__pycache__" and not (target / entry.name).exists():
                (target / entry.name).symlink_to(entry)


_merge_portions()  # at import: before mkdocstrings reads its paths

#: repository path -> site page, for links between the files the site shows.
PAGE_FOR = {
    "README.md": "index.md",
    "docs/writing-a-backend.md": "writing-a-backend.md",
    "docs/for-pytorch-users.md": "for-pytorch-users.md",
    "benchmarks/README.md": "benchmarks.md",
    "benchmarks": "benchmarks.md",
    "packages/needle-core/src/needle/backend_ndarray/protocol.py": "api/protocol.md",
    "packages/needle-core": "api/needle.md",
    "packages/needle-nn": "api/nn.md",
    "packages/needle-data": "api/data.md",
    "packages/needle-dist": "api/distributed.md",
}
#: generated page -> the repository file its text comes from (to resolve its relative links).
ORIGIN = {"index.md": "README.md", "versioning.md": "README.md", "benchmarks.md": "benchmarks/README.md"}
_generated_sources = {}


def _readme_sections():
    """README.md as (text before '## Packages', the Packages section, the text after it)."""
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Packages\n")
    end = text.index("\n## ", start + 1)
    return text[:start], text[start:end], text[end:]


def _index_page():
    before, packages, after = _readme_sections()
    table = "\n".join(line for line in packages.splitlines() if line.startswith("|"))
    return (before + "\n## Packages\n\nEach package is versioned and released on its own "
            "([versioning and releases](versioning.md)).\n\n" + table + "\n" + after)


def _versioning_page():
    _, packages, _ = _readme_sections()
    return "# Versioning and releases\n" + packages.replace("\n## Packages\n", "\n", 1)


def _protocol_contract():
    """The ``#:`` comment blocks of protocol.py, each under the name it documents, as Markdown."""
    blocks, current = [], []
    for line in PROTOCOL.read_text().splitlines():
        if line.startswith("#:"):
            current.append(line[3:] if line.startswith("#: ") else line[2:])
        elif current:
            name = line.split("=")[0].strip() if "=" in line else ""
            blocks.append((name, "\n".join(current)))
            current = []
    out = ["## The protocol-2 contract (from `protocol.py`)\n"]
    for name, text in blocks:
        text = re.sub(r":(?:data|func|class|mod|meth|attr):`~?([^`]+)`", r"``\1``", text)
        out.append((f"**`{name}`**\n\n" if name else "") + text + "\n")
    return "\n".join(out)


def _run_tutorial(script, out_dir):
    """Run one tutorial in a fresh process (under mpiexec when its first line asks); returns its cells."""
    command = [sys.executable, str(RUNNER), str(script), str(out_dir)]
    first = script.read_text().splitlines()[0]
    match = re.match(r"#\s*docs:\s*mpiexec -n (\d+)", first)
    if match:
        mpiexec = Path(sys.executable).with_name("mpiexec")
        command = [str(mpiexec) if mpiexec.exists() else "mpiexec", "-n", match.group(1)] + command
    env = dict(os.environ, NEEDLE_BACKEND=os.environ.get("NEEDLE_DOCS_BACKEND", "numpy"),
               MPLBACKEND="Agg", PYTHONHASHSEED="0")
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"tutorial {script.name} failed (exit {result.returncode}):\n"
                           f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    log.info(f"tutorial {script.name}: ran in {time.perf_counter() - started:.1f} s")
    return json.loads((out_dir / "cells.json").read_text())


def _tutorial_page(script, cells):
    parts = []
    for cell in cells:
        if cell["kind"] == "markdown":
            parts.append(cell["source"])
            continue
        parts.append("```python\n" + cell["source"] + "\n```")
        if cell["output"].strip():
            parts.append('<div class="tutorial-output" markdown>\n\n```text\n' + cell["output"].rstrip()
                         + "\n```\n\n</div>")
        parts.extend(f"![output of the cell above]({name})" for name in cell["images"])
    parts.append(f"*This page was produced by running [`{script.name}`]({script.name}) "
                 f"(`python docs/tutorials/{script.name}` reruns it) when the site was built.*")
    return "\n\n".join(parts) + "\n"


def on_files(files, config):
    def add(uri, content):
        existing = files.get_file_from_path(uri)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, uri, content=content))

    add("index.md", _index_page())
    add("versioning.md", _versioning_page())
    add("benchmarks.md", (ROOT / "benchmarks" / "README.md").read_text())
    work = Path(tempfile.mkdtemp(prefix="needle-docs-"))
    for script in sorted(TUTORIALS.glob("*.py")):
        cells = _run_tutorial(script, work / script.stem)
        add(f"tutorials/{script.stem}.md", _tutorial_page(script, cells))
        for cell in cells:
            for name in cell["images"]:
                add(f"tutorials/{name}", (work / script.stem / name).read_bytes())
    return files


def on_page_markdown(markdown, page, config, files):
    uri = page.file.src_uri
    if uri == "api/protocol.md":
        from needle.backend_ndarray.contract import markdown_table

        markdown = markdown.replace("<!-- protocol-contract -->", _protocol_contract())
        markdown = markdown.replace("<!-- kernel-table -->", markdown_table())
    origin = ORIGIN.get(uri, "docs/" + uri)
    return _rewrite_links(markdown, origin, uri, files)


_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")


def _rewrite_links(markdown, origin, uri, files):
    """Map links to repository files onto site pages; links to files the site lacks become plain code."""
    def fix(match):
        text, target = match.group(1), match.group(2)
        if re.match(r"^[a-z]+:|^#|^/", target):
            return match.group(0)
        path, _, anchor = target.partition("#")
        repo_path = posixpath.normpath(posixpath.join(posixpath.dirname(origin), path)).rstrip("/")
        page = PAGE_FOR.get(repo_path)
        if page is None and repo_path.startswith("docs/") and files.get_file_from_path(repo_path[5:]):
            page = repo_path[5:]
        if page is None:
            if files.get_file_from_path(posixpath.normpath(posixpath.join(posixpath.dirname(uri), path))):
                return match.group(0)  # a file of the site itself
            if repo_path.startswith("packages/") and repo_path.count("/") == 1:
                return text  # a package without a page of its own (needle-cpu, needle-cuda): its name
            shown = text
            return f"{shown} (`{repo_path}` in the repository)" if shown.strip("`") != repo_path else f"`{repo_path}`"
        if not files.get_file_from_path(page):
            return text  # e.g. the PyTorch page before it exists
        relative = posixpath.relpath(page, posixpath.dirname(uri) or ".")
        return f"[{text}]({relative}{'#' + anchor if anchor else ''})"

    # Leave fenced code alone.
    chunks = re.split(r"(```.*?```)", markdown, flags=re.S)
    return "".join(chunk if chunk.startswith("```") else _LINK.sub(fix, chunk) for chunk in chunks)


def on_config(config):
    """List the PyTorch users' page among the guides once docs/for-pytorch-users.md exists; show the
    docstrings' ``>>>`` examples as code (mkdocstrings renders with this same extension list)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from doctest_blocks import DoctestBlocks

    config.markdown_extensions.append(DoctestBlocks())
    if (ROOT / "docs" / "for-pytorch-users.md").exists():
        for section in config.nav:
            if isinstance(section, dict) and "Guides" in section:
                section["Guides"].insert(1, {"For PyTorch users": "for-pytorch-users.md"})
    return config
