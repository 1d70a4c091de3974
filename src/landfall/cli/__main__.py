"""`python -m landfall.cli <command>`: the same as the `landfall` console script."""

from landfall.cli import main

main()
