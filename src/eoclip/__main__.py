"""``python -m eoclip``: the same command line as the ``eoclip`` console script."""

from eoclip.cli import main

# Guarded: worker processes of `eoclip ingest --workers N` (forkserver/spawn) import this
# module again as __mp_main__, and must not run the command line a second time.
if __name__ == "__main__":
    main()
