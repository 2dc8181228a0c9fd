"""The racer's garage: models, entries, live evaluation status, analysis, API tokens.

Everything here belongs to the signed-in racer: another racer's model or entry is a 404
(the league's organizers may also open an entry and its evaluations' trace CSV and analysis
data; anyone else gets a 404, as for the entry itself).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import login_required
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Response as Redirect
from wtforms import SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length, ValidationError

from league.errors import LeagueError
from league.models import EvaluationJob, PolicyModel, TokenScope, User, utcnow
from league.read import access, garage, secrets
from league.rules import accounts, leaderboard, submissions
from league.rules.text import clean_name
from web import filters
from web.extensions import upload_budget
from web.helpers import (
    Page,
    get_entry_or_404,
    get_race_or_404,
    or_404,
    page_args,
    session,
    settings,
    storage,
    viewer,
)

bp = Blueprint("garage", __name__, url_prefix="/garage")

MAX_MODEL_NAME_CHARS = submissions.MAX_MODEL_NAME_CHARS
ENTRIES_PER_PAGE = 25


@bp.context_processor
def _status_helpers() -> dict[str, Any]:
    """How the garage's templates turn an entry status into a badge."""
    return {"status_label": filters.status_label, "status_class": filters.status_class,
            "status_final": garage.is_final, "action_space": filters.action_space_summary}


class UploadForm(FlaskForm):
    """A model file for a race, with optional metadata and name."""

    model = FileField("Model file (.onnx)", validators=[
        FileRequired("choose the .onnx file of your policy")],
        description="an ONNX policy of at most 16 MiB; it is validated before anything is "
                    "stored")
    metadata = FileField("model_metadata.json (optional)",
                         description="DeepRacer-style action space, if the file does not "
                                     "embed its metadata")
    name = StringField("Model name (optional)", validators=[Length(max=MAX_MODEL_NAME_CHARS)],
                       description="default: the name in the metadata; each upload under a "
                                   "name is its next version")

    def validate_name(self, field: StringField) -> None:
        """Refuse names the league would refuse (invisible characters, too long)."""
        try:
            clean_name(field.data or "", "a model name", MAX_MODEL_NAME_CHARS, required=False)
        except LeagueError as err:
            raise ValidationError(str(err)) from err


def _lifetime_label(ttl: dt.timedelta | None) -> str:
    """How a token lifetime reads in the form ("90 days", "1 year", "never")."""
    if ttl is None:
        return "never"
    return "1 year" if ttl.days == 365 else f"{ttl.days} days"


TOKEN_SCOPE_LABELS = {TokenScope.SUBMIT.value: "submit: everything you may do",
                      TokenScope.READ.value: "read: reading only"}


class TokenForm(FlaskForm):
    """A new personal API token: its name, scope and lifetime."""

    name = StringField("Token name", validators=[DataRequired(), Length(max=80)],
                       description="what it is for, e.g. 'laptop' or 'training box'")
    scope = SelectField("Scope", choices=[SelectChoice(value, label)
                                          for value, label in TOKEN_SCOPE_LABELS.items()],
                        default=TokenScope.SUBMIT.value,
                        description="a read token is refused by every request that changes "
                                    "something, submitting included")
    lifetime = SelectField("Expires after", choices=[
        SelectChoice(key, _lifetime_label(ttl)) for key, ttl in accounts.TOKEN_LIFETIMES.items()],
        default=accounts.DEFAULT_TOKEN_LIFETIME)


def _me() -> User:
    user = viewer()
    if user is None:  # login_required ran first; this only narrows the type
        abort(401)
    return user


def _read(upload: Any) -> bytes | None:
    """The bytes of an uploaded file, or None when no file was chosen."""
    if isinstance(upload, FileStorage) and upload.filename:
        data: bytes = upload.read()
        return data
    return None


@bp.route("/")
@login_required
def index() -> str:
    """The racer's models and entries, with the live status of each entry."""
    user = _me()
    page, per_page = page_args(ENTRIES_PER_PAGE)
    rows, total = garage.garage_entries(session(), user, offset=(page - 1) * per_page,
                                       limit=per_page)
    return render_template("garage/index.html", entries=Page(rows, page, per_page, total),
                           models=garage.racer_models(session(), user))


@bp.route("/races/<int:race_id>/enter", methods=["GET", "POST"])
@login_required
@upload_budget
def enter(race_id: int) -> Any:
    """Upload a model to a race; a refusal is shown next to the file field (400)."""
    race = get_race_or_404(race_id)
    form = UploadForm()
    if form.validate_on_submit():
        try:
            entry = submissions.submit_entry(
                session(), storage(), race, _me(), _read(form.model.data) or b"",
                _read(form.metadata.data), model_name=form.name.data or "",
                max_attempts=settings().max_attempts,
                max_queued=settings().max_queued_per_racer)
        except LeagueError as err:
            session().rollback()
            form.model.errors = [*form.model.errors, str(err)]  # type: ignore[list-item]
        else:
            session().commit()
            flash(f"{entry.model.name} v{entry.model.version} is entered in {race.name}.",
                  "success")
            return redirect(url_for("garage.entry", entry_id=entry.id))
    status = 400 if form.is_submitted() else 200
    return render_template("garage/enter.html", race=race, form=form,
                           closed=garage.entry_closed_reason(race),
                           hidden=secrets.race_secrets(session(), race, viewer()),
                           shape=secrets.track_shape(race)), status


@bp.route("/entries/<int:entry_id>")
@login_required
def entry(entry_id: int) -> str:
    """One entry: status, the per-trial results of its latest evaluation, downloads, charts;
    a head-to-head entry's standing and latest heats."""
    found = get_entry_or_404(entry_id)
    return render_template("garage/entry.html", entry=found,
                           status=leaderboard.entry_status(session(), found),
                           evaluation=garage.latest_evaluation(session(), found),
                           h2h=garage.head_to_head_entry(session(), found),
                           previous=garage.previous_runs(session(), found.racer,
                                                         [found]).get(found.id),
                           owner=found.racer_id == _me().id,
                           hidden=secrets.race_secrets(session(), found.race, _me()))


@bp.route("/entries/<int:entry_id>/status.json")
@login_required
def entry_status(entry_id: int) -> Response:
    """An entry's evaluation status, polled by the garage and entry pages."""
    found = get_entry_or_404(entry_id)
    status = leaderboard.entry_status(session(), found)
    standing = garage.entry_standing(session(), found)
    return jsonify({**status.to_dict(),
                    "label": filters.status_label(status, found.race.format, standing),
                    "css": filters.status_class(status), "final": garage.is_final(status)})


def _model_or_404(model_id: int) -> PolicyModel:
    return or_404(garage.get_model, session(), model_id, viewer())


@bp.route("/models/<int:model_id>")
@login_required
def model(model_id: int) -> str:
    """One model name: its versions and the entries made with each."""
    found = _model_or_404(model_id)
    return render_template("garage/model.html", model=found,
                           group=garage.model_versions(session(), found))


@bp.route("/models/<int:model_id>/download")
@login_required
def model_download(model_id: int) -> Response:
    """A model file, as an attachment only (never shown inline)."""
    found = _model_or_404(model_id)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", found.name).strip("-.") or "model"
    response = Response(garage.model_file(storage(), found),
                        mimetype="application/octet-stream")
    response.headers["Content-Disposition"] = \
        f'attachment; filename="{stem}-v{found.version}.onnx"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/tokens", methods=["GET", "POST"])
@login_required
def tokens() -> Any:
    """Personal API tokens: create one (its secret is shown on this response only), list."""
    user = _me()
    form = TokenForm()
    plain = None
    if form.validate_on_submit():
        try:
            token, plain = accounts.create_token(session(), user, form.name.data or "",
                                                 form.scope.data, form.lifetime.data)
        except LeagueError as err:
            form.name.errors = [*form.name.errors, str(err)]  # type: ignore[list-item]
        else:
            session().commit()
            form = TokenForm(formdata=None)
    status = 400 if form.is_submitted() and plain is None else 200
    response = Response(render_template("garage/tokens.html", form=form, plain=plain,
                                        tokens=garage.racer_tokens(session(), user),
                                        now=utcnow()),
                        status=status)
    response.headers["Cache-Control"] = "no-store"  # the one page a secret is ever shown on
    return response


@bp.route("/tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def revoke_token(token_id: int) -> Redirect:
    """Revoke one of the racer's tokens; it stops working at once."""
    or_404(accounts.revoke_token, session(), _me(), token_id)
    session().commit()
    flash("The token is revoked.", "success")
    return redirect(url_for("garage.tokens"))


# ------------------------------------------------------------- one evaluation's downloads
# The DeepRacer-style trace CSV of a trial and the analysis JSON the entry page draws, both
# rebuilt from the stored replays.
def _job_or_404(job_id: int) -> EvaluationJob:
    """A time-trial job whose entry the viewer may see, else 404."""
    job = or_404(access.visible_job, session(), job_id, viewer())
    if job.entry_id is None:  # heats race several racers' entries: not a garage page
        abort(404)
    if job.entry is not None and secrets.race_secrets(session(), job.entry.race,
                                                      viewer()).track:
        abort(404, "the track of this race is a mystery until the race closes: its runs' "
                   "traces and analysis are shown then")
    return job


@bp.route("/evaluations/<int:job_id>/trace.csv")
@login_required
def trace_csv(job_id: int) -> Response:
    """One trial's trace log (``?trial=N``, default the ranked trial) as a CSV attachment."""
    job = _job_or_404(job_id)
    ranked = (job.result.data or {}).get("ranked_trial") if job.result else None
    trial = request.args.get("trial", type=int) or ranked or 1
    text = or_404(garage.trace_csv, session(), storage(), job, trial)
    response = Response(text, mimetype="text/csv")
    response.headers["Content-Disposition"] = \
        f'attachment; filename="paddock-evaluation-{job.id}-trial-{trial}.csv"'
    return response


@bp.route("/evaluations/<int:job_id>/analysis.json")
@login_required
def analysis(job_id: int) -> Response:
    """What the entry page's analysis charts draw, per trial and across trials."""
    job = _job_or_404(job_id)
    return jsonify(garage.job_analysis(session(), storage(), job))
