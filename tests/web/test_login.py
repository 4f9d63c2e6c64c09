"""Login with a CSRF-protected form; pages need a login."""
import re

from tests.conftest import PASSWORD


def csrf_from(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def test_home_redirects_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_login_needs_csrf_token(app, make_user):
    app.config["WTF_CSRF_ENABLED"] = True
    make_user("worker1", "grid_worker", ["410421102204"])
    client = app.test_client()
    refused = client.post("/login", data={"username": "worker1", "password": PASSWORD})
    assert refused.status_code == 400  # CSRFProtect refuses before the view runs
    token = csrf_from(client.get("/login").get_data(as_text=True))
    ok = client.post("/login", data={"username": "worker1", "password": PASSWORD, "csrf_token": token})
    assert ok.status_code == 302
    assert client.get("/").status_code == 200


def test_wrong_password(client, make_user):
    make_user("worker2", "grid_worker", ["410421102204"])
    response = client.post("/login", data={"username": "worker2", "password": "wrong-password"})
    assert response.status_code == 401
    assert "用户名或密码错误" in response.get_data(as_text=True)


def test_open_redirect_is_refused(client, make_user):
    make_user("worker3", "grid_worker", ["410421102204"])
    response = client.post("/login?next=//evil.example/", data={"username": "worker3", "password": PASSWORD})
    assert response.headers["Location"] == "/"


def test_english_interface(client, make_user):
    make_user("officer", "county_officer")
    client.post("/login", data={"username": "officer", "password": PASSWORD})
    zh = client.get("/").get_data(as_text=True)
    en = client.get("/?lang=en").get_data(as_text=True)
    assert "网格化管理地图" in zh and "演示数据（合成）" in zh
    assert "Grid management map" in en and "Demo data (synthetic)" in en


def test_chinese_is_the_default_even_for_an_english_browser(client, make_user):
    make_user("officer2", "county_officer")
    client.post("/login", data={"username": "officer2", "password": PASSWORD})
    page = client.get("/", headers={"Accept-Language": "en-US,en;q=0.9"}).get_data(as_text=True)
    assert "网格化管理地图" in page and 'lang="zh-CN"' in page
    client.get("/?lang=en")  # the choice is remembered in a cookie
    assert "Grid management map" in client.get("/").get_data(as_text=True)
