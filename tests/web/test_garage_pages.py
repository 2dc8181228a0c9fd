"""The garage: uploading to a race, models and their files, entries and who may see them."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re

import sqlalchemy as sa

from league.models import (
    Entry,
    EvaluationJob,
    JobStatus,
    MemberRole,
    Membership,
    PolicyModel,
    Visibility,
    utcnow,
)
from league.rules import leagues
from tests.web.garage_support import open_race, upload


def _stored_models(storage) -> list:
    root = storage.root / "models"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _field_errors(html: str, field_id: str) -> list[str]:
    """The error messages rendered in the field block of input ``field_id``."""
    block = re.search(rf'<div class="field[^"]*">\s*<label for="{field_id}".*?</div>', html,
                      re.S)
    assert block, f"no field {field_id}"
    return re.findall(r'<p class="error" role="alert">(.*?)</p>', block.group(0), re.S)


def test_upload_enters_the_race_and_queues_the_evaluation(client, login, session, make,
                                                          storage):
    race = open_race(session, make, name="Autumn Cup")
    ada = make.user(session, "ada")
    session.commit()
    login(client, ada)
    form = client.get(f"/garage/races/{race.id}/enter")
    html = form.get_data(as_text=True)
    assert form.status_code == 200
    assert 'enctype="multipart/form-data"' in html and 'accept=".onnx"' in html
    assert "Rules of this race" in html and "off track 5.0 s" in html
    assert "js/upload.js" in html and "<script>" not in html
    data = make.policy(name="follower")
    r = upload(client, race.id, data, name="  Speedy  ")
    assert r.status_code == 302
    entry = session.scalars(sa.select(Entry)).one()
    assert r.headers["Location"] == f"/garage/entries/{entry.id}"
    assert (entry.racer_id, entry.race_id) == (ada.id, race.id)
    assert (entry.model.name, entry.model.version) == ("Speedy", 1)
    assert entry.model.sha256 == hashlib.sha256(data).hexdigest()
    assert storage.get("models", entry.model.sha256) == data
    (job,) = entry.jobs
    assert job.status == JobStatus.QUEUED
    session.commit()  # end the read: on SQLite a transaction holds the write lock
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "Speedy v1" in page and "is entered in Autumn Cup" in page
    assert 'data-final="false"' in page and ">queued</span>" in page
    # the same file again is the same version; a new file under the same name is the next
    assert upload(client, race.id, data, name="Speedy").status_code == 302
    assert upload(client, race.id, make.policy(3.0), name="Speedy").status_code == 302
    versions = session.scalars(sa.select(PolicyModel.version).order_by(PolicyModel.id)).all()
    assert versions == [1, 2]
    assert [e.model.version for e in session.scalars(sa.select(Entry).order_by(Entry.id))] \
        == [1, 1, 2]


def test_a_refused_model_shows_the_reason_next_to_the_file_field(client, login, session, make,
                                                                 storage):
    race = open_race(session, make)
    ada = make.user(session, "ada")
    session.commit()
    login(client, ada)
    r = upload(client, race.id, b"this is not an onnx file")
    assert r.status_code == 400
    (error,) = _field_errors(r.get_data(as_text=True), "model")
    assert error.startswith("model refused: parse:")
    # metadata that contradicts the network: refused by the validator, with its rule
    bad_meta = json.dumps({"action_space_type": "continuous", "action_space": {
        "steering_angle": {"low": -30, "high": 30}, "speed": {"low": 0.5, "high": 99}}})
    r = upload(client, race.id, make.policy(), metadata=bad_meta.encode())
    assert r.status_code == 400
    (error,) = _field_errors(r.get_data(as_text=True), "model")
    assert "metadata" in error and "99" in error
    # no file at all
    r = client.post(f"/garage/races/{race.id}/enter", data={"name": "x"},
                    content_type="multipart/form-data")
    assert r.status_code == 400
    assert _field_errors(r.get_data(as_text=True), "model") == [
        "choose the .onnx file of your policy"]
    # a name the league would refuse is shown next to the name field
    r = upload(client, race.id, make.policy(), name="evil\u202ename")
    assert r.status_code == 400
    assert "invisible" in " ".join(_field_errors(r.get_data(as_text=True), "name"))
    session.expire_all()
    assert session.scalar(sa.select(sa.func.count(PolicyModel.id))) == 0
    assert session.scalar(sa.select(sa.func.count(Entry.id))) == 0
    assert _stored_models(storage) == []


def test_closed_and_full_races_refuse_with_400(client, login, session, make, storage):
    now = utcnow()
    closed = open_race(session, make, name="Old", opens_at=now - dt.timedelta(days=9),
                       closes_at=now - dt.timedelta(days=2))
    full = open_race(session, make, closed.league, name="Full", max_entries_total=1)
    ada = make.user(session, "ada")
    session.commit()
    login(client, ada)
    page = client.get(f"/garage/races/{closed.id}/enter").get_data(as_text=True)
    assert "This race is closed." in page
    r = upload(client, closed.id, make.policy())
    assert r.status_code == 400
    assert _field_errors(r.get_data(as_text=True), "model") == ["this race is closed"]
    assert upload(client, full.id, make.policy()).status_code == 302
    r = upload(client, full.id, make.policy(speed=1.5))
    assert r.status_code == 400
    assert "all 1 entries" in _field_errors(r.get_data(as_text=True), "model")[0]
    session.expire_all()
    assert session.scalar(sa.select(sa.func.count(Entry.id))) == 1
    session.commit()
    assert len(_stored_models(storage)) == 1


def test_private_league_races_are_404_for_non_members(client, login, session, make, storage):
    league = make.league(session, slug="secret", visibility=Visibility.PRIVATE)
    race = open_race(session, make, league)
    outsider, member = make.user(session, "out"), make.user(session, "member")
    leagues.join_league(session, league, member, league.invite_code)
    session.commit()
    login(client, outsider)
    assert client.get(f"/garage/races/{race.id}/enter").status_code == 404
    assert upload(client, race.id, make.policy()).status_code == 404
    assert _stored_models(storage) == []
    login(client, member)
    assert upload(client, race.id, make.policy()).status_code == 302


def test_garage_lists_models_and_entries_with_their_status(client, login, session, make):
    race = open_race(session, make, name="Sprint")
    ada, bob = make.user(session, "ada"), make.user(session, "bob")
    session.commit()
    login(client, ada)
    assert upload(client, race.id, make.policy(), name="follower").status_code == 302
    assert upload(client, race.id, make.policy(speed=1.5), name="follower").status_code == 302
    html = client.get("/garage/").get_data(as_text=True)
    assert html.count("Sprint</a>") >= 2 and "v1" in html and "v2" in html
    assert "continuous: steering -30° to 30°, speed 2-2 m/s" in html
    assert html.count('data-final="false"') == 2 and "js/status.js" in html
    sha = session.scalars(sa.select(PolicyModel.sha256)).first()
    session.commit()
    assert sha[:12] in html
    login(client, bob)
    other = client.get("/garage/").get_data(as_text=True)
    assert "Sprint" not in other and "No entries yet" in other and sha[:12] not in other


def test_garage_needs_a_login(client, session, make):
    race = open_race(session, make)
    session.commit()
    for path in ("/garage/", f"/garage/races/{race.id}/enter", "/garage/tokens",
                 "/garage/entries/1", "/garage/entries/1/status.json", "/garage/models/1",
                 "/garage/models/1/download", "/garage/evaluations/1/trace.csv",
                 "/garage/evaluations/1/analysis.json"):
        r = client.get(path)
        assert r.status_code == 302 and "/login" in r.headers["Location"], path


def test_another_racers_entry_and_model_are_404(client, login, session, make, storage):
    league = make.league(session, slug="club")
    race = open_race(session, make, league)
    ada, bob = make.user(session, "ada"), make.user(session, "bob")
    session.commit()
    login(client, ada)
    assert upload(client, race.id, make.policy()).status_code == 302
    entry = session.scalars(sa.select(Entry)).one()
    job = entry.jobs[0]
    session.commit()
    mine = (f"/garage/entries/{entry.id}", f"/garage/entries/{entry.id}/status.json",
            f"/garage/models/{entry.model_id}", f"/garage/models/{entry.model_id}/download",
            f"/garage/evaluations/{job.id}/trace.csv",
            f"/garage/evaluations/{job.id}/analysis.json")
    for path in mine[:4]:
        assert client.get(path).status_code == 200, path
    login(client, bob)
    for path in mine:
        assert client.get(path).status_code == 404, path
    for path in ("/garage/entries/999", "/garage/models/999", "/garage/evaluations/999/trace.csv"):
        assert client.get(path).status_code == 404, path
    # the league's organizer sees the entry, but never the model file
    organizer = make.organizer(session, league)
    session.commit()
    login(client, organizer)
    page = client.get(f"/garage/entries/{entry.id}")
    assert page.status_code == 200 and "ada" in page.get_data(as_text=True)
    assert client.get(f"/garage/entries/{entry.id}/status.json").status_code == 200
    assert client.get(f"/garage/models/{entry.model_id}").status_code == 404
    assert client.get(f"/garage/models/{entry.model_id}/download").status_code == 404
    # a co-organizer added later sees it too; a plain member does not
    carol = make.user(session, "carol")
    session.add(Membership(league_id=league.id, user_id=carol.id, role=MemberRole.MEMBER))
    session.commit()
    login(client, carol)
    assert client.get(f"/garage/entries/{entry.id}").status_code == 404
    session.scalars(sa.select(Membership).where(Membership.user_id == carol.id)).one().role = \
        MemberRole.ORGANIZER
    session.commit()
    assert client.get(f"/garage/entries/{entry.id}").status_code == 200


def test_model_download_is_an_attachment(client, login, session, make):
    race = open_race(session, make)
    ada = make.user(session, "ada")
    session.commit()
    login(client, ada)
    data = make.policy()
    assert upload(client, race.id, data, name="my model/<v>").status_code == 302
    model = session.scalars(sa.select(PolicyModel)).one()
    session.commit()
    page = client.get(f"/garage/models/{model.id}").get_data(as_text=True)
    assert model.sha256 in page and "my model/&lt;v&gt;" in page
    r = client.get(f"/garage/models/{model.id}/download")
    assert r.status_code == 200 and r.data == data
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["Content-Disposition"] == 'attachment; filename="my-model-v-v1.onnx"'
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "inline" not in r.headers["Content-Disposition"]


def test_entry_page_shows_failure_and_disqualification(client, login, session, make):
    league = make.league(session)
    race = open_race(session, make, league)
    ada = make.user(session, "ada")
    failed, dq = make.entry(session, race, ada), make.entry(session, race, ada)
    session.add(EvaluationJob(entry_id=failed.id, status=JobStatus.FAILED, attempts=3,
                              failure_kind="infrastructure", failure_reason="worker lost 3 times"))
    dq.disqualified_at = utcnow()
    dq.disqualified_reason = "copied <someone> else's model"
    session.commit()
    login(client, ada)
    html = client.get(f"/garage/entries/{failed.id}").get_data(as_text=True)
    assert "Failed (infrastructure): worker lost 3 times" in html
    assert 'data-final="true"' in html
    html = client.get(f"/garage/entries/{dq.id}").get_data(as_text=True)
    assert "Disqualified: copied &lt;someone&gt; else&#39;s model" in html
    status = client.get(f"/garage/entries/{dq.id}/status.json").get_json()
    assert status["disqualified"] is True and status["label"] == "disqualified"
    assert status["final"] is True


def test_uploads_are_rate_limited_and_need_the_csrf_token(make_app, login, session, make):
    race = open_race(session, make)
    ada = make.user(session, "ada")
    session.commit()
    client = make_app(RATELIMIT_ENABLED=True, RATELIMIT_UPLOAD="2 per minute").test_client()
    login(client, ada)
    for _ in range(2):
        assert upload(client, race.id, b"junk").status_code == 400
    r = upload(client, race.id, make.policy())
    assert r.status_code == 429 and "too many requests" in r.get_data(as_text=True)
    assert client.get(f"/garage/races/{race.id}/enter").status_code == 200  # only posts count
    guarded = make_app(WTF_CSRF_ENABLED=True).test_client()
    login(guarded, ada)
    r = upload(guarded, race.id, make.policy())
    assert r.status_code == 400 and "Form expired" in r.get_data(as_text=True)
    html = guarded.get(f"/garage/races/{race.id}/enter").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert token, html
    r = guarded.post(f"/garage/races/{race.id}/enter", content_type="multipart/form-data",
                     data={"csrf_token": token.group(1),
                           "model": (io.BytesIO(make.policy()), "m.onnx")})
    assert r.status_code == 302
    session.expire_all()
    assert session.scalar(sa.select(sa.func.count(Entry.id))) == 1


def test_a_division_race_refuses_other_racers_next_to_the_field(client, login, session, make):
    league = make.league(session)
    pro = league.divisions[0]
    race = open_race(session, make, league, divisions=[pro])
    ada = make.user(session, "ada")
    leagues.join_league(session, league, ada)
    session.commit()
    login(client, ada)
    r = upload(client, race.id, make.policy())
    assert r.status_code == 400
    assert _field_errors(r.get_data(as_text=True), "model") == [
        f"this race is for racers of {pro.name}"]
