"""The route table's first-match rule, and the OpenAPI document's links generated from it."""

from __future__ import annotations

import pytest
from starlette.responses import Response

from strata.gateway.call import Call
from strata.gateway.openapi import document
from strata.gateway.routing import Endpoint, Link, Match, RouteTable, Scope, from_request_path, from_response


async def create(call: Call) -> Response: ...
async def read(call: Call) -> Response: ...
async def delete(call: Call) -> Response: ...
async def predict(call: Call) -> Response: ...
async def describe(call: Call) -> Response: ...
async def stray(call: Call) -> Response: ...


def _table() -> RouteTable:
    thing = {"thing_id": from_response("id")}
    return RouteTable(
        [
            Endpoint("POST", "/things", create, Scope.ADMIN, "Create", "t", status=201,
                     links=(Link(read, thing), Link(delete, thing))),
            Endpoint("GET", "/things/{thing_id}", read, Scope.ADMIN, "Read", "t",
                     links=(Link(delete, {"thing_id": from_request_path("thing_id")}),)),
            Endpoint("DELETE", "/things/{thing_id}", delete, Scope.ADMIN, "Delete", "t"),
            Endpoint("POST", "/models/{model:path}/predict", predict, Scope.INFER, "Predict", "m"),
            Endpoint("GET", "/models/{model:path}", describe, Scope.INFER, "Describe", "m"),
        ]
    )  # fmt: skip


def test_a_path_belongs_to_the_first_template_that_matches_it() -> None:
    table = _table()
    found = table.match("POST", "/models/org/m/predict")
    assert isinstance(found, Match)
    assert found.endpoint.handler is predict
    assert found.params == {"model": "org/m"}
    # The predict resource allows POST only: a GET is a 405 there, not the card of "org/m/predict".
    assert table.match("GET", "/models/org/m/predict") == {"POST"}
    assert table.match("OPTIONS", "/models/org/m/predict") == {"POST"}
    described = table.match("GET", "/models/org/m")
    assert isinstance(described, Match)
    assert described.params == {"model": "org/m"}
    assert table.match("PUT", "/things/7") == {"GET", "DELETE"}
    assert table.match("GET", "/nothing") is None


def test_links_name_their_target_operation_and_its_parameters() -> None:
    paths = document(_table(), title="t", version="1")["paths"]
    created = paths["/things"]["post"]["responses"]["201"]["links"]
    assert created == {
        "read": {"operationId": "get_read", "parameters": {"thing_id": "$response.body#/id"}},
        "delete": {"operationId": "delete_delete", "parameters": {"thing_id": "$response.body#/id"}},
    }
    read_links = paths["/things/{thing_id}"]["get"]["responses"]["200"]["links"]
    assert read_links["delete"]["parameters"] == {"thing_id": "$request.path.thing_id"}
    assert "links" not in paths["/things/{thing_id}"]["delete"]["responses"]["200"]


def test_a_link_to_a_handler_without_a_route_is_refused() -> None:
    table = RouteTable([Endpoint("POST", "/things", create, Scope.ADMIN, "Create", "t", links=(Link(stray),))])
    with pytest.raises(ValueError, match="serves no route"):
        document(table, title="t", version="1")
