"""Check the built site as a reader sees it: links, images, and pages in headless Chromium.

    python tools/docs_site/browser_check.py site/ [--chromium /usr/bin/chromium]

1. Every internal ``href``/``src`` of every HTML page in the site must name a file that exists
   (and an ``#anchor`` an id on that page): broken internal links and missing images fail.
2. The site is served on localhost and the landing page, an API page and a tutorial are opened in
   headless Chromium: a screenshot of each goes to ``site/_screenshots/``, and any JavaScript error
   the browser logs (an uncaught exception, a failed resource load) fails the check.
Exits 1 with every problem listed.
"""
import argparse
import functools
import http.server
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

#: name -> (page, window height): the tutorial is taken tall enough to show its figure.
PAGES = {"landing": ("index.html", 1400), "api-needle": ("api/needle.html", 1400),
         "tutorial-mnist": ("tutorials/mnist_mlp.html", 4200)}


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and "name" in attrs:
            self.ids.add(attrs["name"])
        for key in ("href", "src"):
            if attrs.get(key) and not (tag == "link" and key == "href" and "preconnect" in (attrs.get("rel") or "")):
                self.refs.append((tag, attrs[key]))


_PARSED = {}


def _parse(path):
    if path not in _PARSED:
        parser = _Refs()
        parser.feed(path.read_text(errors="replace"))
        _PARSED[path] = parser
    return _PARSED[path]


def check_links(site):
    """Problems with internal links and images, as sentences."""
    problems = []
    for page in sorted(site.rglob("*.html")):
        rel = page.relative_to(site).as_posix()
        for tag, ref in _parse(page).refs:
            parts = urlsplit(ref)
            if parts.scheme or parts.netloc or ref.startswith(("mailto:", "javascript:", "data:")):
                continue
            if not parts.path:
                target = page
            elif parts.path.startswith("/"):  # site-absolute (the 404 page's links)
                target = site / posixpath.normpath(unquote(parts.path)).lstrip("/")
            else:
                target = site / posixpath.normpath(posixpath.join(posixpath.dirname(rel), unquote(parts.path)))
            if target.is_dir():
                target = target / "index.html"
            what = "image" if tag == "img" else "link"
            inside = target.resolve().is_relative_to(site.resolve())
            if not inside or not target.exists():
                problems.append(f"{rel}: broken {what} {ref!r} (no {target.relative_to(site) if inside else target})")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _parse(target).ids:
                problems.append(f"{rel}: link {ref!r} names an anchor that {target.relative_to(site)} lacks")
    return problems


def _serve(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


#: Chromium log lines that mean the page broke: uncaught exceptions, console errors, failed loads.
_JS_ERROR = re.compile(r"Uncaught|CONSOLE.*(error|Error)|Failed to load resource|net::ERR_")


def check_in_browser(site, chromium, out_dir):
    """Open each of PAGES in headless Chromium; screenshots into out_dir; returns problems."""
    server = _serve(site)
    problems = []
    try:
        for name, (page, height) in PAGES.items():
            url = f"http://127.0.0.1:{server.server_address[1]}/{page}"
            shot = out_dir / f"{name}.png"
            with tempfile.TemporaryDirectory() as profile:
                command = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                           "--virtual-time-budget=5000", f"--window-size=1280,{height}", f"--screenshot={shot}", url]
                result = subprocess.run(command, capture_output=True, text=True, timeout=120)
            errors = [line for line in result.stderr.splitlines() if _JS_ERROR.search(line)]
            if result.returncode != 0 or not shot.exists():
                problems.append(f"{page}: chromium failed (exit {result.returncode}): {result.stderr[-1500:]}")
            problems += [f"{page}: JavaScript error: {line.strip()}" for line in errors]
            print(f"browser: {page} -> {shot.relative_to(site)} ({len(errors)} JavaScript errors)")
    finally:
        server.shutdown()
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("site", type=Path)
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    args = parser.parse_args(argv)
    site = args.site.resolve()
    if not (site / "index.html").exists():
        sys.exit(f"{site} holds no index.html: build the site first (nox -s docs)")
    problems = check_links(site)
    print(f"links: {sum(len(_parse(p).refs) for p in site.rglob('*.html'))} references in "
          f"{len(list(site.rglob('*.html')))} pages checked, {len(problems)} broken")
    if not args.chromium:
        sys.exit("no chromium found: install Debian's `chromium` package (nox -s docs does) or pass --chromium")
    out_dir = site / "_screenshots"
    out_dir.mkdir(exist_ok=True)
    problems += check_in_browser(site, args.chromium, out_dir)
    for problem in problems:
        print("FAIL", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
