"""Shared helpers for the Python client checks run by tests/tests/clients_python.rs.

Each check script reads the broker address from BROOK_BOOTSTRAP, runs its checks in
order, prints one line per passed check and exits non-zero (with a traceback) on the
first failure. Waits are deadline-bounded polls, never fixed sleeps.
"""

import os
import sys
import time
import traceback

BOOTSTRAP = os.environ.get("BROOK_BOOTSTRAP", "")


class CheckFailed(Exception):
    pass


def ensure(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def wait_until(what, cond, timeout=15.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def run_checks(checks):
    if not BOOTSTRAP:
        print("BROOK_BOOTSTRAP is not set", file=sys.stderr)
        sys.exit(2)
    for check in checks:
        started = time.monotonic()
        try:
            check()
        except Exception:  # noqa: BLE001 - report any failure with its traceback
            print(f"FAIL {check.__name__}", flush=True)
            traceback.print_exc()
            sys.exit(1)
        print(f"PASS {check.__name__} ({time.monotonic() - started:.1f}s)", flush=True)
