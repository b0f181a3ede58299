"""Test certificates made with the openssl command: a CA, a server
certificate for localhost, one for the wrong host, a self-signed one, an
expired one and a client certificate. Made once per test run."""
import os
import subprocess
import tempfile

_DIR = None


def _run(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   capture_output=True)


def _signed(d, name, san, days_args, ext="server"):
    _run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
         "-subj", "/CN=" + name, cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("subjectAltName=%s\n" % san)
        f.write("extendedKeyUsage=%s\n" % ("serverAuth" if ext == "server" else "clientAuth"))
    _run("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", name + ".crt", "-extfile", name + ".ext",
         *days_args, cwd=d)


def make():
    """The directory holding the files (made on first call)."""
    global _DIR
    if _DIR is not None:
        return _DIR
    d = tempfile.mkdtemp(prefix="postie-certs.")
    _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
         "-subj", "/CN=postie test CA", cwd=d)
    _signed(d, "localhost", "DNS:localhost", ["-days", "2"])
    _signed(d, "wrong", "DNS:wrong.example", ["-days", "2"])
    _signed(d, "client", "email:client@example.org", ["-days", "2"], ext="client")
    _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", "self.key", "-out", "self.crt", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", cwd=d)
    # expired: signed by the CA with a validity that ended in 2020
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca=t\n[t]\ndatabase=index.txt\nnew_certs_dir=.\n"
                "serial=serial\ndefault_md=sha256\npolicy=p\ncopy_extensions=copy\n"
                "[p]\ncommonName=supplied\n")
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "serial"), "w") as f:
        f.write("1000\n")
    _run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "expired.key", "-out", "expired.csr", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", cwd=d)
    _run("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key",
         "-in", "expired.csr", "-out", "expired.crt", "-startdate", "20200101000000Z",
         "-enddate", "20200102000000Z", cwd=d)
    _DIR = d
    return d


def path(name):
    return os.path.join(make(), name)


def fingerprint(name):
    out = subprocess.run(["openssl", "x509", "-in", path(name), "-noout",
                          "-fingerprint", "-sha256"], capture_output=True,
                         check=True, text=True).stdout
    return "sha256:" + out.strip().split("=", 1)[1]
