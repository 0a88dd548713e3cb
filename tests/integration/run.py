#!/usr/bin/env python3
"""Runs Clone's end-to-end tests: every test_* function in the test_*.py
modules beside this file, or those named on the command line (module or
module::function). Prints PASS/FAIL/SKIP per test and a final summary line
'integration: N passed, N failed, N skipped'."""
import importlib
import os
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402


def main():
    wanted = sys.argv[1:]
    mods = sorted(f[:-3] for f in os.listdir(HERE)
                  if f.startswith("test_") and f.endswith(".py"))
    passed = failed = skipped = 0
    for name in mods:
        mod = importlib.import_module(name)
        tests = [t for t in dir(mod) if t.startswith("test_")]
        tests.sort(key=lambda t: getattr(mod, t).__code__.co_firstlineno)
        for t in tests:
            full = f"{name}::{t}"
            if wanted and name not in wanted and full not in wanted:
                continue
            t0 = time.monotonic()
            with tempfile.TemporaryDirectory(prefix="clone-test-") as tmp:
                try:
                    getattr(mod, t)(tmp)
                except harness.Skip as e:
                    skipped += 1
                    print(f"SKIP {full}: {e}  <-- NOT RUN", flush=True)
                    continue
                except Exception:
                    failed += 1
                    print(f"FAIL {full} ({time.monotonic() - t0:.1f}s)")
                    traceback.print_exc()
                    sys.stdout.flush()
                    continue
            passed += 1
            print(f"PASS {full} ({time.monotonic() - t0:.1f}s)", flush=True)
    print(f"integration: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
