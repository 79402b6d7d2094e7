"""Options shared by every command (SPEC §4): --database-url, --log-dir, --days, --json."""

from pathlib import Path
from typing import Annotated

import typer

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        metavar="URL",
        help="Database URL (sqlite:///abs/path or postgresql://…); default $DATABASE_URL, "
        "else <project>/var/retail.sqlite3.",
        show_default=False,
    ),
]
LogDir = Annotated[
    Path | None,
    typer.Option(
        "--log-dir",
        metavar="DIR",
        help="Directory of application.log*; default $RETAIL_LOG_DIR, else <project>/logs.",
        show_default=False,
        # Checked by the core, which answers an unreadable directory with exit 3 and one
        # line (SPEC §4), where Click's own check is a usage error in a box.
        readable=False,
    ),
]
Days = Annotated[
    int,
    typer.Option("--days", min=1, max=3650, help="Window: the last N UTC days, today included."),
]
Json = Annotated[
    bool, typer.Option("--json", help="Print the JSON document only (nothing else on stdout).")
]
