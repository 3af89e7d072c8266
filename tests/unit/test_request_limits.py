"""The API's request limits: bodies are bounded in size and nesting before anything parses them."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from treasury.api.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH, RequestLimits, json_depth

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab'),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\ab', max_size=3), children, max_size=3)
    ),
    max_leaves=20,
)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@given(json_values)
def test_json_depth_equals_the_nesting_of_any_json_value(value: object) -> None:
    """The scanner agrees with the structure, brackets and escapes inside strings included."""
    assert json_depth(json.dumps(value).encode()) == _depth(value)


def test_json_depth_is_safe_on_a_million_brackets() -> None:
    """The scan is iterative: no recursion, whatever the depth."""
    assert json_depth(b"[" * 1_000_000) == 1_000_000


def _app() -> tuple[TestClient, list[object]]:
    seen: list[object] = []
    inner = FastAPI()

    @inner.post("/echo")
    async def echo(request: Request) -> dict[str, object]:
        body = await request.json()
        seen.append(body)
        return {"ok": True}

    app = RequestLimits(inner)
    return TestClient(app), seen  # type: ignore[arg-type]


def test_a_deeply_nested_body_is_refused_before_the_application_sees_it() -> None:
    """200 KB of nested brackets: 422 naming the limit; the handler never ran."""
    client, seen = _app()
    response = client.post(
        "/echo", content=b"[" * 200_000, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert str(MAX_JSON_DEPTH) in response.json()["detail"]
    assert seen == []


def test_an_oversized_body_is_refused_with_413() -> None:
    """A body over the limit is refused; the handler never ran."""
    client, seen = _app()
    response = client.post("/echo", content=b"1" * (MAX_BODY_BYTES + 1))
    assert response.status_code == 413
    assert seen == []


def test_a_body_at_the_limits_reaches_the_application_unchanged() -> None:
    """Exactly at the depth limit, the body is handed over whole."""
    client, seen = _app()
    body = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    response = client.post("/echo", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200
    assert seen == [json.loads(body)]
