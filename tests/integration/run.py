#!/usr/bin/env python3
"""Run the integration suite against a built postie binary.

usage: run.py --postie PATH [-k PATTERN]

Prints one line per test and closes with
"integration: N passed, N failed, N skipped".
"""
import argparse
import os
import sys
import unittest


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--postie", required=True)
    ap.add_argument("-k", dest="pattern", default=None)
    args = ap.parse_args()
    os.environ["POSTIE_BIN"] = os.path.abspath(args.postie)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    loader = unittest.TestLoader()
    if args.pattern:
        loader.testNamePatterns = ["*%s*" % args.pattern]
    suite = loader.discover(here, pattern="test_*.py", top_level_dir=here)
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    # a test with failing subtests counts once
    bad = {t.id() if not hasattr(t, "test_case") else t.test_case.id()
           for t, _ in result.failures + result.errors}
    bad |= {t.id() for t in result.unexpectedSuccesses}
    failed = len(bad)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    print("integration: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
