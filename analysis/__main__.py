"""``python -m analysis {tables,plots,report} --runs DIR ...``."""

from analysis.cli import main

raise SystemExit(main())
