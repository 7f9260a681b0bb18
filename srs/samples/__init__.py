"""Sample tickets shipped with srs (used by ``srs publish --samples`` and the demo)."""
