"""The trials unit's portfolio page."""

from __future__ import annotations

from typing import Any

from pyramid.view import view_config

from bhp_ctms.permissions import Permissions
from bhp_ctms.studies.portfolio import portfolio


@view_config(
    route_name="portfolio",
    renderer="studies/portfolio.html",
    request_method="GET",
    permission=Permissions.PORTFOLIO_VIEW,
)
class PortfolioView:
    def __init__(self, context: Any, request: Any) -> None:
        self.request = request

    def __call__(self) -> dict[str, Any]:
        return {"groups": portfolio(self.request.db)}
