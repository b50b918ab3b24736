"""`python -m tunewright ...` is the `tunewright` command; torchrun starts workers this way
(`torchrun --nproc-per-node 2 -m tunewright train CONFIG`)."""
import sys

from tunewright.cli.main import main

sys.exit(main())
