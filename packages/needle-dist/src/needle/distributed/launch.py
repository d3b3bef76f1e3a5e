"""Start ``n`` ranks of a script on this machine with the MPI launcher installed beside Python.

    python -m needle.distributed.launch -n 2 train.py --epochs 3

is ``mpiexec -n 2 python train.py --epochs 3`` with the ``mpiexec`` of the current environment (the
one the ``mpich`` wheel installs next to ``python``), kept on this host: processes are forked
locally (no ssh) and MPICH's control traffic uses the loopback interface. On a cluster, call your
site's ``mpiexec``/``srun`` directly instead.
"""
import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path


def find_mpiexec():
    """Path of ``mpiexec``: the one next to this interpreter first, else the first on PATH; None if absent."""
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    return shutil.which("mpiexec")


def _is_hydra(mpiexec):
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "HYDRA" in out.upper()


def mpiexec_command(n, argv, mpiexec=None, extra=()):
    """The argument list that runs ``argv`` (a command, e.g. ``[sys.executable, "train.py"]``) on ``n`` local ranks."""
    mpiexec = mpiexec or find_mpiexec()
    if mpiexec is None:
        raise FileNotFoundError("no mpiexec found: pip install mpich (or put your MPI's mpiexec on PATH)")
    if _is_hydra(mpiexec):  # MPICH: fork locally, talk over loopback only
        local = ["-launcher", "fork", "-hosts", "localhost", "-iface", "lo"]
    else:  # Open MPI: no ssh, TCP over loopback only
        local = ["--host", f"localhost:{n}", "--mca", "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo"]
    return [mpiexec, *local, *extra, "-n", str(int(n)), *argv]


def main(argv=None):
    """Command line: ``python -m needle.distributed.launch -n N script.py [args]``; returns the ranks' exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--nproc", type=int, default=2, help="number of ranks")
    parser.add_argument("script", help="Python script to run on every rank")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    args = parser.parse_args(argv)
    cmd = mpiexec_command(args.nproc, [sys.executable, args.script, *args.args])
    return subprocess.call(cmd, env=os.environ.copy())


if __name__ == "__main__":
    sys.exit(main())
