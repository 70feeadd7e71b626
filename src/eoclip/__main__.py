"""``python -m eoclip``: the same command line as the ``eoclip`` console script."""

from eoclip.cli import main

main()
