"""File and image fields: upload, download only for those who may, size limit, image
sniffing, safe names, and records that hold an uploaded file's key."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
import sqlalchemy as sa

from metacrm.runtime import systables

from .support import add_user, bearer, entity, error_of

DOC = entity(
    "doc",
    {"name": "name", "type": "text", "required": True},
    {"name": "attachment", "type": "file"},
    {"name": "photo", "type": "image"},
    {"name": "lines", "type": "table", "target": "doc_line"},
    title_field="name", ownership=True)
LINE = entity("doc_line", {"name": "scan", "type": "file"}, child_of="doc")
ROLES = [
    {"kind": "role", "name": "rep", "label": "Rep",
     "permissions": {"doc": {"create": True, "read": "self", "update": "self"}}},
    {"kind": "role", "name": "auditor", "label": "Auditor", "permissions": {"doc": {"read": "all"}},
     "fields": {"doc": {"attachment": "hidden"}}},
]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40
PDF = b"%PDF-1.4\n% a contract\n"


@pytest.fixture
def files_site(make_app, tmp_path):
    upload_dir = tmp_path / "uploads-here"
    app = make_app([DOC, LINE, *ROLES], UPLOAD_DIR=str(upload_dir), MAX_UPLOAD_MB=1)
    from metacrm.runtime.web.context import EXTENSION
    engine = app.extensions[EXTENSION].engine
    with engine.begin() as conn:
        ids = {n: add_user(conn, n, roles=r) for n, r in
               (("ann", ["rep"]), ("bob", ["rep"]), ("aud", ["auditor"]), ("boss", ["rep"]))}
        h = {n: bearer(conn, uid) for n, uid in ids.items()}
    return app, app.test_client(), h, upload_dir, engine


def upload(client, headers, data: bytes, name: str, **form):
    return client.post("/api/v1/files", headers=headers, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(data), name), **form})


def stored_files(upload_dir: Path) -> list[Path]:
    return [p for p in upload_dir.rglob("*") if p.is_file()] if upload_dir.exists() else []


def test_upload_then_download_by_the_uploader(files_site):
    app, c, h, upload_dir, _ = files_site
    r = upload(c, h["ann"], PDF, "合同 v2.pdf")
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert (body["name"], body["size"], body["content_type"]) == ("合同 v2.pdf", len(PDF), "application/octet-stream")
    token, _, name = body["key"].partition("/")
    assert len(token) == 32 and name == "合同 v2.pdf" and body["url"] == f"/api/v1/files/{body['key']}"
    assert [p.name for p in stored_files(upload_dir)] == [token]  # stored by token, in the configured folder
    got = c.get(body["url"], headers=h["ann"])
    assert got.status_code == 200 and got.data == PDF
    assert got.headers["Content-Type"] == "application/octet-stream"
    assert got.headers["Content-Disposition"].startswith("attachment")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert c.get(f"/api/v1/files/{token}", headers=h["ann"]).status_code == 200  # the token alone works too


def test_images_are_recognised_by_their_bytes_and_served_inline(files_site):
    app, c, h, _, _ = files_site
    r = upload(c, h["ann"], PNG, "logo.txt", entity="doc", field="photo")
    assert r.status_code == 201 and r.get_json()["content_type"] == "image/png"
    got = c.get(r.get_json()["url"], headers=h["ann"])
    assert got.headers["Content-Type"] == "image/png" and got.headers["Content-Disposition"].startswith("inline")


def test_an_image_field_refuses_what_is_not_an_image(files_site):
    app, c, h, upload_dir, engine = files_site
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    err = error_of(upload(c, h["ann"], svg, "logo.png", entity="doc", field="photo"), 422)
    assert "photo" in err["fields"] and "image" in err["message"]
    assert stored_files(upload_dir) == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(systables.files)).scalar_one() == 0
    error_of(upload(c, h["ann"], PNG, "x.png", entity="doc", field="name"), 422)  # not a file field
    # ...and a record can't take a non-image's key in its image field either
    pdf = upload(c, h["ann"], PDF, "a.pdf").get_json()["key"]
    err = error_of(c.post("/api/v1/records/doc", headers=h["ann"], json={"name": "D", "photo": pdf}), 422)
    assert list(err["fields"]) == ["photo"]


def test_too_large_is_413_and_keeps_nothing(files_site):
    app, c, h, upload_dir, _ = files_site
    err = error_of(upload(c, h["ann"], b"x" * (1024 * 1024 + 10), "big.bin"), 413, "too_large")
    assert "1 MB" in err["message"]
    assert stored_files(upload_dir) == []
    err = error_of(upload(c, h["ann"], b"x" * (3 * 1024 * 1024), "bigger.bin"), 413)  # refused unread
    assert upload(c, h["ann"], b"x" * (1024 * 1024), "exactly.bin").status_code == 201


def test_bad_uploads_are_clear_errors(files_site):
    app, c, h, _, _ = files_site
    error_of(c.post("/api/v1/files", headers=h["ann"], data={}), 422)
    error_of(upload(c, h["ann"], b"", "empty.txt"), 422)
    error_of(c.post("/api/v1/files", data={"file": (io.BytesIO(PDF), "a.pdf")},
                    content_type="multipart/form-data"), 401)


def test_names_never_become_paths(files_site):
    app, c, h, upload_dir, _ = files_site
    r = upload(c, h["ann"], PDF, "../../../etc/passwd")
    assert r.status_code == 201 and r.get_json()["name"] == "passwd"
    assert all(upload_dir in p.parents for p in stored_files(upload_dir))
    r = upload(c, h["ann"], PDF, "..\\..\\boot.ini\x00.pdf")
    assert r.get_json()["name"] == "boot.ini.pdf"
    token = r.get_json()["key"].split("/")[0]
    for url in ("/api/v1/files/..%2F..%2Fetc%2Fpasswd", "/api/v1/files/../../etc/passwd",
                f"/api/v1/files/{token}/../../secret", f"/api/v1/files/{token}/other-name.pdf",
                "/api/v1/files/" + "a" * 32):
        assert c.get(url, headers=h["ann"]).status_code == 404, url


def test_download_needs_the_uploader_or_a_reader_of_a_record_holding_it(files_site):
    app, c, h, _, _ = files_site
    key = upload(c, h["ann"], PDF, "deal.pdf").get_json()["key"]
    url = f"/api/v1/files/{key}"
    assert c.get(url, headers=h["bob"]).status_code == 404  # not attached: the uploader's only
    r = c.post("/api/v1/records/doc", headers=h["ann"], json={"name": "Deal", "attachment": key})
    assert r.status_code == 201, r.get_json()
    assert c.get(f"/api/v1/records/doc/{r.get_json()['id']}", headers=h["ann"]).get_json()["attachment"] == key
    assert c.get(url, headers=h["bob"]).status_code == 404  # can't read ann's doc
    assert c.get(url, headers=h["aud"]).status_code == 404  # reads the doc, but the field is hidden
    # bob attaches the key he learnt to his own record: still nothing new for him to read...
    r = c.post("/api/v1/records/doc", headers=h["bob"], json={"name": "Copy", "attachment": key})
    assert r.status_code == 201  # (the key is 192 random bits: knowing it means he was shown it)
    assert c.get(url, headers=h["bob"]).status_code == 200


def test_image_keys_are_readable_by_readers_of_the_record(files_site):
    app, c, h, _, _ = files_site
    key = upload(c, h["ann"], PNG, "face.png", entity="doc", field="photo").get_json()["key"]
    assert c.get(f"/api/v1/files/{key}", headers=h["aud"]).status_code == 404
    c.post("/api/v1/records/doc", headers=h["ann"], json={"name": "Face", "photo": key})
    assert c.get(f"/api/v1/files/{key}", headers=h["aud"]).status_code == 200


def test_a_child_rows_file_is_readable_with_its_parent(files_site):
    app, c, h, _, _ = files_site
    key = upload(c, h["ann"], PDF, "scan.pdf").get_json()["key"]
    r = c.post("/api/v1/records/doc", headers=h["ann"], json={"name": "Lines", "lines": [{"scan": key}]})
    assert r.status_code == 201, r.get_json()
    assert c.get(f"/api/v1/files/{key}", headers=h["aud"]).status_code == 200
    assert c.get(f"/api/v1/files/{key}", headers=h["bob"]).status_code == 404


def test_a_record_takes_only_keys_of_uploaded_files(files_site):
    app, c, h, _, _ = files_site
    key = upload(c, h["ann"], PDF, "real.pdf").get_json()["key"]
    for bad in ("files/2026/contract.pdf", key.split("/")[0] + "/renamed.pdf", "../../etc/passwd"):
        err = error_of(c.post("/api/v1/records/doc", headers=h["ann"], json={"name": "D", "attachment": bad}), 422)
        assert list(err["fields"]) == ["attachment"], bad
    r = c.post("/api/v1/records/doc", headers=h["ann"], json={"name": "D", "attachment": key})
    doc = r.get_json()
    r = c.patch(f"/api/v1/records/doc/{doc['id']}", headers=h["ann"],
                json={"attachment": None, "version": doc["version"]})
    assert r.status_code == 200 and r.get_json()["attachment"] is None


# ------------------------------------------------------------------ the screens

def screen_client(app, who):
    from .test_screens import sign_in
    return sign_in(app.test_client(), who, f"{who}-pass-1")


def test_a_form_posted_without_javascript_uploads_its_files(files_site):
    from .test_screens import csrf_of
    app, c, h, _, _ = files_site
    ann = screen_client(app, "ann")
    html = ann.get("/r/doc/new").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in html and 'name="attachment.upload"' in html
    assert 'accept="image/png,image/jpeg,image/gif,image/webp"' in html
    r = ann.post("/r/doc/new", content_type="multipart/form-data", data={
        "csrf_token": csrf_of(html), "name": "Scanned deal", "attachment": "",
        "attachment.upload": (io.BytesIO(PDF), "deal #1.pdf"), "photo.upload": (io.BytesIO(PNG), "face.png")})
    assert r.status_code == 302, r.get_data(as_text=True)[:400]
    doc_id = int(r.headers["Location"].rsplit("/", 1)[1])
    doc = c.get(f"/api/v1/records/doc/{doc_id}", headers=h["ann"]).get_json()
    assert doc["attachment"].endswith("/deal #1.pdf") and doc["photo"].endswith("/face.png")
    page = ann.get(f"/r/doc/{doc_id}").get_data(as_text=True)
    assert f'href="/api/v1/files/{doc["attachment"].replace(" ", "%20").replace("#", "%23")}"' in page
    assert ">deal #1.pdf</a>" in page and 'class="img-thumbnail mc-thumb"' in page
    assert ann.get(f"/api/v1/files/{doc['photo']}").status_code == 200
    edit = ann.get(f"/r/doc/{doc_id}/edit").get_data(as_text=True)
    assert f'value="{doc["attachment"]}" class="mc-file-value"' in edit


def test_a_form_keeps_a_key_uploaded_by_the_script_and_refuses_a_wrong_image(files_site):
    from .test_screens import csrf_of
    app, c, h, _, _ = files_site
    ann = screen_client(app, "ann")
    key = upload(c, h["ann"], PDF, "terms.pdf").get_json()["key"]
    token = csrf_of(ann.get("/r/doc/new").get_data(as_text=True))
    r = ann.post("/r/doc/new", data={"csrf_token": token, "name": "Keyed", "attachment": key})
    assert r.status_code == 302
    r = ann.post("/r/doc/new", content_type="multipart/form-data", data={
        "csrf_token": token, "name": "Bad photo", "attachment": key, "photo.upload": (io.BytesIO(PDF), "face.png")})
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and 'data-for="photo"' in html and "Not an image" in html
    assert 'value="Bad photo"' in html and f'value="{key}" class="mc-file-value"' in html  # nothing typed is lost
