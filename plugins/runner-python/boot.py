# cordon's Python bootstrap: runs the user's script as __main__ with a clean sys.path,
# and turns an uncaught exception into a structured result (the traceback still goes to stderr).
import os
import runpy
import sys
import traceback


def _main():
    here = os.path.dirname(os.path.abspath(__file__))
    script = sys.argv[1]
    packages = [p for p in os.environ.pop("CORDON_PYTHON_PACKAGES", "").split(os.pathsep) if p]
    # Like `python script.py`: the script's directory first; then the working directory
    # (scratch, where input files are), the configured packages and cordon's helper module.
    sys.path[:] = [os.path.dirname(script), os.getcwd()] + packages + [os.path.join(here, "lib")] + [
        p for p in sys.path if p and p != here
    ]
    sys.argv = sys.argv[1:]
    try:
        runpy.run_path(script, run_name="__main__")
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        traceback.print_exc()
        import cordon

        # Reported or not, the script crashed: the exception is the last word.
        cordon._report_exception(exc)
        sys.exit(1)


_main()
