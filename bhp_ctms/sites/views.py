"""A study's sites: the list, each site's page and staff, and their management."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.view import view_config, view_defaults

from bhp_ctms.accounts.models import Membership
from bhp_ctms.accounts.services import AccountService
from bhp_ctms.audit.capture import ReasonRequired
from bhp_ctms.audit.links import value_history_links
from bhp_ctms.forms import attach_error, show_reason_required
from bhp_ctms.permissions import Permissions
from bhp_ctms.sites.forms import (
    DeleteSiteForm,
    EditSiteForm,
    GrantRoleForm,
    NewSiteForm,
    RevokeRoleForm,
)
from bhp_ctms.sites.models import Site
from bhp_ctms.sites.services import SiteError, SiteScope, SiteService, visible_sites
from bhp_ctms.studies.models import Study
from bhp_ctms.studies.services import study_access

# The values of a site shown on its page, each with a link to its history.
SITE_FIELDS = (
    ("code", "Code"),
    ("name", "Name"),
    ("principal_investigator", "Principal investigator (PI)"),
    ("status", "Status"),
    ("recruitment_target", "Recruitment target"),
    ("activated_on", "Activation date"),
)


class SiteViews:
    def __init__(self, context: Any, request: Any) -> None:
        self.context = context
        self.request = request
        self.study: Study = context.study
        self.service = SiteService(request.db)

    def page(self, **values: Any) -> dict[str, Any]:
        return {"study": self.study, "access": study_access(self.request, self.study.id), **values}

    def invalid(self, **values: Any) -> dict[str, Any]:
        self.request.response.status_int = 400
        return self.page(**values)


@view_defaults(route_name="sites", renderer="sites/list.html", permission=Permissions.STUDIES_VIEW)
class SiteListViews(SiteViews):
    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        scope = SiteScope.for_memberships(self.study.id, self.request.memberships)
        return self.page(
            sites=visible_sites(self.request.db, scope),
            can_manage=self.request.has_permission(Permissions.SITES_MANAGE),
        )


@view_defaults(
    route_name="site_new", renderer="sites/new.html", permission=Permissions.SITES_MANAGE
)
class NewSiteViews(SiteViews):
    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page(form=NewSiteForm(study_id=self.study.id, site_service=self.service))

    @view_config(request_method="POST")
    def create(self) -> Any:
        form = NewSiteForm(self.request.POST, study_id=self.study.id, site_service=self.service)
        if not form.validate():
            return self.invalid(form=form)
        try:
            site = self.service.create_site(
                self.request.audit_actor, self.study.id, form.code.data, form.details()
            )
        except SiteError as error:
            attach_error(form, str(error), error.field)
            return self.invalid(form=form)
        self.request.session.flash(
            f"Site {site.code} \N{EN DASH} {site.name} has been added.", "success"
        )
        return HTTPSeeOther(self.request.route_path("site", code=self.study.code, site=site.code))


class OneSiteViews(SiteViews):
    def __init__(self, context: Any, request: Any) -> None:
        super().__init__(context, request)
        self.site: Site = context.site

    def page(self, **values: Any) -> dict[str, Any]:
        return super().page(site=self.site, **values)

    def site_page(self, grant_form: GrantRoleForm | None = None) -> dict[str, Any]:
        return self.page(
            staff=self.service.staff_of(self.site),
            can_manage=self.request.has_permission(Permissions.SITES_MANAGE),
            grant_form=grant_form or GrantRoleForm(),
            history=value_history_links(
                self.request, self.study.code, "site", self.site.id, dict(SITE_FIELDS)
            ),
            fields=SITE_FIELDS,
        )

    def to_site_page(self, message: str) -> HTTPSeeOther:
        self.request.session.flash(message, "success")
        return HTTPSeeOther(
            self.request.route_path("site", code=self.study.code, site=self.site.code)
        )


@view_config(
    route_name="site",
    renderer="sites/site.html",
    request_method="GET",
    permission=Permissions.STUDIES_VIEW,
)
class SitePageView(OneSiteViews):
    def __call__(self) -> dict[str, Any]:
        return self.site_page()


@view_defaults(
    route_name="site_edit", renderer="sites/edit.html", permission=Permissions.SITES_MANAGE
)
class EditSiteViews(OneSiteViews):
    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        form = EditSiteForm(obj=self.site, current_status=self.site.status)
        form.status.data = self.site.status.value
        return self.page(form=form)

    @view_config(request_method="POST")
    def update(self) -> Any:
        form = EditSiteForm(self.request.POST, current_status=self.site.status)
        if not form.validate():
            return self.invalid(form=form)
        try:
            changed = self.service.update_site(
                self.request.audit_actor,
                self.site,
                form.details(),
                form.new_status,
                reason=form.reason.data or "",
            )
        except SiteError as error:
            attach_error(form, str(error), error.field)
            return self.invalid(form=form)
        except ReasonRequired as error:
            show_reason_required(self.request, form, "reason", error)
            return self.page(form=form)
        if not changed:
            return self.to_site_page(
                f"Site {self.site.code} was not changed: no value was different."
            )
        return self.to_site_page(f"Site {self.site.code} has been updated.")


@view_defaults(
    route_name="site_delete", renderer="sites/delete.html", permission=Permissions.SITES_MANAGE
)
class DeleteSiteViews(OneSiteViews):
    @view_config(request_method="GET")
    def confirm(self) -> dict[str, Any]:
        return self.page(form=DeleteSiteForm(), problem=self.service.deletion_problem(self.site))

    @view_config(request_method="POST")
    def delete(self) -> Any:
        form = DeleteSiteForm(self.request.POST)
        problem = self.service.deletion_problem(self.site)
        if problem:
            form.add_form_error(problem)
            return self.invalid(form=form, problem=problem)
        if not form.validate():
            return self.invalid(form=form, problem=None)
        code, name = self.site.code, self.site.name
        try:
            self.service.delete_site(self.request.audit_actor, self.site, form.reason.data)
        except SiteError as error:
            attach_error(form, str(error), error.field)
            return self.invalid(form=form, problem=str(error))
        except ReasonRequired as error:
            show_reason_required(self.request, form, "reason", error)
            return self.page(form=form, problem=None)
        self.request.session.flash(f"Site {code} \N{EN DASH} {name} has been deleted.", "success")
        return HTTPSeeOther(self.request.route_path("sites", code=self.study.code))


@view_config(
    route_name="site_staff_grant",
    renderer="sites/site.html",
    request_method="POST",
    permission=Permissions.SITES_MANAGE,
)
class GrantRoleView(OneSiteViews):
    def __call__(self) -> Any:
        form = GrantRoleForm(self.request.POST)
        if form.validate():
            accounts = AccountService(self.request.db, self.request.registry.settings["bhp_ctms"])
            try:
                membership = self.service.grant_role(
                    accounts,
                    self.request.audit_actor,
                    self.site,
                    form.username.data,
                    form.new_role,
                )
            except SiteError as error:
                attach_error(form, str(error), error.field)
            else:
                return self.to_site_page(
                    f"{membership.user.full_name} is now {membership.role.label} "
                    f"at site {self.site.code}."
                )
        self.request.response.status_int = 400
        return self.site_page(grant_form=form)


@view_defaults(
    route_name="site_staff_revoke",
    renderer="sites/revoke.html",
    permission=Permissions.SITES_MANAGE,
)
class RevokeRoleViews(OneSiteViews):
    def __init__(self, context: Any, request: Any) -> None:
        super().__init__(context, request)
        self.membership = self._membership()

    def _membership(self) -> Membership:
        raw = self.request.matchdict["membership"]
        membership = self.service.membership_at(self.site, int(raw)) if raw.isdigit() else None
        if membership is None:
            raise HTTPNotFound()
        return membership

    def page(self, **values: Any) -> dict[str, Any]:
        return super().page(membership=self.membership, **values)

    @view_config(request_method="GET")
    def confirm(self) -> dict[str, Any]:
        return self.page(form=RevokeRoleForm())

    @view_config(request_method="POST")
    def revoke(self) -> Any:
        form = RevokeRoleForm(self.request.POST)
        if not form.validate():
            return self.invalid(form=form)
        membership = self.membership
        who, role = membership.user.full_name, membership.role
        accounts = AccountService(self.request.db, self.request.registry.settings["bhp_ctms"])
        try:
            accounts.revoke_role(self.request.audit_actor, membership, form.reason.data)
        except ReasonRequired as error:
            show_reason_required(self.request, form, "reason", error)
            return self.page(form=form)
        return self.to_site_page(f"{who} is no longer {role.label} at site {self.site.code}.")
