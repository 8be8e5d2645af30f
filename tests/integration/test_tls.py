"""TLS listeners (ssl:// and ssl_bind): protocol versions and ciphers, ALPN,
SNI, client certificates, session resumption across workers, restarts and
certificate rotation under TLS load, bad certificates, and a handshake that
stalls. Certificates are made by each test with `openssl req` in tmp_path."""

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time

import pytest

from helpers import ClientLoop, TLSTarget, free_port, get, stats, wait_until
from conftest import ROOT

TOKEN = "tok"


# ---- certificates ------------------------------------------------------------------


def openssl(*args, cwd=None, input=None):
    r = subprocess.run(["openssl", *args], cwd=cwd, input=input, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


class PKI:
    """A test CA and certificates it signs (ECDSA P-256), all files in one directory."""

    def __init__(self, d):
        self.d = d
        self.ca_key, self.ca = str(d / "ca.key"), str(d / "ca.pem")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", self.ca_key, "-out", self.ca, "-days", "30", "-subj", "/CN=serval test CA")

    def issue(self, name, cn, sans=None, client=False, days=30):
        key, csr, crt = (str(self.d / f"{name}.{ext}") for ext in ("key", "csr", "pem"))
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                "-out", csr, "-subj", f"/CN={cn}")
        ext = self.d / f"{name}.ext"
        if client:
            ext.write_text("extendedKeyUsage=clientAuth\n")
        else:
            ext.write_text("subjectAltName=" + ",".join(sans or [f"DNS:{cn}"]) + "\nextendedKeyUsage=serverAuth\n")
        openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-CAcreateserial",
                "-out", crt, "-days", str(days), "-extfile", str(ext))
        return crt, key


def serial_of(pem_path):
    return openssl("x509", "-in", pem_path, "-noout", "-serial").strip().split("=")[1].upper()


def replace_file(src, dst):
    """Atomically put a copy of src at dst (as a certificate manager does)."""
    tmp = dst + ".tmp"
    with open(src, "rb") as f, open(tmp, "wb") as g:
        g.write(f.read())
    os.replace(tmp, dst)


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    p = PKI(d)
    p.cert, p.key = p.issue("server", "localhost", ["DNS:localhost", "IP:127.0.0.1"])
    return p


def ssl_uri(port, cert, key, **extra):
    q = f"cert={cert}&key={key}" + "".join(f"&{k}={v}" for k, v in extra.items())
    return f"ssl://127.0.0.1:{port}?{q}"


def boot(servers, app, port, pki, workers=0, extra=(), uri=None, env=None, threads="1:4"):
    cport = free_port()
    s = servers("-w", str(workers), "-t", threads, "-b", uri or ssl_uri(port, pki.cert, pki.key),
                "--control-url", f"tcp://127.0.0.1:{cport}", "--control-token", TOKEN, *extra, app,
                workers=workers or None, env=env)
    s.port, s.cport = port, cport
    return s


def s_client(port, *args, data=b"", timeout=15):
    """openssl s_client against 127.0.0.1:port; returns (returncode, stdout+stderr)."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
                       input=data, capture_output=True, timeout=timeout)
    return r.returncode, (r.stdout + r.stderr).decode("latin-1")


def tls_get(port, pki, path="/", server_name="localhost", context=None):
    return get(TLSTarget(port, pki.ca, server_name, context), path)


def peer_serial(port, pki, server_name="localhost"):
    ctx = ssl.create_default_context(cafile=pki.ca)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as t:
            der = t.getpeercert(binary_form=True)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                         capture_output=True, timeout=10).stdout.decode()
    return out.strip().split("=")[1].upper()


# ---- protocols, ciphers, ALPN, SNI ------------------------------------------------------


def test_tls13_and_tls12_succeed_tls11_and_weak_ciphers_are_refused(servers, testapp, port, pki):
    s = boot(servers, testapp, port, pki)
    for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        ctx = ssl.create_default_context(cafile=pki.ca)
        ctx.minimum_version = ctx.maximum_version = version
        r = tls_get(port, pki, "/", context=ctx)
        assert r.status == 200 and r.body == b"Hello World", version
    # TLS 1.1 and 1.0, even with a client that allows everything
    for flag in ("-tls1_1", "-tls1"):
        rc, out = s_client(port, flag, "-cipher", "DEFAULT@SECLEVEL=0")
        assert rc != 0 and "Cipher is (NONE)" in out, out
    # TLS 1.2 ciphers without forward secrecy, CBC, 3DES, RC4, NULL: every one refused
    tried = 0
    for weak in ("AES128-SHA", "AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384",
                 "DES-CBC3-SHA", "RC4-SHA", "NULL-SHA256", "aNULL"):
        rc, out = s_client(port, "-tls1_2", "-cipher", weak + ":@SECLEVEL=0")
        if "no cipher match" in out:
            continue  # this client's OpenSSL no longer has it at all
        tried += 1
        assert rc != 0 and "Cipher is (NONE)" in out, (weak, out)
    assert tried >= 5
    # the strong one still works through s_client (the refusals above were about the cipher)
    rc, out = s_client(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256", "-CAfile", pki.ca)
    assert rc == 0 and "ECDHE-ECDSA-AES128-GCM-SHA256" in out, out
    # the counters are the server's: it may still be closing the last connection
    wait_until(lambda: stats(s.cport)["tls"]["failed_protocol"] >= 2 + tried, timeout=10, what="refusals counted")
    wait_until(lambda: stats(s.cport)["tls"]["handshakes"] >= 3, timeout=10, what="handshakes counted")


def test_alpn_selects_http11_and_sni_picks_the_matching_certificate(servers, testapp, port, pki):
    other_cert, other_key = pki.issue("other", "other.test")
    uri = ssl_uri(port, pki.cert, pki.key) + f"&cert={other_cert}&key={other_key}"
    boot(servers, testapp, port, pki, uri=uri)
    ctx = ssl.create_default_context(cafile=pki.ca)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as t:
            assert t.selected_alpn_protocol() == "http/1.1"
            assert dict(x[0] for x in t.getpeercert()["subject"])["commonName"] == "localhost"
    # the second certificate for its name, the first for any other name and without SNI
    assert peer_serial(port, pki, "other.test") == serial_of(other_cert)
    assert peer_serial(port, pki, "localhost") == serial_of(pki.cert)
    rc, out = s_client(port, "-noservername", "-CAfile", pki.ca)
    assert "CN = localhost" in out, out
    r = tls_get(port, pki, "/pid", server_name="other.test")
    assert r.status == 200
    # a client that offers only h2 is still served (no ALPN answer), as HTTP/1.1
    rc, out = s_client(port, "-alpn", "h2", "-CAfile", pki.ca, "-servername", "localhost", "-ign_eof",
                       data=b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert "No ALPN negotiated" in out and "Hello World" in out, out


def test_client_certificates_with_verify_mode_force_peer_and_peer(servers, testapp, port, pki, tmp_path):
    client_cert, client_key = pki.issue("client", "client one", client=True)
    (tmp_path / "stranger").mkdir()
    stranger = PKI(tmp_path / "stranger")
    bad_cert, bad_key = stranger.issue("client", "stranger", client=True)
    uri = ssl_uri(port, pki.cert, pki.key, ca=pki.ca, verify_mode="force_peer")
    s = boot(servers, testapp, port, pki, uri=uri)

    def attempt(cert=None, key=None):
        ctx = ssl.create_default_context(cafile=pki.ca)
        if cert:
            ctx.load_cert_chain(cert, key)
        try:
            return tls_get(port, pki, "/", context=ctx).status
        except (ssl.SSLError, ConnectionError) as e:
            return type(e).__name__

    assert attempt(client_cert, client_key) == 200
    assert attempt() != 200          # no certificate: refused
    assert attempt(bad_cert, bad_key) != 200  # signed by another CA: refused
    wait_until(lambda: stats(s.cport)["tls"]["failed_client_certificate"] >= 2, timeout=10,
               what="client certificate failures counted")
    s.stop()
    # peer: a certificate is checked when given, not required
    port2 = free_port()
    s2 = boot(servers, testapp, port2, pki, uri=ssl_uri(port2, pki.cert, pki.key, ca=pki.ca, verify_mode="peer"))
    ctx = ssl.create_default_context(cafile=pki.ca)
    assert get(TLSTarget(port2, pki.ca, context=ctx)).status == 200
    ctx.load_cert_chain(client_cert, client_key)
    assert get(TLSTarget(port2, pki.ca, context=ctx)).status == 200
    assert s2.alive()


def test_verify_mode_without_ca_is_a_config_error(servers, testapp, port, pki):
    s = servers("-b", ssl_uri(port, pki.cert, pki.key, verify_mode="force_peer"), testapp, wait=False)
    assert s.wait_exit(10) != 0
    err = s.stderr().strip().splitlines()
    assert len(err) == 1 and "verify_mode force_peer needs ca=PATH" in err[0], err


# ---- resumption -----------------------------------------------------------------------


def test_a_session_ticket_from_one_worker_resumes_on_another(servers, testapp, port, pki, tmp_path):
    boot(servers, testapp, port, pki, workers=2, threads="1:2")
    sess = str(tmp_path / "sess.pem")
    req = b"GET /pid HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    for version in ("-tls1_3", "-tls1_2"):
        rc, out = s_client(port, version, "-CAfile", pki.ca, "-sess_out", sess, "-ign_eof", data=req)
        assert rc == 0 and "\nNew," in out, out
        issuer = int(re.search(r'"pid":(\d+)', out).group(1))
        seen = set()
        for _ in range(120):  # the accept balancer spreads new connections over both workers
            rc, out = s_client(port, version, "-CAfile", pki.ca, "-sess_in", sess, "-ign_eof", data=req)
            assert rc == 0 and "\nReused," in out, out
            pid = int(re.search(r'"pid":(\d+)', out).group(1))
            seen.add(pid)
            if pid != issuer:
                break
        assert seen - {issuer}, f"{version}: every resumed connection went to the issuing worker {issuer}"


def test_a_resumed_tls13_connection_gets_a_fresh_ticket(servers, testapp, port, pki, tmp_path):
    """TLS 1.3 clients (browsers) use a ticket once: a resumed connection must hand out a new one, or every
    other connection would be a full handshake."""
    boot(servers, testapp, port, pki)
    req = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    first = tmp_path / "s0.pem"
    rc, out = s_client(port, "-tls1_3", "-CAfile", pki.ca, "-sess_out", str(first), "-ign_eof", data=req)
    assert rc == 0 and "\nNew," in out, out
    prev = first
    for i in range(1, 3):
        nxt = tmp_path / f"s{i}.pem"
        rc, out = s_client(port, "-tls1_3", "-CAfile", pki.ca, "-sess_in", str(prev), "-sess_out", str(nxt),
                           "-ign_eof", data=req)
        assert rc == 0 and "\nReused," in out and "Hello World" in out, out
        assert nxt.exists() and nxt.read_bytes() != prev.read_bytes(), "no new ticket on a resumed connection"
        prev = nxt


@pytest.mark.parametrize("path,done", [("restart", r"Hot restart complete"),
                                       ("phased-restart", r"Phased restart complete")])
def test_a_session_from_before_a_restart_resumes_after_it(servers, testapp, port, pki, tmp_path, path, done):
    s = boot(servers, testapp, port, pki, workers=2, threads="1:2")
    sess = str(tmp_path / "sess.pem")
    req = b"GET /pid HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    rc, out = s_client(port, "-CAfile", pki.ca, "-sess_out", sess, "-ign_eof", data=req)
    assert rc == 0 and "\nNew," in out, out
    old_pid = int(re.search(r'"pid":(\d+)', out).group(1))
    assert get(s.cport, f"/{path}?token={TOKEN}").status == 200
    s.wait_log(done, timeout=60)
    wait_until(lambda: old_pid not in s.workers(), timeout=20, what="the old workers gone")
    rc, out = s_client(port, "-CAfile", pki.ca, "-sess_in", sess, "-ign_eof", data=req)
    assert rc == 0 and "\nReused," in out, out
    assert int(re.search(r'"pid":(\d+)', out).group(1)) != old_pid


def test_ticket_keys_rotate_and_tickets_under_the_previous_key_still_resume(servers, testapp, port, pki,
                                                                          tmp_path):
    s = boot(servers, testapp, port, pki, env={"SERVAL_TLS_TICKET_ROTATION": "1"})
    sess = str(tmp_path / "sess.pem")
    req = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    rc, out = s_client(port, "-CAfile", pki.ca, "-sess_out", sess, "-ign_eof", data=req)
    assert rc == 0 and "\nNew," in out
    wait_until(lambda: stats(s.cport)["tls"]["ticket_key_rotations"] >= 1, timeout=10, what="a key rotation")
    rc, out = s_client(port, "-CAfile", pki.ca, "-sess_in", sess, "-ign_eof", data=req)
    assert "\nReused," in out, out  # the previous key still decrypts
    wait_until(lambda: stats(s.cport)["tls"]["ticket_key_rotations"] >= 4, timeout=15, what="more rotations")
    rc, out = s_client(port, "-CAfile", pki.ca, "-sess_in", sess, "-ign_eof", data=req)
    assert "\nNew," in out and "Hello World" in out, out  # too old: a full handshake, not an error


# ---- restarts under TLS load ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["hot", "phased", "refork"])
def test_restarts_under_tls_load_fail_no_request(servers, testapp, port, pki, kind):
    extra = ("--fork-worker", "0") if kind == "refork" else ()
    s = boot(servers, testapp, port, pki, workers=2, extra=extra)
    path = {"hot": "restart", "phased": "phased-restart", "refork": "refork"}[kind]
    target = TLSTarget(port, pki.ca)
    with ClientLoop(target, threads=3) as fresh, ClientLoop(target, threads=2, keepalive=True) as kept:
        fresh.wait_requests(60)
        r = get(s.cport, f"/{path}?token={TOKEN}")
        assert r.status == 200, r.body
        op = int(r.headers.get("x-serval-operation", 0))

        def done():
            try:
                st = get(s.cport, f"/operation?id={op}&token={TOKEN}").json()
            except OSError:
                return None
            return st if st["state"] in ("succeeded", "failed") else None

        st = wait_until(done, timeout=60, what=f"{kind} restart")
        fresh.wait_requests(60)
        kept.wait_requests(20)
    assert st["state"] == "succeeded", st
    fresh.assert_clean(min_ok=120)
    kept.assert_clean(min_ok=20)


# ---- certificate rotation ------------------------------------------------------------


def test_certificate_rotation_under_load_fails_no_handshake(servers, testapp, port, pki, tmp_path):
    live_cert, live_key = str(tmp_path / "live.pem"), str(tmp_path / "live.key")
    replace_file(pki.cert, live_cert)
    replace_file(pki.key, live_key)
    s = boot(servers, testapp, port, pki, workers=2, uri=ssl_uri(port, live_cert, live_key))
    new_cert, new_key = pki.issue("server2", "localhost", ["DNS:localhost"])
    third_cert, third_key = pki.issue("server3", "localhost", ["DNS:localhost"])
    target = TLSTarget(port, pki.ca)
    with ClientLoop(target, threads=3) as loop:
        loop.wait_requests(50)
        # control action
        replace_file(new_key, live_key)
        replace_file(new_cert, live_cert)
        r = get(s.cport, f"/reload-certs?token={TOKEN}")
        assert r.status == 200, r.body
        wait_until(lambda: all(peer_serial(port, pki) == serial_of(new_cert) for _ in range(6)), timeout=10,
                   what="every worker on the new certificate")
        loop.wait_requests(50)
        # the signal
        replace_file(third_key, live_key)
        replace_file(third_cert, live_cert)
        s.send(signal.SIGWINCH)
        wait_until(lambda: all(peer_serial(port, pki) == serial_of(third_cert) for _ in range(6)), timeout=10,
                   what="every worker on the third certificate")
        loop.wait_requests(50)
    loop.assert_clean(min_ok=150)
    j = stats(s.cport)["tls"]
    assert j["certificate_reloads"] == 2 and j["failed_other"] == 0 and j["failed_protocol"] == 0, j
    assert s.count(r"TLS certificates reloaded \(control\)") == 1
    assert s.count(r"TLS certificates reloaded \(SIGWINCH\)") == 1


def test_a_bad_new_certificate_is_refused_with_one_line_and_the_old_one_serves(servers, testapp, port, pki,
                                                                               tmp_path):
    live_cert, live_key = str(tmp_path / "live.pem"), str(tmp_path / "live.key")
    replace_file(pki.cert, live_cert)
    replace_file(pki.key, live_key)
    s = boot(servers, testapp, port, pki, workers=2, uri=ssl_uri(port, live_cert, live_key))
    other_cert, other_key = pki.issue("mismatch", "localhost")
    before = s.stderr().count("\n")
    replace_file(other_cert, live_cert)  # a certificate whose key is not live.key
    r = get(s.cport, f"/reload-certs?token={TOKEN}")
    assert r.status == 409 and "does not belong to certificate" in r.json()["error"], r.body
    lines = s.stderr().splitlines()[before:]
    refusals = [x for x in lines if "TLS certificates not reloaded" in x]
    assert len(refusals) == 1 and live_key in refusals[0] and live_cert in refusals[0], lines
    assert peer_serial(port, pki) == serial_of(pki.cert)
    assert tls_get(port, pki).status == 200
    # a phased restart with the bad files: refused the same way, the new workers serve the old certificate
    r = get(s.cport, f"/phased-restart?token={TOKEN}")
    assert r.status == 200
    s.wait_log(r"Phased restart complete", timeout=60)
    assert peer_serial(port, pki) == serial_of(pki.cert)
    # a hot restart with the bad files: the preflight refuses the new image, nothing changes
    pid = s.pid
    r = get(s.cport, f"/restart?token={TOKEN}")
    s.wait_log(r"new release rejected", stream="stderr", timeout=30)
    assert s.pid == pid and peer_serial(port, pki) == serial_of(pki.cert)
    assert stats(s.cport)["tls"]["certificate_reload_failures"] >= 2


def test_phased_and_hot_restart_pick_up_a_new_certificate(servers, testapp, port, pki, tmp_path):
    live_cert, live_key = str(tmp_path / "live.pem"), str(tmp_path / "live.key")
    replace_file(pki.cert, live_cert)
    replace_file(pki.key, live_key)
    s = boot(servers, testapp, port, pki, workers=2, uri=ssl_uri(port, live_cert, live_key))
    for n, (path, done) in enumerate([("phased-restart", r"Phased restart complete"),
                                       ("restart", r"Hot restart complete")]):
        cert, key = pki.issue(f"gen{n}", "localhost")
        replace_file(key, live_key)
        replace_file(cert, live_cert)
        assert get(s.cport, f"/{path}?token={TOKEN}").status == 200
        s.wait_log(done, timeout=60)
        wait_until(lambda: all(peer_serial(port, pki) == serial_of(cert) for _ in range(6)), timeout=10,
                   what=f"the new certificate after {path}")


def test_a_bad_certificate_at_boot_is_one_line_naming_the_file(servers, testapp, port, pki, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    s = servers("-b", ssl_uri(port, bad, pki.key), testapp, wait=False)
    assert s.wait_exit(10) != 0
    err = s.stderr().strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "cert" in err[0], err
    s2 = servers("-b", ssl_uri(port, pki.cert, tmp_path / "missing.key"), testapp, wait=False)
    assert s2.wait_exit(10) != 0
    err = s2.stderr().strip().splitlines()
    assert len(err) == 1 and "missing.key" in err[0], err


# ---- slow and hostile clients -----------------------------------------------------------


def half_client_hello():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = out.read()
    return hello[: len(hello) // 2]


def test_a_stalled_handshake_holds_no_thread_and_meets_its_deadline(servers, testapp, port, pki, tmp_path):
    conf = tmp_path / "t.rb"
    conf.write_text("first_data_timeout 2\n")
    s = boot(servers, testapp, port, pki, threads="1:1", extra=("-C", str(conf)))
    t0 = time.monotonic()
    for _ in range(5):
        assert tls_get(port, pki).status == 200
    alone = time.monotonic() - t0  # what 5 handshakes take on this machine now
    stalled = []
    for _ in range(20):
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(half_client_hello())
        stalled.append(c)
    silent = socket.create_connection(("127.0.0.1", port), timeout=10)  # connects, sends nothing
    t0 = time.monotonic()
    for _ in range(5):
        assert tls_get(port, pki).status == 200
    beside = time.monotonic() - t0
    # a thread held by a stalled handshake would make them wait for its 2 s deadline
    assert beside < max(1.5, 5 * alone), f"{beside:.2f}s beside the stalled handshakes, {alone:.2f}s without them"
    # the deadline: each stalled handshake is closed (first_data_timeout 2), not kept forever
    for c in stalled + [silent]:
        c.settimeout(15)
        assert c.recv(100) == b""
        c.close()
    assert time.monotonic() - t0 < 15
    wait_until(lambda: stats(s.cport)["tls"]["failed_incomplete"] >= 21, timeout=10,
               what="the stalled handshakes counted")


def test_plain_http_on_a_tls_port_is_refused_and_counted(servers, testapp, port, pki):
    s = boot(servers, testapp, port, pki)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        try:
            while chunk := c.recv(1000):
                data += chunk
        except ConnectionResetError:
            pass
        assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"use an https:// URL" in data, data
    wait_until(lambda: stats(s.cport)["tls"]["failed_plain_http"] == 1, timeout=10, what="counted")
    assert tls_get(port, pki).status == 200


# ---- config, stats, metrics -----------------------------------------------------------


def test_ssl_bind_in_the_config_file_and_the_stats_and_metrics(servers, testapp, port, pki, tmp_path):
    conf = tmp_path / "puma.rb"
    conf.write_text(f'ssl_bind "127.0.0.1", {port}, {{ cert: "{pki.cert}", key: "{pki.key}", '
                    f'verify_mode: "none", no_tlsv1_1: true }}\n')
    cport = free_port()
    s = servers("-C", str(conf), "--control-url", f"tcp://127.0.0.1:{cport}", "--control-token", TOKEN, testapp)
    assert f"Listening on ssl://127.0.0.1:{port}" in s.stdout()
    r = tls_get(port, pki, "/pid")
    assert r.status == 200
    j = stats(cport)
    assert "backlog" in j and "requests_count" in j  # Puma's keys stay
    t = j["tls"]
    assert t["handshakes"] >= 1
    not_after = subprocess.run(["openssl", "x509", "-in", pki.cert, "-noout", "-enddate"], capture_output=True,
                               text=True).stdout.strip().split("=", 1)[1]
    expected = int(time.mktime(time.strptime(not_after, "%b %d %H:%M:%S %Y %Z"))) - time.timezone
    assert abs(t["listeners"][0]["certificate_not_after"] - expected) <= 1, (t, not_after)
    m = get(cport, f"/metrics?token={TOKEN}").text
    assert re.search(r"^serval_tls_handshakes_total \d+$", m, re.M), m
    assert re.search(r'^serval_tls_certificate_not_after_seconds\{listener="0"\} \d+$', m, re.M)
    assert "serval_tls_failed_protocol_total" in m
    # docs/tls.md's key table is every key of the tls object, and each counter is a metric
    doc = open(os.path.join(ROOT, "docs", "tls.md")).read().split("\n## Stats and metrics\n", 1)[1]
    doc = doc.split("\n## ", 1)[0]
    keys = set()
    for line in doc.splitlines():
        if line.startswith("| `"):
            keys.update(re.findall(r"`([a-z_]+(?:\[\]\.[a-z_]+)?)`", line.split("|")[1]))
    real = set(t) - {"listeners"} | {f"listeners[].{k}" for k in t["listeners"][0]}
    assert sorted(keys ^ real) == [], "the tls object: docs/tls.md vs /stats"
    counters = {k for k in t if k not in ("listeners", "ticket_key_rotated_at")}
    assert set(re.findall(r"^# TYPE serval_tls_(\w+)_total counter$", m, re.M)) == counters


def test_ssl_bind_with_a_bad_option_is_one_line_with_file_and_line(servers, testapp, port, pki, tmp_path):
    conf = tmp_path / "puma.rb"
    conf.write_text(f'workers 0\nssl_bind "127.0.0.1", {port}, {{ cert: "{pki.cert}", key: "{pki.key}", '
                    f'verify_mode: "sometimes" }}\n')
    s = servers("-C", str(conf), testapp, wait=False)
    assert s.wait_exit(10) != 0
    err = s.stderr().strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{conf}:2:") and "verify_mode" in err[0], err


def test_ssl_bind_with_cert_pem_and_key_pem_serves_and_keeps_its_listener_across_a_hot_restart(
        servers, testapp, port, pki, tmp_path):
    """Puma's inline PEM: cert_pem from an ENV variable, key_pem from File.read; the URI says
    cert=store:N (Puma's spelling), the same after the config is read again by a hot restart."""
    conf = tmp_path / "puma.rb"
    conf.write_text(f'workers 2\nssl_bind "127.0.0.1", {port}, {{ cert_pem: ENV["TLS_CERT_PEM"], '
                    f'key_pem: File.read("{pki.key}") }}\n')
    with open(pki.cert) as f:
        env = {"TLS_CERT_PEM": f.read()}
    cport = free_port()
    s = servers("-C", str(conf), "--control-url", f"tcp://127.0.0.1:{cport}", "--control-token", TOKEN, testapp,
                env=env, workers=2)
    uri = f"ssl://127.0.0.1:{port}?cert=store:0&key=store:1"
    assert uri in json.dumps(stats(cport)["config"])
    assert peer_serial(port, pki) == serial_of(pki.cert)
    assert tls_get(port, pki, "/").body == b"Hello World"
    assert get(cport, f"/restart?token={TOKEN}").status == 200
    s.wait_log(r"Hot restart complete", timeout=60)
    assert f"Inherited ssl://127.0.0.1:{port}" in s.stdout()  # the same URI: the listener was handed over
    assert uri in json.dumps(stats(cport)["config"])
    assert tls_get(port, pki, "/").body == b"Hello World"
    # a reload reads the same inline PEM again (it changes with the config, at a hot restart)
    assert get(cport, f"/reload-certs?token={TOKEN}").status == 200


def test_the_chain_after_the_certificate_is_sent_as_given_from_a_file_and_from_cert_pem(
        servers, testapp, port, pki, tmp_path):
    """A leaf signed by an intermediate CA: the client trusts only the root, so the handshake
    works only if the server sends the intermediate that follows the leaf in its cert file (or
    cert_pem). Without it (the leaf alone) the client cannot verify: serval builds no chain."""
    d = pki.d
    inter_key, inter_csr, inter = str(d / "inter.key"), str(d / "inter.csr"), str(d / "inter.pem")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", inter_key,
            "-out", inter_csr, "-subj", "/CN=serval test intermediate")
    (d / "inter.ext").write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
    openssl("x509", "-req", "-in", inter_csr, "-CA", pki.ca, "-CAkey", pki.ca_key, "-CAcreateserial", "-out", inter,
            "-days", "30", "-extfile", str(d / "inter.ext"))
    leaf_key, leaf_csr, leaf = str(d / "leaf.key"), str(d / "leaf.csr"), str(d / "leaf.pem")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", leaf_key,
            "-out", leaf_csr, "-subj", "/CN=localhost")
    (d / "leaf.ext").write_text("subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", leaf_csr, "-CA", inter, "-CAkey", inter_key, "-CAcreateserial", "-out", leaf,
            "-days", "30", "-extfile", str(d / "leaf.ext"))
    chain = str(tmp_path / "chain.pem")
    with open(chain, "w") as f:
        f.write(open(leaf).read() + open(inter).read())
    # the leaf alone: the client (trusting the root only) refuses, whatever the server could build
    s = boot(servers, testapp, port, pki, uri=ssl_uri(port, leaf, leaf_key, ca=inter, verify_mode="peer"))
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_get(port, pki)
    s.stop()
    # the chain from a file
    port2 = free_port()
    boot(servers, testapp, port2, pki, uri=ssl_uri(port2, chain, leaf_key))
    assert tls_get(port2, pki).body == b"Hello World"
    # the chain from cert_pem
    port3 = free_port()
    conf = tmp_path / "puma.rb"
    conf.write_text(f'workers 0\nssl_bind "127.0.0.1", {port3}, {{ cert_pem: File.read("{chain}"), '
                    f'key_pem: File.read("{leaf_key}") }}\n')
    servers("-C", str(conf), testapp)
    assert tls_get(port3, pki).body == b"Hello World"


def test_a_bad_cert_pem_is_one_line(servers, testapp, port, pki, tmp_path):
    other_cert, other_key = pki.issue("other", "localhost")
    conf = tmp_path / "puma.rb"
    for body, words in ((f'cert_pem: "not a PEM", key: "{pki.key}"', "cert_pem store:0"),
                        (f'cert_pem: File.read("{pki.cert}"), key_pem: File.read("{other_key}")',
                         "key_pem store:1 does not belong to cert_pem store:0"),
                        (f'cert_pem: File.read("{tmp_path}/missing.pem"), key: "{pki.key}"', "missing.pem")):
        conf.write_text(f'workers 0\nssl_bind "127.0.0.1", {port}, {{ {body} }}\n')
        s = servers("-C", str(conf), testapp, wait=False)
        assert s.wait_exit(10) != 0
        err = s.stderr().strip().splitlines()
        assert len(err) == 1 and words in err[0], (body, err)


def test_the_control_server_and_servalctl_over_ssl(servers, testapp, port, pki, tmp_path, servalctl_bin):
    cport = free_port()
    state = tmp_path / "state.yml"
    s = servers("-w", "1", "-b", ssl_uri(port, pki.cert, pki.key),
                "--control-url", f"ssl://127.0.0.1:{cport}?cert={pki.cert}&key={pki.key}",
                "--control-token", TOKEN, "-S", str(state), testapp, workers=1)
    ctx = ssl.create_default_context(cafile=pki.ca)
    r = get(TLSTarget(cport, pki.ca, context=ctx), f"/stats?token={TOKEN}")
    assert r.status == 200 and r.json()["workers"] == 1
    # a plain-HTTP client is refused, the control server goes on
    with socket.create_connection(("127.0.0.1", cport), timeout=10) as c:
        c.sendall(b"GET /stats?token=tok HTTP/1.0\r\n\r\n")
        try:
            assert b"worker_status" not in c.recv(1000)
        except ConnectionResetError:
            pass
    out = subprocess.run([servalctl_bin, "-S", str(state), "reload-certs"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0 and "Command reload-certs sent success" in out.stdout, out
    out = subprocess.run([servalctl_bin, "-S", str(state), "stats"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and '"tls"' in out.stdout, out
    out = subprocess.run([servalctl_bin, "-S", str(state), "stop"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out
    assert s.wait_exit(20) == 0


def test_a_large_response_to_a_slow_reader_and_pipelined_requests_over_tls(servers, testapp, port, pki):
    s = boot(servers, testapp, port, pki, threads="1:2")
    ctx = ssl.create_default_context(cafile=pki.ca)
    n = 4_000_000
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as t:
            t.sendall(f"GET /stream?bytes={n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            time.sleep(0.5)  # socket buffers fill: the server's TLS writes block and resume
            # meanwhile other clients are served (the stream waits without a busy loop)
            assert tls_get(port, pki).status == 200
            parts, tail = [], b""
            while not tail.endswith(b"\r\n0\r\n\r\n"):
                chunk = t.recv(65536)
                assert chunk, "connection closed early"
                parts.append(chunk)
                tail = (tail + chunk)[-16:]
            head, body = b"".join(parts).split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 200")
            # de-chunk
            out, pos = bytearray(), 0
            while True:
                eol = body.index(b"\r\n", pos)
                size = int(body[pos:eol], 16)
                if size == 0:
                    break
                out += body[eol + 2:eol + 2 + size]
                pos = eol + 2 + size + 2
            assert len(out) == n and out[:26] == b"abcdefghijklmnopqrstuvwxyz"
            # three pipelined requests in one TLS record, answered in order on the same connection
            t.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n" * 2 + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := t.recv(65536):
                data += chunk
            assert data.count(b"HTTP/1.1 200") == 3 and data.endswith(b"Hello World"), data
    assert s.alive()


def test_requests_in_many_records_of_one_segment_are_all_answered(servers, testapp, port, pki):
    """Several TLS records reach the server in one recv: the first request is answered and the records read
    ahead with it are not left waiting for an event that never comes (the socket is empty by then)."""
    boot(servers, testapp, port, pki, threads="1:2")
    ctx = ssl.create_default_context(cafile=pki.ca)
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, outg, server_hostname="localhost")
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        deadline = time.monotonic() + 20
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sendall(outg.read())
                data = raw.recv(65536)
                assert data and time.monotonic() < deadline, "handshake did not finish"
                inc.write(data)
        raw.sendall(outg.read())
        # one request per record, a fourth split over two records; all in one send
        obj.write(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
        obj.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        obj.write(b"GET /pid HTTP/1.1\r\nHo")
        obj.write(b"st: x\r\n\r\n")
        obj.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw.sendall(outg.read())
        got = b""
        while True:
            try:
                chunk = obj.read(65536)
            except ssl.SSLWantReadError:
                data = raw.recv(65536)
                assert time.monotonic() < deadline, got
                if not data:
                    break
                inc.write(data)
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            if not chunk:
                break
            got += chunk
    assert got.count(b"HTTP/1.1 200") == 4 and got.endswith(b"Hello World"), got


def test_the_app_sees_https_as_the_scheme(servers, testapp, port, pki):
    plain = free_port()
    cport = free_port()
    servers("-b", ssl_uri(port, pki.cert, pki.key), "-b", f"tcp://127.0.0.1:{plain}",
            "--control-url", f"tcp://127.0.0.1:{cport}", "--control-token", TOKEN, testapp)
    # with a body: a GET /echo makes the app read an empty body, which UBSan flags in request.c (not TLS)
    conn = TLSTarget(port, pki.ca).connection()
    conn.request("POST", "/echo", body=b"x")
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["scheme"] == "https"
    conn.close()
    assert get(plain, "/echo", method="POST", body=b"x").json()["scheme"] == "http"


def test_an_encrypted_key_with_key_password_command(servers, testapp, port, pki, tmp_path):
    enc = str(tmp_path / "enc.key")
    openssl("ec", "-in", pki.key, "-aes256", "-passout", "pass:s3cret", "-out", enc)
    # without the command: one line that says what to add
    s = servers("-b", ssl_uri(port, pki.cert, enc), testapp, wait=False)
    assert s.wait_exit(10) != 0
    err = s.stderr().strip().splitlines()
    assert len(err) == 1 and "the key is encrypted (hint: give key_password_command)" in err[0], err
    # a command that fails: one line naming it
    s = servers("-b", ssl_uri(port, pki.cert, enc, key_password_command="false"), testapp, wait=False)
    assert s.wait_exit(10) != 0
    err = s.stderr().strip().splitlines()
    assert len(err) == 1 and "key_password_command 'false' failed (exit status 1)" in err[0], err
    # the right one (%20: a space in the URI)
    servers("-b", ssl_uri(port, pki.cert, enc, key_password_command="echo%20s3cret"), testapp)
    assert tls_get(port, pki).status == 200


def test_certificate_reload_in_single_mode(servers, testapp, port, pki, tmp_path):
    live_cert, live_key = str(tmp_path / "live.pem"), str(tmp_path / "live.key")
    replace_file(pki.cert, live_cert)
    replace_file(pki.key, live_key)
    s = boot(servers, testapp, port, pki, uri=ssl_uri(port, live_cert, live_key))
    new_cert, new_key = pki.issue("single2", "localhost")
    replace_file(new_key, live_key)
    replace_file(new_cert, live_cert)
    s.send(signal.SIGWINCH)
    wait_until(lambda: peer_serial(port, pki) == serial_of(new_cert), timeout=10, what="the new certificate")
    assert s.count(r"TLS certificates reloaded \(SIGWINCH\) for 1 listener") == 1
    assert stats(s.cport)["tls"]["certificate_reloads"] == 1
    # no ssl:// listener: the action says so
    plain, cport = free_port(), free_port()
    servers("-b", f"tcp://127.0.0.1:{plain}", "--control-url", f"tcp://127.0.0.1:{cport}", "--control-token", TOKEN,
            testapp)
    r = get(cport, f"/reload-certs?token={TOKEN}")
    assert r.status == 404 and r.json() == {"error": "no ssl:// listener"}
