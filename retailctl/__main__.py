"""Allow `python -m retailctl`."""

from retailctl.cli import main

main()
