"""serval.h's query, form and cookie helpers through real requests: an app
compiled here calls them and prints what they return."""

import os
import subprocess

import pytest

from helpers import request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

APP = r'''
#include <stdio.h>
#include <string.h>

#include "serval.h"

/* "RC:VALUE" for each nth until -ENOENT (-2) or 4, joined by '|'; cookies: the first only */
static void answer(serval_response_t *res, const serval_request_t *req, const char *what, const char *name)
{
    char out[4096] = "", buf[16];
    size_t n = 0;
    for (size_t nth = 0; nth < 4; nth++) {
        long rc;
        memcpy(buf, "-", 2);
        if (strcmp(what, "query") == 0)
            rc = serval_request_query_param(req, name, nth, buf, sizeof buf);
        else if (strcmp(what, "form") == 0)
            rc = serval_request_form_param(req, name, nth, buf, sizeof buf);
        else
            rc = nth == 0 ? serval_request_cookie(req, name, buf, sizeof buf) : -2;
        n += (size_t)snprintf(out + n, sizeof out - n, "%s%ld:%s", nth ? "|" : "", rc, buf);
        if (rc == -2)
            break;
    }
    serval_response_send(res, 200, "text/plain", out, strlen(out));
}

static void handle(void *app_data, serval_request_t *req, serval_response_t *res)
{
    (void)app_data;
    const char *path = serval_request_path(req);
    answer(res, req, path + 1, "k");
}

static const serval_app_t app = {
    .abi_version = SERVAL_ABI_VERSION,
    .size = sizeof(serval_app_t),
    .name = "helpers",
    .handle = handle,
};

const serval_app_t *serval_app(void)
{
    return &app;
}
'''

ENOENT, EINVAL, ENOSPC, ENOMSG, EMSGSIZE = 2, 22, 28, 42, 90


@pytest.fixture
def helpers_app(tmp_path):
    src = tmp_path / "helpers.c"
    src.write_text(APP)
    so = tmp_path / "helpers.so"
    r = subprocess.run(["cc", "-std=c17", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-I",
                        os.path.join(ROOT, "include"), "-o", str(so), str(src)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return str(so)


def fields(resp):
    assert resp.status == 200, resp
    out = []
    for item in resp.body.decode("utf-8").split("|"):
        rc, value = item.split(":", 1)
        out.append((int(rc), value))
    return out


def test_query_params(servers, port, helpers_app):
    servers("-b", f"tcp://127.0.0.1:{port}", "-t", "1:1", helpers_app)
    assert fields(request(port, "/query?k=a+b&x=1&k=%41%42&k=&k")) == [(3, "a b"), (2, "AB"), (0, ""), (0, "")]
    assert fields(request(port, "/query"))[0] == (-ENOENT, "-")
    assert fields(request(port, "/query?k=%zz&k=ok")) == [(-EINVAL, "-"), (2, "ok"), (-ENOENT, "-")]
    assert fields(request(port, "/query?k=" + "y" * 16))[0] == (-ENOSPC, "-")   # 16 + NUL > 16
    assert fields(request(port, "/query?k=" + "y" * 15))[0] == (15, "y" * 15)


def test_form_params(servers, port, helpers_app, tmp_path):
    cfg = tmp_path / "c.rb"
    cfg.write_text("body_buffer_size 1024\n")
    servers("-C", str(cfg), "-b", f"tcp://127.0.0.1:{port}", "-t", "1:1", helpers_app)
    form = {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}
    assert fields(request(port, "/form", method="POST", body="k=1&k=caf%C3%A9", headers=form))[:3] == \
        [(1, "1"), (5, "café"), (-ENOENT, "-")]
    # not a form body: the app is told so
    assert fields(request(port, "/form", method="POST", body="k=1",
                          headers={"Content-Type": "application/json"}))[0] == (-ENOMSG, "-")
    assert fields(request(port, "/form", method="POST", body="k=1"))[0] == (-ENOMSG, "-")
    # a body past body_buffer_size waits in a temp file: the helper reads it all the same
    assert fields(request(port, "/form", method="POST", body="z" * 5000 + "&k=late", headers=form))[0] == \
        (4, "late")
    assert fields(request(port, "/form?k=q"))[0] == (-ENOMSG, "-")   # the query is not the form


def test_cookies(servers, port, helpers_app):
    servers("-b", f"tcp://127.0.0.1:{port}", "-t", "1:1", helpers_app)
    assert fields(request(port, "/cookie", headers={"Cookie": "a=1; k=\"v v\"; k=2"}))[0] == (3, "v v")
    assert fields(request(port, "/cookie", headers={"Cookie": "a=1"}))[0] == (-ENOENT, "-")
    assert fields(request(port, "/cookie"))[0] == (-ENOENT, "-")
    # several Cookie headers (HTTP/2 proxies split them): searched in order
    r = subprocess.run(["curl", "-s", "-H", "Cookie: a=1", "-H", "Cookie: k=second", f"http://127.0.0.1:{port}/cookie"],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout.startswith("6:second"), r.stdout
