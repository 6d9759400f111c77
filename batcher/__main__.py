"""`python -m batcher`: the same entry point as the `batcher` console script."""

from batcher.cli.main import main

raise SystemExit(main())
