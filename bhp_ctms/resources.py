"""The root resource: pages that belong to no study."""

from __future__ import annotations

from typing import Any

from bhp_ctms.permissions import root_acl


class RootFactory:
    __name__ = ""
    __parent__ = None

    def __init__(self, request: Any) -> None:
        self.request = request

    @property
    def __acl__(self) -> list[tuple[str, str, object]]:
        return root_acl()
