"""CLI sub-commands; see ``fusionrec.cli``."""
