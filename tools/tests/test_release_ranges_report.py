"""`python -m needle`'s range report (needle.__main__.version_ranges) on faked installed metadata.

The expected verdicts are worked out by hand from the made-up Requires-Dist lines and protocol claims.
"""
import builtins
import importlib.metadata as md
from types import SimpleNamespace

import pytest

main = pytest.importorskip("needle.__main__")


class FakeEntryPoints(list):
    def select(self, group):
        return [ep for ep in self if ep.group == group]


def fake_ep(name, claim, dist="needle-cpu", group="needle.protocol"):
    def load():
        if isinstance(claim, Exception):
            raise claim
        return claim
    return SimpleNamespace(name=name, group=group, value=f"{dist.replace('-', '_')}.version:SUPPORTED_PROTOCOL",
                           dist=SimpleNamespace(name=dist), load=load)


@pytest.fixture
def installed(monkeypatch):
    """Install fake metadata: {dist: [Requires-Dist lines]} and protocol entry points."""
    def install(requires, eps=()):
        monkeypatch.setattr(md, "requires", lambda name: requires[name])
        monkeypatch.setattr(md, "entry_points", lambda: FakeEntryPoints(eps))
    return install


def test_everything_inside_the_ranges(installed):
    from needle.backend_ndarray.protocol import PROTOCOL_VERSION
    installed({"needle-core": ["numpy>=1.22"], "needle-nn": ["needle-core>=0.1,<0.2", "pytest>=7; extra == 'test'"]},
              [fake_ep("cpu", (PROTOCOL_VERSION, PROTOCOL_VERSION))])
    requires, protocols, problems = main.version_ranges({"needle-core": "0.1.0", "needle-nn": "0.1.0"})
    assert requires == {"needle-core": {}, "needle-nn": {"needle-core": ">=0.1,<0.2"}}
    assert protocols == {"cpu": [PROTOCOL_VERSION, PROTOCOL_VERSION]}
    assert problems == []


def test_outside_a_range_missing_dependency_and_protocol(installed):
    from needle.backend_ndarray.protocol import PROTOCOL_VERSION
    installed({"needle-core": [], "needle-nn": ["needle_core (>=0.2,<0.3)"],
               "needle-dist": ["needle-core>=0.1,<0.3", "needle-data[extra]>=0.1",
                               "mpich>=4; sys_platform != 'win32'"]},
              [fake_ep("cpu", (PROTOCOL_VERSION + 1, PROTOCOL_VERSION + 2)), fake_ep("bad", ImportError("gone"))])
    _, _, problems = main.version_ranges({"needle-core": "0.1.0", "needle-nn": "0.1.0", "needle-dist": "0.1.0"})
    assert problems[0] == "needle-nn 0.1.0 needs needle-core>=0.2,<0.3, but needle-core 0.1.0 is installed"
    assert problems[1] == "needle-dist 0.1.0 needs needle-data>=0.1, which is not installed"
    assert f"implements protocol {PROTOCOL_VERSION + 1}..{PROTOCOL_VERSION + 2}" in problems[2]
    assert "backend bad" in problems[3] and "gone" in problems[3]
    assert len(problems) == 4


def test_protocol_1_and_protocol_2_backends_both_fit_a_core_that_speaks_both(installed):
    from needle.backend_ndarray.protocol import SUPPORTED_PROTOCOLS
    assert SUPPORTED_PROTOCOLS == (1, 2)
    installed({"needle-core": [], "needle-toy-protocol1": ["needle-core>=0.1,<0.3"],
               "needle-cpu": ["needle-core>=0.2,<0.3"]},
              [fake_ep("toy_p1", (1, 1), dist="needle-toy-protocol1"), fake_ep("cpu", (2, 2))])
    versions = {"needle-core": "0.2.0", "needle-toy-protocol1": "0.1.1", "needle-cpu": "0.2.0"}
    requires, protocols, problems = main.version_ranges(versions)
    assert protocols == {"toy_p1": [1, 1], "cpu": [2, 2]} and problems == []
    lines = main._render_distributions({"distributions": versions, "requires": requires, "protocols": protocols,
                                        "compatibility": problems})
    assert "  backend protocol ranges: toy_p1 1..1, cpu 2..2 (needle-core speaks 1, 2)" in lines
    assert lines[-1] == "  every installed combination is inside the declared ranges"


@pytest.mark.parametrize("version, spec, inside", [
    ("0.1.0", ">=0.1,<0.2", True), ("0.1.9", ">=0.1,<0.2", True), ("0.2.0", ">=0.1,<0.2", False),
    ("0.0.9", ">=0.1", False), ("0.1", "==0.1.0", True), ("1.0.0", "!=1.0", False), ("0.1.0", ">0.1", False),
])
def test_in_range_with_and_without_packaging(monkeypatch, version, spec, inside):
    assert main._in_range(version, spec) is inside
    real = builtins.__import__

    def no_packaging(name, *args, **kwargs):
        if name.startswith("packaging"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_packaging)
    assert main._in_range(version, spec) is inside  # the fallback agrees on plain X.Y.Z clauses
    assert main._in_range("0.1.0", ">=0.1.*garbage") is None  # unreadable: neither in nor out
