"""The garage's downloads and chart data of one evaluation: the DeepRacer-style trace CSV of a
trial and the analysis JSON the entry page draws (both rebuilt from the stored replays).

An evaluation is shown to whoever may see its entry (its racer, the league's organizers);
anyone else gets a 404, as for the entry itself.
"""

from __future__ import annotations

from flask import Response, abort, jsonify, request
from flask_login import login_required

from league.models import EvaluationJob
from league.read import access, garage
from web.helpers import or_404, session, storage, viewer
from web.views.garage import bp


def _job_or_404(job_id: int) -> EvaluationJob:
    """A time-trial job whose entry the viewer may see, else 404."""
    job = or_404(access.visible_job, session(), job_id, viewer())
    if job.entry_id is None:  # heats race several racers' entries: not a garage page
        abort(404)
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
