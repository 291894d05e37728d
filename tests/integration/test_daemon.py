"""sealpostd's life cycle: it starts on embedded defaults, says it is
ready, stops cleanly on SIGTERM or SIGINT, and refuses bad configuration
with status 2 and a runtime problem with status 3, saying why.
"""
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import SEALPOSTD
from dnsserver import free_port


def start(*args, env=None):
    """sealpostd with args; its HTTP API on a free port unless args say."""
    if "--http-listen" not in args:
        args = (*args, "--http-listen", f"127.0.0.1:{free_port()}")
    return subprocess.Popen([SEALPOSTD, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)


def wait_ready(proc, timeout=10):
    """Read stderr until the ready line; return the lines read."""
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode()
        if not line:
            break
        lines.append(line)
        if " ready " in line:
            return lines
    proc.kill()
    raise AssertionError(f"sealpostd never said ready: {lines}")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_starts_ready_and_stops_cleanly(tmp, stop):
    data = tmp / "data"
    proc = start("--data-dir", data)
    lines = wait_ready(proc)
    assert f"data_dir={data}" in lines[-1]
    assert "config=embedded-defaults" in lines[-1]
    assert data.is_dir()

    proc.send_signal(stop)
    assert proc.wait(timeout=10) == 0
    rest = proc.stderr.read().decode()
    assert "stopping signal=" in rest and "stopped" in rest


def test_configuration_file_and_option_precedence(tmp):
    from_file = tmp / "from-file"
    config = tmp / "sealpost.conf"
    config.write_text(f"# test\n data_dir = {from_file}\n")
    proc = start("--config", config)
    assert f"data_dir={from_file}" in wait_ready(proc)[-1]
    proc.terminate()
    assert proc.wait(timeout=10) == 0

    from_option = tmp / "from-option"
    proc = start("--config", config, "--data-dir", from_option)
    assert f"data_dir={from_option}" in wait_ready(proc)[-1]
    proc.terminate()
    assert proc.wait(timeout=10) == 0


def test_environment_names_the_data_dir(tmp):
    env = dict(os.environ, SEALPOST_DATA_DIR=str(tmp / "env"))
    proc = start(env=env)
    assert f"data_dir={tmp / 'env'}" in wait_ready(proc)[-1]
    proc.terminate()
    assert proc.wait(timeout=10) == 0


@pytest.mark.parametrize("content,words", [
    ("data_dri = /tmp\n", "unknown setting"),
    ("no equals sign\n", "expected key = value"),
])
def test_bad_configuration_is_refused(tmp, content, words):
    config = tmp / "bad.conf"
    config.write_text(content)
    proc = start("--config", config)
    assert proc.wait(timeout=10) == 2
    assert words in proc.stderr.read().decode()


def test_missing_configuration_file_is_refused(tmp):
    proc = start("--config", tmp / "absent.conf")
    assert proc.wait(timeout=10) == 2
    assert "absent.conf" in proc.stderr.read().decode()


def test_http_api_on_a_public_address_is_refused(tmp):
    """Plain HTTP carries API keys: loopback only."""
    proc = start("--data-dir", tmp, "--http-listen", "192.0.2.1:8025")
    assert proc.wait(timeout=10) == 2
    assert "only a loopback address" in proc.stderr.read().decode()


def test_unusable_data_dir_is_a_runtime_failure(tmp):
    blocker = tmp / "file"
    blocker.write_text("not a directory")
    proc = start("--data-dir", blocker / "sub")
    assert proc.wait(timeout=10) == 3
    assert "data_dir=" in proc.stderr.read().decode()


def test_help_and_version():
    done = subprocess.run([SEALPOSTD, "--help"], capture_output=True)
    assert done.returncode == 0 and b"usage: sealpostd" in done.stdout
    done = subprocess.run([SEALPOSTD, "--version"], capture_output=True)
    assert done.returncode == 0 and done.stdout.startswith(b"sealpostd ")


def test_example_configuration_is_valid(tmp):
    """etc/sealpost.conf lists every setting; it must start as it is."""
    import pathlib
    example = pathlib.Path(os.environ.get("SEALPOST_SOURCE", ".")) / "etc" / \
        "sealpost.conf"
    source = pathlib.Path(os.environ.get("SEALPOST_SOURCE", "."))
    text = example.read_text()
    keys = re.findall(r"^\s*ROW\((\w+),", (source / "src" / "config" /
                                           "config.c").read_text(), re.M)
    assert len(keys) > 20
    missing = [key for key in keys
               if not re.search(rf"^#? ?{key} =", text, re.M)]
    assert missing == [], f"settings missing from etc/sealpost.conf: {missing}"

    listen = f"127.0.0.1:{free_port()}"
    proc = start("--config", example, "--data-dir", tmp / "data",
                 "--smtp-listen", listen)
    lines = wait_ready(proc)
    assert "dkim_domains=1" in lines[-1]
    assert any(f"listening service=smtp address={listen}" in line
               for line in lines), lines
    proc.terminate()
    assert proc.wait(timeout=10) == 0


def test_first_start_makes_keys_and_says_what_to_publish(tmp):
    """A configured domain without keys gets an RSA and an Ed25519 key on
    the first start, and the log says which TXT record to publish for
    each: the one "sealpost dkim dns" prints."""
    conf = tmp / "sealpost.conf"
    conf.write_text(f"data_dir = {tmp / 'data'}\n"
                    "dkim_domains = example.com\ndelivery_hold = yes\n")
    proc = start("--config", conf, "--smtp-listen",
                 f"127.0.0.1:{free_port()}")
    wait_ready(proc)
    published = []
    deadline = time.monotonic() + 20
    while len(published) < 2 and time.monotonic() < deadline:
        line = proc.stderr.readline().decode()
        if "dkim_publish" in line:
            published.append(line)
    proc.terminate()
    assert proc.wait(timeout=10) == 0
    assert len(published) == 2, published

    dns = subprocess.run([os.environ["SEALPOST"], "--config", str(conf),
                          "dkim", "dns", "example.com"], capture_output=True,
                         timeout=30).stdout.decode()
    for line in published:
        name, value = re.search(r"TXT record (\S+) with the value "
                                r"(v=DKIM1; k=\w+; p=\S+) ", line).groups()
        assert name.endswith("._domainkey.example.com")
        key = value.split("p=")[1]
        assert key[:40] in dns.replace('"', "").replace("\n", ""), (key, dns)
