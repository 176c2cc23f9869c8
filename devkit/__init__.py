"""Throw-away services for the tests and the benchmarks: free ports, scratch databases, a private Mosquitto with the
project's configuration, a `mimamori` command as a real process, the API served on a port.

One home for what tests/ and bench/ both run, so that a benchmark never imports the test suite. Not shipped in the
wheel (it reads deploy/ from the checkout and drops databases), and imported by nothing of the hub's own: the
contracts in pyproject.toml hold both.
"""
