"""Offline checks of CacheMe's packaging that need Python libraries.

`cargo xtask validate` writes this package into `target/tools/python` and runs it with
the pinned venv: `python -m cacheme_packaging <check> ARGS...` (see `__main__.py`).
Each check prints indented summary lines and exits non-zero with `error: ...` lines.
"""
