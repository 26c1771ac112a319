"""``python -m bhp_ctms.cli``: the same as the ``ctms`` console script."""

from bhp_ctms.cli import main

main()
