"""The read model of retailctl: tables, engine, computations. No Django, Typer or Rich here."""
