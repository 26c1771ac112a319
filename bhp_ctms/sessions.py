"""Server-side sessions stored in the database.

The cookie carries only a random token; the database keeps its SHA-256, so a copy of
the sessions table cannot be replayed as cookies. Sessions are revocable (deleting
the rows ends them, which is what disabling a user does), rotated at log-in, expire
after 30 minutes idle and 12 hours in all (configurable), and are written in the
request's own transaction just before it commits.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from pyramid.interfaces import ISession
from sqlalchemy import JSON, ForeignKey, String, delete
from sqlalchemy.orm import Mapped, Session, mapped_column
from zope.interface import implementer

from bhp_ctms.db import ModelBase, utcnow

COOKIE_NAME = "bhp_ctms_session"
# Writing last_seen_at on every request would make every page view a write;
# idle time is measured to within this much.
LAST_SEEN_RESOLUTION = timedelta(seconds=60)


class UserSession(ModelBase):
    __tablename__ = "user_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def end_sessions_of_user(db: Session, user_id: int) -> int:
    """Revoke every session of a user; returns how many were ended."""
    result = db.execute(delete(UserSession).where(UserSession.user_id == user_id))
    return int(getattr(result, "rowcount", 0) or 0)


def purge_expired_sessions(db: Session, settings: Any, now: datetime | None = None) -> int:
    now = now or utcnow()
    result = db.execute(
        delete(UserSession).where(
            (UserSession.last_seen_at < now - settings.session_idle_timeout)
            | (UserSession.created_at < now - settings.session_absolute_timeout)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


@implementer(ISession)
class DatabaseSession(dict[str, Any]):
    """A Pyramid ``ISession`` whose contents live in the ``user_sessions`` table."""

    def __init__(self, request: Any) -> None:
        super().__init__()
        self.request = request
        self._settings = request.registry.settings["bhp_ctms"]
        self._record: UserSession | None = None
        self._token: str | None = None
        self._dirty = False
        self._hook_registered = False
        self._cookie_to_set: str | None = None
        self._cookie_to_clear = False
        #: True when the request came with a session that had timed out.
        self.expired = False
        self.new = True
        self.created = utcnow().timestamp()
        self._load()
        request.add_response_callback(self._set_cookie)

    # -- loading and saving ------------------------------------------------------

    def _load(self) -> None:
        token = self.request.cookies.get(COOKIE_NAME)
        if not token:
            return
        db: Session = self.request.db
        record = db.get(UserSession, hash_token(token))
        if record is None:
            self._cookie_to_clear = True
            return
        now = utcnow()
        if (
            now - record.last_seen_at > self._settings.session_idle_timeout
            or now - record.created_at > self._settings.session_absolute_timeout
        ):
            db.delete(record)
            self.expired = True
            self._cookie_to_clear = True
            self._register_hook()
            return
        self._record = record
        self._token = token
        self.new = False
        self.created = record.created_at.timestamp()
        super().update(record.data or {})
        if now - record.last_seen_at >= LAST_SEEN_RESOLUTION:
            record.last_seen_at = now

    def _register_hook(self) -> None:
        if not self._hook_registered:
            self.request.tm.get().addBeforeCommitHook(self._persist)
            self._hook_registered = True

    def _persist(self) -> None:
        if not self._dirty:
            return
        db: Session = self.request.db
        if self._record is None:
            self._token = secrets.token_urlsafe(32)
            self._record = UserSession(token_hash=hash_token(self._token), data={})
            db.add(self._record)
            self._cookie_to_set = self._token
        self._record.data = dict(self)
        self._record.user_id = self.get("auth.user_id")
        self._record.last_seen_at = utcnow()
        db.flush()

    def _set_cookie(self, request: Any, response: Any) -> None:
        if self._cookie_to_set is not None:
            response.set_cookie(
                COOKIE_NAME,
                self._cookie_to_set,
                httponly=True,
                secure=self._settings.cookie_secure,
                samesite="Lax",
                path="/",
            )
        elif self._cookie_to_clear:
            response.delete_cookie(COOKIE_NAME, path="/")

    def changed(self) -> None:
        self._dirty = True
        self._register_hook()

    # -- life cycle --------------------------------------------------------------

    def invalidate(self) -> None:
        """End this session: its row is deleted and a fresh, empty one begins."""
        if self._record is not None:
            db: Session = self.request.db
            # A core DELETE, because the row may already be gone (all of a user's
            # sessions ended in this same transaction).
            db.execute(
                delete(UserSession).where(UserSession.token_hash == self._record.token_hash),
                execution_options={"synchronize_session": False},
            )
            if self._record in db:
                db.expunge(self._record)
        self._record = None
        self._token = None
        self._cookie_to_clear = True
        self._cookie_to_set = None
        super().clear()
        self.new = True
        self.created = utcnow().timestamp()

    def rotate(self) -> None:
        """Give this session a new identifier, keeping its contents (log-in time).

        A session identifier known before log-in is worthless after it, which
        defeats session fixation.
        """
        contents = dict(self)
        contents.pop("_csrft_", None)
        self.invalidate()
        super().update(contents)
        self.changed()

    # -- dict mutations mark the session changed -------------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.changed()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.changed()

    def pop(self, key: str, *args: Any) -> Any:
        value = super().pop(key, *args)
        self.changed()
        return value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self.changed()
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self.changed()

    def clear(self) -> None:
        super().clear()
        self.changed()

    # -- flash messages and CSRF (ISession) --------------------------------------

    def flash(self, msg: str, queue: str = "", allow_duplicate: bool = True) -> None:
        key = f"_f_{queue}"
        messages = list(self.get(key, []))
        if allow_duplicate or msg not in messages:
            messages.append(msg)
        self[key] = messages

    def pop_flash(self, queue: str = "") -> list[str]:
        key = f"_f_{queue}"
        if key not in self:
            return []
        return list(self.pop(key))

    def peek_flash(self, queue: str = "") -> list[str]:
        return list(self.get(f"_f_{queue}", []))

    def new_csrf_token(self) -> str:
        token = secrets.token_urlsafe(32)
        self["_csrft_"] = token
        return token

    def get_csrf_token(self) -> str:
        token = self.get("_csrft_")
        return token if token is not None else self.new_csrf_token()


def session_factory(request: Any) -> DatabaseSession:
    return DatabaseSession(request)


def includeme(config: Any) -> None:
    config.set_session_factory(session_factory)
