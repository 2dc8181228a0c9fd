"""Pages for the site's admins: the outbox of mail kept when no SMTP server is configured.

Admin pages answer 404 to everyone else, like organizer pages: they are not advertised.
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask_login import login_required

from league.models import Role
from league.rules import outbox
from web.helpers import session, settings, viewer

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.route("/outbox")
@login_required
def outbox_page() -> tuple[str, int, dict[str, str]]:
    """The newest mails of the outbox, newest first (they may hold live reset links)."""
    user = viewer()
    if user is None or user.role != Role.ADMIN:
        abort(404)
    mails = outbox.latest(session())
    return (render_template("admin/outbox.html", mails=mails, smtp=settings().smtp is not None,
                            shown=outbox.OUTBOX_PAGE, keep_days=outbox.OUTBOX_KEEP.days),
            200, {"Cache-Control": "no-store"})
