"""A Django project loaded with --module/--chdir, GET and POST through nginx."""

import hashlib
import json
from urllib.parse import urlencode

from harness import EXAMPLES


def django_stack(stack, transport="tcp"):
    return stack("--chdir", str(EXAMPLES), "--module", "djangoapp.wsgi:application", transport=transport)


def test_django_get(stack, transport):
    s = django_stack(stack, transport)
    resp = s.get("/?q=rwsgi")
    assert resp.status == 200, s.diagnostics()
    assert resp.header("Content-Type") == "application/json"
    data = json.loads(resp.body)
    assert data == {
        "framework": "django",
        "method": "GET",
        "path": "/",
        "query": {"q": "rwsgi"},
        "host": "127.0.0.1",
        "secure": False,
    }


def test_django_post_form(stack):
    s = django_stack(stack)
    form = urlencode({"name": "rwsgi", "lang": "rust"}).encode()
    resp = s.request("POST", "/echo/", body=form, headers=[("Content-Type", "application/x-www-form-urlencoded")])
    assert resp.status == 201, s.diagnostics()
    data = json.loads(resp.body)
    assert data["form"] == {"name": "rwsgi", "lang": "rust"}
    assert data["length"] == len(form)
    assert data["sha256"] == hashlib.sha256(form).hexdigest()


def test_django_post_json(stack):
    s = django_stack(stack)
    payload = json.dumps({"items": list(range(1000)), "text": "h\u00e9llo"}).encode()
    resp = s.request("POST", "/echo/", body=payload, headers=[("Content-Type", "application/json")])
    assert resp.status == 201, s.diagnostics()
    data = json.loads(resp.body)
    assert data["content_type"] == "application/json"
    assert data["json"] == {"items": list(range(1000)), "text": "h\u00e9llo"}
    assert data["sha256"] == hashlib.sha256(payload).hexdigest()


def test_django_wrong_method_and_unknown_path(stack):
    s = django_stack(stack)
    assert s.get("/echo/").status == 405
    assert s.get("/no/such/page").status == 404
