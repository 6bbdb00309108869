"""Starts a Remote Execution API engine on loopback for kiln's tests: a BuildGrid server and
tests/remote/worker.py, both children of this launcher, which die with it (even by SIGKILL).

    target/test-tools/buildgrid/bin/python tests/remote/engine.py --dir TMPDIR [--slots N]

Prints `ready grpc://127.0.0.1:PORT` once the server answers GetCapabilities and every worker
slot has a bot session, then waits. With --tls DIR it first prints `tls grpcs://127.0.0.1:PORT2`:
a second port, serving TLS with DIR/cert.pem and DIR/key.pem. Writes buildgrid.yml, server.log and worker.log into TMPDIR.
Exits (killing the other child) if the server or the worker dies.
"""

import argparse
import ctypes
import os
import signal
import socket
import string
import subprocess
import sys
import time

import grpc
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc

HERE = os.path.dirname(os.path.abspath(__file__))
STARTUP_TIMEOUT = 60.0
_libc = ctypes.CDLL(None, use_errno=True)
_launcher = os.getpid()


def _die_with_launcher(sig):
    # In the child, between fork and exec: send me sig when the launcher dies.
    _libc.prctl(1, sig)  # PR_SET_PDEATHSIG
    if os.getppid() != _launcher:  # it died before prctl
        os._exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(argv, log_path, env=None, deathsig=signal.SIGKILL):
    log = open(log_path, "ab")
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        preexec_fn=lambda: _die_with_launcher(deathsig),
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", required=True, help="a temporary directory for the config, logs and data")
    p.add_argument("--slots", type=int, default=4, help="actions the worker runs at once")
    p.add_argument("--tls", metavar="DIR", help="also serve TLS with DIR/cert.pem and DIR/key.pem on a second port")
    args = p.parse_args()
    tmp = os.path.abspath(args.dir)
    os.makedirs(tmp, exist_ok=True)

    port = free_port()
    with open(os.path.join(HERE, "buildgrid.yml")) as f:
        config = string.Template(f.read()).substitute(port=port)
    tls_port = None
    if args.tls:
        # A second channel for clients, with TLS; the worker stays on the plain one.
        tls_port = free_port()
        tls_dir = os.path.abspath(args.tls)
        channel = (
            f'  - !channel\n    address: "127.0.0.1:{tls_port}"\n    insecure-mode: false\n'
            f"    credentials:\n      tls-server-key: {tls_dir}/key.pem\n"
            f"      tls-server-cert: {tls_dir}/cert.pem\n"
        )
        config = config.replace("    insecure-mode: true\n", "    insecure-mode: true\n" + channel, 1)
    config_path = os.path.join(tmp, "buildgrid.yml")
    with open(config_path, "w") as f:
        f.write(config)
    addr = f"127.0.0.1:{port}"
    ready_file = os.path.join(tmp, "worker.ready")
    if os.path.exists(ready_file):
        os.unlink(ready_file)

    # BuildGrid's SQLite scheduler database is a tempfile: keep it in the test's directory.
    server = spawn(
        [sys.executable, os.path.abspath(__file__), "bgd", "server", "start", config_path],
        os.path.join(tmp, "server.log"),
        env=dict(os.environ, TMPDIR=tmp),
    )
    worker = spawn(
        [
            sys.executable,
            os.path.join(HERE, "worker.py"),
            "--server",
            addr,
            "--slots",
            str(args.slots),
            "--work-dir",
            os.path.join(tmp, "work"),
            "--ready-file",
            ready_file,
        ],
        os.path.join(tmp, "worker.log"),
        # No gRPC fork handlers in the actions' children (a fork mid-poll aborts them).
        env=dict(os.environ, GRPC_ENABLE_FORK_SUPPORT="0"),
        deathsig=signal.SIGTERM,
    )  # it kills its actions
    children = {"server": server, "worker": worker}

    def stop(code):
        for child in children.values():
            if child.poll() is None:
                child.kill()
        for child in children.values():
            child.wait()
        sys.exit(code)

    signal.signal(signal.SIGTERM, lambda *_: stop(0))
    signal.signal(signal.SIGINT, lambda *_: stop(0))

    def check_children():
        for name, child in children.items():
            if child.poll() is not None:
                print(
                    f"engine.py: the {name} exited with {child.returncode}; see {tmp}/{name}.log",
                    file=sys.stderr,
                    flush=True,
                )
                stop(1)

    channel = grpc.insecure_channel(
        addr,
        options=[
            ("grpc.initial_reconnect_backoff_ms", 50),
            ("grpc.min_reconnect_backoff_ms", 50),
            ("grpc.max_reconnect_backoff_ms", 200),
        ],
    )
    capabilities = re_grpc.CapabilitiesStub(channel)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    up = False
    while not (up and os.path.exists(ready_file)):
        check_children()
        if time.monotonic() > deadline:
            print(f"engine.py: not ready after {STARTUP_TIMEOUT:.0f} s; see {tmp}/*.log", file=sys.stderr, flush=True)
            stop(1)
        if not up:
            try:
                capabilities.GetCapabilities(re_pb2.GetCapabilitiesRequest(instance_name=""), timeout=1)
                up = True
            except grpc.RpcError:
                pass
        time.sleep(0.02)
    channel.close()

    if tls_port:
        print(f"tls grpcs://127.0.0.1:{tls_port}", flush=True)
    print(f"ready grpc://{addr}", flush=True)
    while True:
        check_children()
        time.sleep(0.2)


def bgd(argv):
    """`bgd ARGS` (BuildGrid's CLI), minus the seconds it spends checking its own JSON schema
    again for each object of the config: the config is still validated, against a trusted schema."""
    import jsonschema

    def validate(instance, schema, *args, **kwargs):
        jsonschema.validators.validator_for(schema)(schema).validate(instance)

    jsonschema.validate = validate
    from buildgrid.server.app import cli

    cli(argv, prog_name="bgd")


if __name__ == "__main__":
    if sys.argv[1:2] == ["bgd"]:
        bgd(sys.argv[2:])
    else:
        main()
