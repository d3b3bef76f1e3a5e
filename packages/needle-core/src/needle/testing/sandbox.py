"""Run test cases in a long-lived child interpreter, so that a crash fails one case instead of the run.

A fuzzer that calls native code must survive the bug it is looking for: a segfault, an abort, a
sanitizer report or a hang kills the process that runs the case. :class:`Sandbox` keeps one worker
process (``python -m needle.testing.sandbox RUNNER``) and sends it cases, one at a time, over a
pipe; the worker calls ``RUNNER(case)`` and answers with the outcome. When the worker dies or stops
answering, the case gets a :class:`Crash` outcome carrying the exit status, the tail of the
worker's stderr (the sanitizer report) and a one-line reproducer, and the next case starts a fresh
worker. Cases are plain data (tuples, lists, numbers, strings), so a reproducer is their repr.

``RUNNER`` is ``"package.module:function"`` or ``"/path/to/file.py:function"``. The function returns
anything picklable (or raises); the parent decides which exceptions are acceptable.
"""
import importlib
import importlib.util
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass

__all__ = ["Sandbox", "Outcome", "Crash", "run_one", "load_runner"]

_HEADER = struct.Struct("<Q")
_HUNG = object()  # what _receive returns when the worker did not answer in time
#: Names a reproducer may use for float values whose repr is not a literal.
_LITERALS = {"nan": float("nan"), "inf": float("inf")}


@dataclass
class Outcome:
    """What a case did: ``status`` is "ok" (``value`` is the runner's result) or "raised"
    (``error`` is the exception type's name, ``message`` its text, ``detail`` the traceback)."""
    status: str
    value: object = None
    error: str = ""
    message: str = ""
    detail: str = ""


@dataclass
class Crash:
    """The worker died (or hung) on a case: ``how`` says how, ``stderr`` is its output's tail."""
    how: str
    stderr: str
    reproducer: str
    alone: bool | None = None  # did it crash again in a fresh worker? (None: not tried)

    def report(self):
        again = {True: "yes", False: "no (it needs the cases before it)", None: "not tried"}[self.alone]
        return (f"the worker {self.how}\nreproducer: {self.reproducer}\ncrashes alone in a fresh process: {again}"
                f"\n--- worker stderr (tail) ---\n{self.stderr}")


def load_runner(spec):
    """The function that ``spec`` ("module:function" or "file.py:function") names."""
    where, _, name = spec.rpartition(":")
    if where.endswith(".py"):
        module_name = "_sandbox_runner_" + os.path.splitext(os.path.basename(where))[0]
        module = sys.modules.get(module_name)
        if module is None:
            loader = importlib.util.spec_from_file_location(module_name, where)
            module = importlib.util.module_from_spec(loader)
            sys.modules[module_name] = module
            loader.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    return getattr(module, name)


def _evaluate(runner, case):
    try:
        return Outcome("ok", value=runner(case))
    except BaseException as exc:  # noqa: B036 - SystemExit and KeyboardInterrupt are outcomes too
        if isinstance(exc, KeyboardInterrupt) and os.environ.get("NEEDLE_SANDBOX_WORKER") is None:
            raise
        return Outcome("raised", error=type(exc).__name__, message=str(exc)[:2000],
                       detail="".join(traceback.format_exception(exc))[-4000:])


def run_one(spec, case_repr):
    """Run one case here (what a reproducer calls); prints and returns its outcome."""
    case = eval(case_repr, {"__builtins__": {}}, dict(_LITERALS))  # plain data only
    outcome = _evaluate(load_runner(spec), case)
    print(outcome)
    return outcome


def _read_exactly(fd, n):
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _serve(spec):
    """The worker's loop: read a case, answer with its outcome, until the pipe closes."""
    inp, out = sys.stdin.buffer.fileno(), os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # prints from the code under test go to stderr
    runner = load_runner(spec)
    os.write(out, _HEADER.pack(0))  # ready
    while True:
        try:
            (size,) = _HEADER.unpack(_read_exactly(inp, _HEADER.size))
            case = pickle.loads(_read_exactly(inp, size))
        except EOFError:
            return
        outcome = _evaluate(runner, case)
        try:
            data = pickle.dumps(outcome)
        except Exception as exc:  # an unpicklable result: say so instead of dying
            data = pickle.dumps(Outcome("raised", error="PicklingError", message=str(exc)))
        os.write(out, _HEADER.pack(len(data)) + data)


class Sandbox:
    """A worker process running ``runner`` (see the module docstring); ``run(case)`` gives an
    :class:`Outcome` or a :class:`Crash`. ``timeout`` seconds without an answer count as a hang.

    ``env`` adds environment variables for the worker. Use as a context manager, or call ``close()``.
    """

    def __init__(self, runner, timeout=60.0, env=None, recheck_crashes=True):
        self.runner = runner
        self.timeout = timeout
        self.env = dict(os.environ, NEEDLE_SANDBOX_WORKER="1", **(env or {}))
        self.recheck = recheck_crashes
        self.cases = 0  # cases sent
        self.crashes = 0
        self.restarts = 0
        self._proc = None
        self._log = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def reproducer(self, case):
        return (f"{sys.executable} -c \"from needle.testing.sandbox import run_one; "
                f"run_one({self.runner!r}, {repr(case)!r})\"")

    def _start(self):
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen([sys.executable, "-m", "needle.testing.sandbox", self.runner],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                      env=self.env, bufsize=0)
        self.restarts += 1
        if not isinstance(self._receive(max(self.timeout, 120.0)), bytes):  # the worker's "ready"
            raise RuntimeError("sandbox: the worker did not start:\n" + self._stderr_tail(0))

    def close(self):
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _stderr_tail(self, start, limit=6000):
        self._log.flush()
        self._log.seek(start)
        text = self._log.read().decode("utf-8", "replace")
        self._log.seek(0, os.SEEK_END)
        return text[-limit:]

    def _receive(self, timeout):
        """The next message (bytes; b"" for "ready"), None when the worker died, _HUNG on a timeout."""
        fd = self._proc.stdout.fileno()
        if not select.select([fd], [], [], timeout)[0]:
            return _HUNG
        try:
            (size,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size))
            return _read_exactly(fd, size)
        except EOFError:
            return None

    def run(self, case):
        """Run ``case`` in the worker: an Outcome, or a Crash (the worker is then restarted lazily)."""
        if self._proc is None:
            self._start()
        self.cases += 1
        start = self._log.seek(0, os.SEEK_END)
        data = pickle.dumps(case)
        try:
            self._proc.stdin.write(_HEADER.pack(len(data)) + data)
            reply = self._receive(self.timeout)
        except BrokenPipeError:
            reply = None
        if isinstance(reply, bytes):
            return pickle.loads(reply)
        self.crashes += 1
        proc = self._proc
        if reply is _HUNG:
            proc.kill()
            how = f"did not answer within {self.timeout:g} s (a hang)"
        else:
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # closed its pipe but lives on
                proc.kill()
                code = proc.wait()
            how = (f"was killed by {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals()
                   else f"exited with status {code}")
        proc.wait()
        crash = Crash(how, self._stderr_tail(start), self.reproducer(case))
        self.close()
        if self.recheck:
            self._start()
            self.cases += 1
            data = pickle.dumps(case)
            try:
                self._proc.stdin.write(_HEADER.pack(len(data)) + data)
                crash.alone = not isinstance(self._receive(self.timeout), bytes)
            except BrokenPipeError:
                crash.alone = True
            if crash.alone:
                self.close()
        return crash


if __name__ == "__main__":
    from needle.testing import sandbox as _module  # not __main__: Outcome must pickle as needle.testing.sandbox's

    _module._serve(sys.argv[1])
