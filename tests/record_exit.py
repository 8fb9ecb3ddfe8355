"""A torchrun worker for tests: ``condgan argv...``, its exit code kept in $CONDGAN_TEST_CODES/<RANK>."""
import os
import sys
from pathlib import Path

from condgan.cli import main

if __name__ == "__main__":
    code = main(sys.argv[1:])
    Path(os.environ["CONDGAN_TEST_CODES"], os.environ.get("RANK", "0")).write_text(str(code))
    sys.exit(code)
