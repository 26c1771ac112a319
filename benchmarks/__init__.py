"""Benchmarks of the audit trail: scripts that print their figures (see README.md)."""

import warnings

# Pyramid still imports pkg_resources; the warning is not ours (pytest ignores it too).
warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
