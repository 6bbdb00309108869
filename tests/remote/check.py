"""End-to-end check of the test engine with a plain Python REAPI client (BuildGrid's protos).

    target/test-tools/buildgrid/bin/python tests/remote/check.py [--target grpc://127.0.0.1:PORT]

Without --target it starts tests/remote/engine.py in a temporary directory, runs the checks on
instances "" and "main", then SIGKILLs the launcher mid-action and checks that the server, the
worker and the action went with it.
"""

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc
from buildgrid._protos.google.bytestream import bytestream_pb2 as bs_pb2
from buildgrid._protos.google.bytestream import bytestream_pb2_grpc as bs_grpc
from buildgrid._protos.google.rpc import code_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
OPTIONS = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]


def digest(data):
    return re_pb2.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def step(msg):
    print(f"check: {msg}", flush=True)


class Client:
    def __init__(self, channel, instance):
        self.instance = instance
        self.prefix = f"{instance}/" if instance else ""
        self.caps = re_grpc.CapabilitiesStub(channel)
        self.cas = re_grpc.ContentAddressableStorageStub(channel)
        self.ac = re_grpc.ActionCacheStub(channel)
        self.exe = re_grpc.ExecutionStub(channel)
        self.bs = bs_grpc.ByteStreamStub(channel)

    def put(self, *blobs):
        reqs = [re_pb2.BatchUpdateBlobsRequest.Request(digest=digest(b), data=b) for b in blobs]
        resp = self.cas.BatchUpdateBlobs(re_pb2.BatchUpdateBlobsRequest(instance_name=self.instance, requests=reqs))
        assert all(r.status.code == code_pb2.OK for r in resp.responses), resp
        return [r.digest for r in reqs]

    def write(self, data):
        """ByteStream upload, in 1 MiB chunks."""
        d = digest(data)
        name = f"{self.prefix}uploads/{uuid.uuid4()}/blobs/{d.hash}/{d.size_bytes}"
        n = 1 << 20
        reqs = (
            bs_pb2.WriteRequest(
                resource_name=name if off == 0 else "",
                write_offset=off,
                data=data[off : off + n],
                finish_write=off + n >= len(data),
            )
            for off in range(0, len(data), n)
        )
        assert self.bs.Write(reqs).committed_size == len(data)
        return d

    def read(self, d):
        name = f"{self.prefix}blobs/{d.hash}/{d.size_bytes}"
        return b"".join(r.data for r in self.bs.Read(bs_pb2.ReadRequest(resource_name=name)))

    def get(self, d):
        resp = self.cas.BatchReadBlobs(re_pb2.BatchReadBlobsRequest(instance_name=self.instance, digests=[d]))
        (r,) = resp.responses
        assert r.status.code == code_pb2.OK, r.status
        return r.data

    def action(self, args, files, outputs=(), dirs=(), env=(("PATH", "/usr/bin:/bin"),), do_not_cache=False):
        """Uploads an Action whose input root holds files ({"dir/name": bytes}, one level deep)."""
        subdirs = {}
        for path, data in files.items():
            sub, name = path.split("/")
            subdirs.setdefault(sub, re_pb2.Directory()).files.add(name=name, digest=digest(data))
            self.write(data) if len(data) > (1 << 20) else self.put(data)
        root = re_pb2.Directory()
        for sub in sorted(subdirs):
            blob = subdirs[sub].SerializeToString()
            self.put(blob)
            root.directories.add(name=sub, digest=digest(blob))
        cmd = re_pb2.Command(arguments=args, output_files=sorted(outputs), output_directories=sorted(dirs))
        for name, value in sorted(env):
            cmd.environment_variables.add(name=name, value=value)
        action = re_pb2.Action(
            command_digest=digest(cmd.SerializeToString()),
            input_root_digest=digest(root.SerializeToString()),
            do_not_cache=do_not_cache,
        )
        self.put(cmd.SerializeToString(), root.SerializeToString(), action.SerializeToString())
        return digest(action.SerializeToString())

    def execute(self, action_digest, skip_cache_lookup=True):
        """Execute and follow the Operation stream; returns the ExecuteResponse."""
        req = re_pb2.ExecuteRequest(
            instance_name=self.instance, action_digest=action_digest, skip_cache_lookup=skip_cache_lookup
        )
        last = None
        for op in self.exe.Execute(req, timeout=60):
            last = op
        assert last is not None and last.done, last
        assert last.WhichOneof("result") == "response", last
        resp = re_pb2.ExecuteResponse()
        assert last.response.Unpack(resp), last.response.type_url
        return resp


def assert_not_cached(c, dg):
    try:
        c.ac.GetActionResult(re_pb2.GetActionResultRequest(instance_name=c.instance, action_digest=dg))
        raise AssertionError(f"GetActionResult {dg.hash} found")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, e


def check(target, instance):
    channel = grpc.insecure_channel(target.removeprefix("grpc://"), options=OPTIONS)
    c = Client(channel, instance)
    step(f"instance {instance!r}")

    caps = c.caps.GetCapabilities(re_pb2.GetCapabilitiesRequest(instance_name=instance))
    cc, ec = caps.cache_capabilities, caps.execution_capabilities
    assert re_pb2.DigestFunction.SHA256 in cc.digest_functions, caps
    assert ec.exec_enabled and cc.action_cache_update_capabilities.update_enabled, caps
    step(f"GetCapabilities: max_batch_total_size_bytes={cc.max_batch_total_size_bytes}")

    a, b = f"alpha {uuid.uuid4()}\n".encode(), f"beta {uuid.uuid4()}\n".encode()
    missing = c.cas.FindMissingBlobs(
        re_pb2.FindMissingBlobsRequest(instance_name=instance, blob_digests=[digest(a), digest(b)])
    )
    assert {d.hash for d in missing.missing_blob_digests} == {digest(a).hash, digest(b).hash}, missing
    c.put(a, b)
    missing = c.cas.FindMissingBlobs(
        re_pb2.FindMissingBlobsRequest(instance_name=instance, blob_digests=[digest(a), digest(b)])
    )
    assert not missing.missing_blob_digests, missing
    assert c.get(digest(a)) == a and c.get(digest(b)) == b
    step("FindMissingBlobs, BatchUpdateBlobs, BatchReadBlobs")

    big = os.urandom(5 << 20)
    assert c.read(c.write(big)) == big
    step("ByteStream Write and Read of 5 MiB")

    text = f"hello {uuid.uuid4()}\n".encode()
    ad = c.action(["sh", "-c", "cat in/a.txt > out/b.txt; echo hi; echo err >&2"], {"in/a.txt": text}, ["out/b.txt"])
    t = time.monotonic()
    resp = c.execute(ad)
    took = time.monotonic() - t
    assert resp.status.code == code_pb2.OK and not resp.cached_result, resp
    r = resp.result
    assert r.exit_code == 0, r
    assert [(f.path, f.digest.hash) for f in r.output_files] == [("out/b.txt", digest(text).hash)], r
    assert c.get(r.stdout_digest) == b"hi\n" and c.get(r.stderr_digest) == b"err\n", r
    assert c.get(r.output_files[0].digest) == text
    cached = c.ac.GetActionResult(re_pb2.GetActionResultRequest(instance_name=instance, action_digest=ad))
    assert cached.output_files[0].digest == digest(text) and cached.exit_code == 0, cached
    again = c.execute(ad, skip_cache_lookup=False)
    assert again.cached_result and again.result.output_files[0].digest == digest(text), again
    step(f"Execute ({took:.2f} s), result in the ActionCache, cache hit on a second Execute")

    secret = os.path.join(os.getcwd(), "in", "secret.txt")  # in the client's tree, not the input root
    ad = c.action(
        ["sh", "-c", 'echo "[$HOME][$FOO]"; cat in/secret.txt'],
        {"in/a.txt": text},
        env=[("PATH", "/usr/bin:/bin"), ("FOO", "bar")],
    )
    resp = c.execute(ad)
    assert os.path.exists(secret)
    assert resp.status.code == code_pb2.OK and resp.result.exit_code != 0, resp
    assert c.get(resp.result.stdout_digest) == b"[][bar]\n", c.get(resp.result.stdout_digest)
    step(f"hermetic: a file outside the input root is not there (exit {resp.result.exit_code}), env is exact")
    assert_not_cached(c, ad)

    script = "cp in/big.bin out/big.bin; mkdir -p out/d/e; echo x > out/d/e/f; chmod +x out/d/e/f; ln -s e/f out/d/l"
    ad = c.action(["sh", "-c", script], {"in/big.bin": big}, ["out/big.bin"])
    r = c.execute(ad).result
    assert r.exit_code == 0 and r.output_files[0].digest == digest(big), r
    step("inputs and outputs larger than a batch go through ByteStream")

    ad = c.action(["sh", "-c", script.replace("cp in/big.bin out/big.bin; ", "")], {}, dirs=["out/d"])
    r = c.execute(ad).result
    assert r.exit_code == 0 and [d.path for d in r.output_directories] == ["out/d"], r
    tree = re_pb2.Tree.FromString(c.get(r.output_directories[0].tree_digest))
    assert [(n.name, n.target) for n in tree.root.symlinks] == [("l", "e/f")], tree
    (e,) = tree.children
    assert [(f.name, f.is_executable, c.get(f.digest)) for f in e.files] == [("f", True, b"x\n")], tree
    step("output directory as a Tree (executable bit, symlink)")

    t = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        runs = [pool.submit(c.execute, c.action(["sh", "-c", f"sleep 1; echo {uuid.uuid4()}"], {})) for _ in range(4)]
        assert all(run.result().result.exit_code == 0 for run in runs)
    took = time.monotonic() - t
    assert took < 3.9, took
    step(f"4 actions of 1 s in {took:.2f} s: the worker runs them at once")

    ad = c.action(["no-such-program-kiln"], {"in/a.txt": text})
    resp = c.execute(ad)
    assert resp.result.exit_code != 0 and b"no-such-program-kiln" in c.get(resp.result.stderr_digest), resp
    step(f"a command that cannot start: exit {resp.result.exit_code}")

    ad = c.action(["sh", "-c", "echo fresh"], {"in/a.txt": text}, do_not_cache=True)
    resp = c.execute(ad)
    assert resp.result.exit_code == 0, resp
    unknown = digest(f"unknown {uuid.uuid4()}".encode())
    for dg in (unknown, ad):
        assert_not_cached(c, dg)
    step("GetActionResult NOT_FOUND on an unknown digest and on a do_not_cache action")

    mine = re_pb2.ActionResult(exit_code=0, stdout_digest=digest(a))
    mine.output_files.add(path="x", digest=digest(b))
    c.ac.UpdateActionResult(
        re_pb2.UpdateActionResultRequest(instance_name=instance, action_digest=unknown, action_result=mine)
    )
    got = c.ac.GetActionResult(re_pb2.GetActionResultRequest(instance_name=instance, action_digest=unknown))
    assert got.output_files[0].digest == digest(b), got
    step("UpdateActionResult accepted")
    channel.close()


def kill_mid_build(engine, target, engine_dir):
    """SIGKILLs engine.py while an action runs: the server, the worker and the action must go."""
    c = Client(grpc.insecure_channel(target.removeprefix("grpc://")), "")
    marker = f"sleep 59.{uuid.uuid4().int % 10**9}"  # names the action's processes
    ad = c.action(["sh", "-c", marker], {})
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(c.execute, ad)
        while not any(marker in cmdline for cmdline in cmdlines()):
            assert not run.done(), run.result()
            time.sleep(0.05)
        engine.kill()
        engine.wait()
        try:
            run.result()
            raise AssertionError("Execute finished although the engine died")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE, e
    host, port = target.removeprefix("grpc://").split(":")
    for _ in range(100):
        left = [cmd for cmd in cmdlines() if marker in cmd or engine_dir in cmd]
        try:
            socket.create_connection((host, int(port)), timeout=0.2).close()
            left.append("the server's port")
        except OSError:
            pass
        if not left:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"still there after engine.py was SIGKILLed: {left}")
    step("SIGKILL of engine.py mid-action took the server, the worker and the action down (Execute: UNAVAILABLE)")


def cmdlines():
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                yield f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            pass


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", help="a running engine; default: start engine.py")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="kiln-remote-check-")
    os.makedirs(os.path.join(work, "client", "in"))
    with open(os.path.join(work, "client", "in", "secret.txt"), "w") as f:
        f.write("the worker must not see this\n")
    os.chdir(os.path.join(work, "client"))
    engine, engine_dir = None, os.path.join(work, "engine")
    try:
        target = args.target
        if not target:
            t = time.monotonic()
            engine = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "engine.py"), "--dir", engine_dir],
                stdout=subprocess.PIPE,
                text=True,
            )
            line = engine.stdout.readline().strip()
            assert line.startswith("ready grpc://"), f"engine.py said {line!r}"
            target = line.split()[1]
            step(f"engine.py ready at {target} in {time.monotonic() - t:.2f} s")
        check(target, "")
        check(target, "main")
        if engine:
            kill_mid_build(engine, target, engine_dir)
        print("check: all passed")
    except BaseException:
        if engine:
            for log in ("server.log", "worker.log"):
                path = os.path.join(engine_dir, log)
                if os.path.exists(path):
                    print(f"--- {log} (tail)", file=sys.stderr)
                    with open(path, errors="replace") as f:
                        sys.stderr.write("".join(f.readlines()[-40:]))
        raise
    finally:
        if engine and engine.poll() is None:
            engine.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
