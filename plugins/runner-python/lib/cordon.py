"""cordon's result helper: report a structured result on the result channel, not stdout.

    import cordon
    cordon.result("warn", "disk almost full", metrics={"used_percent": 91.5})
"""
import json
import math
import os
import traceback

STATUSES = ("ok", "warn", "crit", "unknown")
_reported = False


def _write(payload):
    global _reported
    fd = int(os.environ.get("CORDON_RESULT_FD", "4"))
    data = (json.dumps(payload, allow_nan=False, default=str) + "\n").encode("utf-8")
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError as exc:
        raise RuntimeError("cordon result channel (fd %d) is not available: %s" % (fd, exc)) from exc
    _reported = True


def result(status, message=None, metrics=None, **extra):
    """Report STATUS (ok, warn, crit, unknown), an optional message, numeric metrics and free JSON."""
    if status not in STATUSES:
        raise ValueError("status must be one of %s, not %r" % (", ".join(STATUSES), status))
    payload = dict(extra)
    payload["status"] = status
    if message is not None:
        payload["message"] = str(message)
    if metrics:
        for name, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError("metric %r must be a finite number, not %r" % (name, value))
        payload["metrics"] = {str(k): v for k, v in metrics.items()}
    _write(payload)


def _report_exception(exc):
    _write(
        {
            "status": "crit",
            "message": "%s: %s" % (type(exc).__name__, exc),
            "error": {"type": type(exc).__name__, "message": str(exc), "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))},
        }
    )
