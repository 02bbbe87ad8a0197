"""A self-contained AWS + GitHub sandbox used by `guard demo` and the tests."""
