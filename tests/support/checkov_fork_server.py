"""checkov imported once and run many times, each run in a child forked for it.

Started by ``tests/support/checkov.py`` with checkov's own venv's Python (``.venv-checkov``),
in the network namespace and the offline environment that module sets up: importing checkov
costs about 2 s of CPU, as much as a run over a small template (issue 24). Each line on
stdin is one run, ``{"argv": [...], "stdout": path, "stderr": path}``; a child forked for it
runs checkov as its ``checkov`` command does (``sys.exit(Checkov().run())``, SyntaxWarnings
ignored), its output going to those files, and this process answers one line,
``{"exit": status}``. A new child per run: nothing a run leaves behind reaches the next.
"""

import json
import os
import sys
import traceback
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", category=SyntaxWarning)
    from checkov.main import Checkov


def _redirect(fd: int, path: str | None) -> None:
    target = os.open(path or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(target, fd)
    os.close(target)


def _child(request: dict[str, object]) -> None:
    """Run checkov once, then leave without the parent's clean-up (``os._exit``)."""
    status = 1
    try:
        argv = [str(arg) for arg in request["argv"]]  # type: ignore[attr-defined]
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        _redirect(1, str(request["stdout"]))
        _redirect(2, str(request["stderr"]))
        sys.argv = ["checkov", *argv]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=SyntaxWarning)
            status = Checkov(argv).run() or 0
    except SystemExit as done:
        status = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException:  # reported in the run's stderr, exit status 1
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        _, wait_status = os.waitpid(pid, 0)
        print(json.dumps({"exit": os.waitstatus_to_exitcode(wait_status)}), flush=True)


if __name__ == "__main__":
    main()
