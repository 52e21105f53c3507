# cordon's Python bootstrap: runs the user's script as __main__ with a clean sys.path,
# and turns an uncaught exception into a structured result (the traceback still goes to stderr).
#
# The working directory (scratch) holds input files and whatever the script or its target
# writes: it must never decide which code runs in place of the standard library or of
# cordon's own helper. So the helper is imported here, from the read-only job directory,
# before scratch is on sys.path (a later `import cordon` gets this module from sys.modules),
# and scratch comes LAST on sys.path: a module there is only found when nothing in the
# standard library or the configured packages has that name.
import os
import runpy
import sys
import traceback


def _main():
    here = os.path.dirname(os.path.abspath(__file__))
    script = sys.argv[1]
    packages = [p for p in os.environ.pop("CORDON_PYTHON_PACKAGES", "").split(os.pathsep) if p]
    lib = os.path.join(here, "lib")
    # -I already keeps the cwd and the script's directory off sys.path at start: what is
    # there now is the standard library (and its site directory). Cordon's helper first.
    stdlib = [p for p in sys.path if p and p != here]
    sys.path[:] = [lib] + stdlib
    import cordon as helper

    # Like `python script.py`: the script's directory (read-only, holding only the script)
    # first; then the configured packages (like PYTHONPATH), the standard library, and at
    # the end the working directory, so input files can be imported as helper modules.
    sys.path[:] = [os.path.dirname(script)] + packages + stdlib + [lib, os.getcwd()]
    sys.argv = sys.argv[1:]
    try:
        runpy.run_path(script, run_name="__main__")
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        traceback.print_exc()
        # Reported or not, the script crashed: the exception is the last word.
        helper._report_exception(exc)
        sys.exit(1)


def _import_helper():
    # What _main imports first, done while the waiter waits: cordon's helper, from the
    # read-only job directory, exactly as _main would find it (it then comes from sys.modules).
    here = os.path.dirname(os.path.abspath(__file__))
    saved = sys.path[:]
    sys.path[:] = [os.path.join(here, "lib")] + [p for p in saved if p and p != here]
    import cordon  # noqa: F401

    sys.path[:] = saved


def _warm(fd):
    # A warm sandbox's waiter (cordon's src/pool/): block until the supervisor writes ONE
    # run's command and environment on fd (one JSON line), acknowledge it with one byte (the
    # supervisor starts the run cold if the waiter dies before that), then become that run:
    # run the script here when the supervisor found this interpreter's start identical, else
    # exec. PWD stays what the launcher set for this process, as it would for the command.
    import json
    import time

    _import_helper()
    # runpy.run_path's first call imports pkgutil (and re, typing, enum... through it): ~11 ms
    # a cold start spends before the script too, paid here while the waiter waits.
    import pkgutil  # noqa: F401

    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:
            os._exit(125)  # the sandbox was discarded unused
        data += chunk
    os.write(fd, b".")
    os.close(fd)
    job = json.loads(data)
    argv, env = job["argv"], dict(job["env"])
    if "PWD" in os.environ:
        env["PWD"] = os.environ["PWD"]
    if not job["inProcess"]:
        os.execve(argv[0], argv, env)
    os.environ.clear()
    os.environ.update(env)
    time.tzset()
    sys.argv = argv[3:]  # as a cold start sees it: [boot.py, script, args...]
    _main()


if len(sys.argv) == 3 and sys.argv[1] == "--cordon-warm":
    _warm(int(sys.argv[2]))
else:
    _main()
