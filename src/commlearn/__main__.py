"""``python -m commlearn``: the same command line as ``commlearn``."""

from commlearn.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
