"""The package version: the crate's (Cargo.toml), checked by python/tests/test_package.py.

Read by pyproject.toml at build time and by :func:`c_embed_runtime.load`, which
refuses a library whose major.minor differs."""

__version__ = "0.2.0"
