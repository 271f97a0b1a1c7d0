"""`python -m ila`: the same as the `ila` console script."""

from ila.app import run

run()
