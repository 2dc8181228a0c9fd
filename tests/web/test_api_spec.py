"""The OpenAPI document: generated from the routes, complete, and valid."""

from __future__ import annotations

import re

import jsonschema
from flask import Flask

from tests.web.api_support import PREFIX, ApiClient
from web.api.spec import openapi_path

HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def test_the_document_is_served_without_a_token(api: ApiClient) -> None:
    r = api.get("/openapi.json")
    doc = r.get_json()
    assert r.status_code == 200 and doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] == "Paddock API" and doc["info"]["version"]
    assert doc["servers"] == [{"url": PREFIX}]
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearer"]["description"]}
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]


def test_every_api_route_is_in_the_document(app: Flask, api: ApiClient) -> None:
    declared = {(path, method.upper()) for path, item in api.doc["paths"].items()
                for method in item}
    routed = {(openapi_path(rule.rule[len(PREFIX):]), method)
              for rule in app.url_map.iter_rules() if rule.rule.startswith(PREFIX + "/")
              for method in (rule.methods or set()) & HTTP_METHODS}
    assert routed == declared
    assert declared == CONTRACT


# The endpoints DESIGN.md lists ("HTTP API"), plus the lists, the caller, a head-to-head
# race's heats and a racer's matchups in it, a league's audit log, and live events.
CONTRACT = {
    ("/openapi.json", "GET"), ("/tracks", "GET"), ("/leagues", "GET"), ("/leagues", "POST"),
    ("/leagues/{slug}", "GET"), ("/leagues/{slug}/seasons", "POST"),
    ("/leagues/{slug}/races", "GET"), ("/leagues/{slug}/races", "POST"), ("/races", "GET"),
    ("/races/{race_id}", "GET"), ("/races/{race_id}/leaderboard", "GET"),
    ("/races/{race_id}/entries", "POST"), ("/races/{race_id}/close", "POST"),
    ("/entries/{entry_id}", "GET"), ("/entries/{entry_id}/rerun", "POST"),
    ("/entries/{entry_id}/disqualify", "POST"), ("/evaluations/{job_id}", "GET"),
    ("/evaluations/{job_id}/replay", "GET"), ("/me", "GET"), ("/me/entries", "GET"),
    ("/races/{race_id}/heats", "GET"), ("/races/{race_id}/racers/{name}/matchups", "GET"),
    ("/leagues/{slug}/audit", "GET"), ("/races/{race_id}/secrecy", "POST"),
    ("/races/{race_id}/events", "GET"), ("/races/{race_id}/events", "POST"),
    ("/events/{event_id}", "GET"), ("/events/{event_id}", "DELETE"),
}


def test_every_operation_has_a_summary_responses_and_security(api: ApiClient) -> None:
    ids = set()
    for path, item in api.doc["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            assert op["summary"] and not op["summary"].endswith(" "), where
            assert op["operationId"] not in ids, where
            ids.add(op["operationId"])
            statuses = set(op["responses"])
            assert any(s.startswith("2") for s in statuses), where
            assert "429" in statuses, where  # the whole API is rate limited
            for status, response in op["responses"].items():
                assert response["description"], (where, status)
            if op["security"] and op["security"] != [{}, {"bearer": []}]:
                assert op["security"] == [{"bearer": []}]
            if op["security"]:
                assert "401" in statuses, where
            for param in op.get("parameters", []):
                if param["in"] == "path":
                    assert "{" + param["name"] + "}" in path and param["required"]


def test_schemas_are_valid_json_schema_and_references_resolve(api: ApiClient) -> None:
    schemas = api.doc["components"]["schemas"]
    for schema in schemas.values():
        jsonschema.Draft202012Validator.check_schema(schema)
    text = str(api.doc)
    for ref in set(_refs(api.doc)):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[-1] in schemas, ref
    assert "$defs" not in text  # every definition was lifted into components


def test_the_document_describes_requests_as_the_views_parse_them(api: ApiClient) -> None:
    paths = api.doc["paths"]
    upload = paths["/races/{race_id}/entries"]["post"]
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form == {"$ref": "#/components/schemas/EntryUpload"}
    fields = api.doc["components"]["schemas"]["EntryUpload"]
    assert fields["required"] == ["model"] and set(fields["properties"]) == {
        "model", "metadata", "name"}
    race = api.doc["components"]["schemas"]["RaceCreate"]
    assert race["additionalProperties"] is False
    assert {"track", "format", "laps", "trials", "ranking", "off_track_penalty",
            "collision_penalty", "time_cap", "min_laps", "seed", "obstacles", "name",
            "opens_at", "closes_at", "season_id", "division_ids"} <= set(race["properties"])
    assert race["properties"]["laps"]["default"] == 3
    ranking = race["properties"]["ranking"]
    assert ranking["default"] == "total"
    assert ranking["$ref"] == "#/components/schemas/Ranking"  # the vocabulary's own enum
    assert api.doc["components"]["schemas"]["Ranking"]["enum"] == \
        ["total", "best-lap", "average-lap"]
    assert api.doc["components"]["schemas"]["Format"]["enum"] == ["time-trial", "head-to-head",
                                                                 "head-to-bot"]
    bots = race["properties"]["bots"]
    assert bots["maxItems"] == 6 and bots["default"] == []
    bot = api.doc["components"]["schemas"]["BotCar"]["properties"]["speed"]
    assert (bot["minimum"], bot["maximum"]) == (0.5, 4.0)
    races = paths["/races"]["get"]
    params = {p["name"]: p for p in races["parameters"]}
    assert set(params) == {"page", "per_page", "status", "league"}
    assert params["page"]["schema"]["minimum"] == 1 and not params["page"]["required"]
    replay = paths["/evaluations/{job_id}/replay"]["get"]["responses"]["200"]
    assert "application/octet-stream" in replay["content"]
    assert paths["/me"]["get"]["security"] == [{"bearer": []}]
    assert paths["/tracks"]["get"]["security"] == []


def test_every_operation_checks_the_token_first(api: ApiClient) -> None:
    """Anonymous calls to operations that need a token and calls with a bad token to any
    that identifies its caller are 401, before anything else is looked at."""
    checked = 0
    for template, item in api.doc["paths"].items():
        path = re.sub(r"\{\w+\}", "1", template)
        for method, op in item.items():
            if not op["security"]:
                continue
            if op["security"] == [{"bearer": []}]:
                r = api.request(method.upper(), path)
                assert r.status_code == 401, (method, path)
            r = api.request(method.upper(), path, "pdk_revoked-or-never-issued")
            assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthorized"
            checked += 1
    assert checked == len(CONTRACT) - 2  # all but the document and the tracks


def test_every_list_refuses_a_bad_page(api: ApiClient) -> None:
    for template, item in api.doc["paths"].items():
        op = item.get("get", {})
        if "page" not in {p["name"] for p in op.get("parameters", [])} or \
                op["security"] == [{"bearer": []}]:
            continue
        r = api.get(re.sub(r"\{\w+\}", "1", template) + "?page=first")
        assert r.status_code == 400 and r.get_json()["error"]["message"].startswith(
            "page: input should be a valid integer"), template


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        for value in node.values():
            found += _refs(value)
        return found
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []
