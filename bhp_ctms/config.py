"""The composition root: builds the Pyramid application from its settings."""

from __future__ import annotations

import gc
from collections.abc import Mapping
from functools import partial
from typing import Any

import jinja2
from jinja2 import ChainableUndefined
from pyramid.config import Configurator
from pyramid.router import Router

from bhp_ctms.resources import RootFactory
from bhp_ctms.settings import Settings

# The domains, in dependency order: each may use those above it, never those below.
DOMAINS = (
    "bhp_ctms.audit",
    "bhp_ctms.accounts",
    "bhp_ctms.studies",
    "bhp_ctms.sites",
    "bhp_ctms.participants",
    "bhp_ctms.crf",
    "bhp_ctms.randomisation",
    "bhp_ctms.locks",
    "bhp_ctms.storage",
    "bhp_ctms.exports",
    "bhp_ctms.mail",
)


def configure(settings: Mapping[str, Any] | None = None) -> Configurator:
    """Build the configuration; ``settings`` are the ini file's ``[app:main]`` values."""
    raw = dict(settings or {})
    typed = raw.get("bhp_ctms")
    if not isinstance(typed, Settings):
        typed = Settings.from_mapping(raw)
    raw["bhp_ctms"] = typed
    raw.setdefault("tm.manager_hook", "pyramid_tm.explicit_manager")
    raw.setdefault("retry.attempts", 3)
    raw.setdefault("jinja2.directories", ["bhp_ctms:templates", "nhsuk_frontend_jinja:templates"])
    raw.setdefault("jinja2.filters", {"ukdate": "bhp_ctms.templating:ukdate"})
    raw.setdefault("jinja2.extensions", ["jinja2.ext.do"])
    raw.setdefault("jinja2.trim_blocks", True)
    raw.setdefault("jinja2.lstrip_blocks", True)

    config = Configurator(settings=raw, root_factory=RootFactory)

    config.include("pyramid_jinja2")
    config.add_jinja2_renderer(".html")
    config.action(
        ("bhp_ctms", "jinja2-environment"),
        lambda: _set_up_templates(config.get_jinja2_environment(".html")),
        order=999,
    )

    config.include("pyramid_retry")
    config.include("pyramid_tm")
    config.include("bhp_ctms.db")
    config.include("bhp_ctms.sessions")
    config.include("bhp_ctms.security")
    config.include("bhp_ctms.headers")
    config.include("bhp_ctms.tasks")
    config.include("bhp_ctms.templating")
    for domain in DOMAINS:
        config.include(domain)
    config.include("bhp_ctms.views")
    config.scan("bhp_ctms", ignore=["bhp_ctms.cli"])
    return config


def _set_up_templates(environment: Any) -> None:
    # nhsuk-frontend-jinja's macros chain attribute look-ups on optional parameters.
    environment.undefined = ChainableUndefined
    # Every template is named from the root of the template directories. pyramid_jinja2
    # names an imported template after the chain of templates importing it too, so it
    # compiled and cached each template once per chain: some 1,600 entries for our
    # pages, beyond the cache's 400, and templates were compiled again on page after
    # page. Jinja2's own rule keeps one name, and one compiled template, per file.
    environment.join_path = partial(jinja2.Environment.join_path, environment)


def main(global_config: Mapping[str, Any], **settings: Any) -> Router:
    """PasteDeploy entry point (``pserve``, any WSGI server)."""
    app = configure(settings).make_wsgi_app()
    # What is built at start-up lives as long as the process: take it out of the garbage
    # collector's generations, so that the full collections a large page triggers do
    # not scan it again and again (a 2,000-participant grid renders about a third
    # faster).
    gc.freeze()
    return app
