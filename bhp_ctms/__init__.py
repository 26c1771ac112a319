"""BHP CTMS: clinical trial management with electronic case report forms."""

__version__ = "0.1.0"
