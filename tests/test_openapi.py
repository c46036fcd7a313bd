"""The OpenAPI document describes the engines' endpoints too, not only the generated record
paths, and leaves the admin-only ones out of a non-admin's document."""
from __future__ import annotations

from metacrm.runtime.web.openapi_routes import openapi_path, summary_of

from .support import add_user, admin_bearer, bearer, entity, role

DOCS = [entity("customer", {"name": "name", "type": "text", "required": True}, ownership=True,
               title_field="name"),
        role("sales", "customer")]


def _doc(app, headers):
    r = app.test_client().get("/api/v1/openapi.json", headers=headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def test_admin_document_lists_engine_and_admin_endpoints_with_typed_path_parameters(make_app):
    app = make_app(DOCS)
    doc = _doc(app, admin_bearer(app))
    paths = doc["paths"]
    transition = paths["/api/v1/records/{entity}/{record_id}/transitions/{name}"]
    assert "post" in transition
    params = {p["name"]: p for p in transition["parameters"]}
    assert params["record_id"]["schema"] == {"type": "integer"} and params["entity"]["schema"] == {"type": "string"}
    assert all(p["in"] == "path" and p["required"] for p in params.values())
    for path in ("/api/v1/approvals/inbox", "/api/v1/records/{entity}/import", "/api/v1/records/{entity}/duplicates",
                 "/api/v1/duplicates/search", "/api/v1/admin/users/{user_id}/deactivate", "/api/v1/auth/tokens"):
        assert path in paths, path
    assert set(paths["/api/v1/admin/departments/{department_id}"]) >= {"get", "patch", "delete", "parameters"}
    # the metadata's own record paths are not described twice, in the generic form
    assert "/api/v1/records/{entity}" not in paths and "/api/v1/records/customer" in paths
    ids = [op["operationId"] for item in paths.values() for m, op in item.items() if m != "parameters"]
    assert len(ids) == len(set(ids))
    assert all(op["summary"] and op["responses"] for item in paths.values()
               for m, op in item.items() if m != "parameters")


def test_non_admin_document_leaves_admin_endpoints_out(make_app, engine_of):
    app = make_app(DOCS)
    with engine_of(app).begin() as conn:
        headers = bearer(conn, add_user(conn, "rep", roles=("sales",)))
    paths = _doc(app, headers)["paths"]
    assert not [p for p in paths if p.startswith(("/api/v1/admin/", "/api/v1/designer/"))]
    assert "/api/v1/approvals/inbox" in paths and "/api/v1/records/customer" in paths


def test_rule_and_summary_conversion():
    assert openapi_path("/api/v1/imports/<int:job_id>/errors.csv") == (
        "/api/v1/imports/{job_id}/errors.csv",
        [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer"}}])

    def documented():
        """Fire a workflow transition.

        More words."""
    assert summary_of(documented, "x.documented") == "Fire a workflow transition"
    assert summary_of(None, "metacrm_workflow.inbox_view") == "Inbox"
