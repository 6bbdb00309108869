"""A Remote Workers API bot for kiln's remote-execution tests (BuildGrid ships no worker).

Each of --slots threads holds its own bot session (capacity 1) and long-polls UpdateBotSession.
For each lease it reads the Action, its Command and its input root from the CAS, lays the input
root out in a new empty temporary directory, runs the command there with exactly the Command's
environment, uploads the outputs, stdout and stderr, and reports an ActionResult as the lease's
result. Run with BuildGrid's venv python: python worker.py --server 127.0.0.1:PORT
"""

import argparse
import hashlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import grpc
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc
from buildgrid._protos.google.bytestream import bytestream_pb2 as bs_pb2
from buildgrid._protos.google.bytestream import bytestream_pb2_grpc as bs_grpc
from buildgrid._protos.google.devtools.remoteworkers.v1test2 import bots_pb2, bots_pb2_grpc, worker_pb2
from buildgrid._protos.google.rpc import code_pb2, error_details_pb2, status_pb2

BATCH_BYTES = 3 << 20  # per batch request; the server's limit is 4 MiB - 1 KiB
CHUNK = 1 << 20  # ByteStream chunk size
HEARTBEAT = 2.0  # seconds between UpdateBotSession calls while a lease runs
LONG_POLL = 9.0  # UpdateBotSession deadline while idle (the server waits 80% of it)
PENDING, ACTIVE, COMPLETED = bots_pb2.LeaseState.PENDING, bots_pb2.LeaseState.ACTIVE, bots_pb2.LeaseState.COMPLETED
TRANSIENT = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
    # Connect soon after the server comes up (the default backoff starts at 1 s).
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 200),
]

_running = {}  # process group -> temporary directory of each running action, for the end


def _kill_actions_and_exit(*_):
    for pgid, tmp in list(_running.items()):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
        shutil.rmtree(tmp, ignore_errors=True)
    os._exit(0)


def log(*parts):
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


class Missing(Exception):
    def __init__(self, digests):
        super().__init__(f"{len(digests)} blob(s) missing from the CAS")
        self.digests = digests


def digest_of(data):
    return re_pb2.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def digest_file(path):
    """Digest of a file, and its bytes when it is small enough to keep for a batch upload."""
    h, size, chunks = hashlib.sha256(), 0, []
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
            size += len(block)
            if size <= BATCH_BYTES:
                chunks.append(block)
    return re_pb2.Digest(hash=h.hexdigest(), size_bytes=size), (b"".join(chunks) if size <= BATCH_BYTES else None)


class Cas:
    """Reads and writes blobs: small ones in batches, large ones through ByteStream."""

    def __init__(self, channel, instance):
        self.cas = re_grpc.ContentAddressableStorageStub(channel)
        self.bs = bs_grpc.ByteStreamStub(channel)
        self.instance = instance
        self.prefix = f"{instance}/" if instance else ""

    def read(self, digests):
        """{hash: bytes} for small blobs; raises Missing. Large blobs are read whole too."""
        out, missing, batch, size = {}, [], [], 0
        for d in {d.hash: d for d in digests}.values():
            if d.size_bytes == 0:
                out[d.hash] = b""
            elif d.size_bytes > BATCH_BYTES:
                try:
                    out[d.hash] = b"".join(self._stream(d))
                except Missing:
                    missing.append(d)
            else:
                if size + d.size_bytes > BATCH_BYTES:
                    self._batch_read(batch, out, missing)
                    batch, size = [], 0
                batch.append(d)
                size += d.size_bytes
        self._batch_read(batch, out, missing)
        if missing:
            raise Missing(missing)
        return out

    def _batch_read(self, batch, out, missing):
        if not batch:
            return
        resp = self.cas.BatchReadBlobs(re_pb2.BatchReadBlobsRequest(instance_name=self.instance, digests=batch))
        for r in resp.responses:
            if r.status.code == code_pb2.OK:
                out[r.digest.hash] = r.data
            elif r.status.code == code_pb2.NOT_FOUND:
                missing.append(r.digest)
            else:
                raise RuntimeError(f"BatchReadBlobs {r.digest.hash}: {r.status}")

    def _stream(self, d):
        name = f"{self.prefix}blobs/{d.hash}/{d.size_bytes}"
        try:
            for resp in self.bs.Read(bs_pb2.ReadRequest(resource_name=name)):
                yield resp.data
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                raise Missing([d]) from e
            raise

    def fetch_to_file(self, d, path):
        with open(path, "wb") as f:
            for chunk in self._stream(d):
                f.write(chunk)

    def upload(self, blobs):
        """blobs: {hash: (Digest, bytes or None, path or None)}; sends those the CAS lacks."""
        digests = [b[0] for b in blobs.values() if b[0].size_bytes > 0]
        if not digests:
            return
        resp = self.cas.FindMissingBlobs(
            re_pb2.FindMissingBlobsRequest(instance_name=self.instance, blob_digests=digests)
        )
        batch, size = [], 0
        for d in resp.missing_blob_digests:
            _, data, path = blobs[d.hash]
            if d.size_bytes > BATCH_BYTES:
                self._write(d, path)
                continue
            if data is None:
                with open(path, "rb") as f:
                    data = f.read()
            if size + d.size_bytes > BATCH_BYTES:
                self._batch_update(batch)
                batch, size = [], 0
            batch.append(re_pb2.BatchUpdateBlobsRequest.Request(digest=d, data=data))
            size += d.size_bytes
        self._batch_update(batch)

    def _batch_update(self, batch):
        if not batch:
            return
        resp = self.cas.BatchUpdateBlobs(re_pb2.BatchUpdateBlobsRequest(instance_name=self.instance, requests=batch))
        for r in resp.responses:
            if r.status.code != code_pb2.OK:
                raise RuntimeError(f"BatchUpdateBlobs {r.digest.hash}: {r.status}")

    def _write(self, d, path):
        name = f"{self.prefix}uploads/{uuid.uuid4()}/blobs/{d.hash}/{d.size_bytes}"

        def requests():
            offset = 0
            with open(path, "rb") as f:
                while True:
                    chunk = f.read(CHUNK)
                    last = offset + len(chunk) >= d.size_bytes
                    yield bs_pb2.WriteRequest(resource_name=name, write_offset=offset, data=chunk, finish_write=last)
                    offset += len(chunk)
                    if last or not chunk:
                        return

        self.bs.Write(requests())


def check_name(name):
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"bad path component in input root: {name!r}")


def lay_out_input_root(cas, root_digest, root):
    """Writes the Merkle tree of Directory messages under root (an empty directory)."""
    dirs, todo = {}, [root_digest]
    while todo:  # fetch the tree level by level
        for h, data in cas.read(todo).items():
            dirs[h] = re_pb2.Directory.FromString(data)
        todo = [n.digest for d in dirs.values() for n in d.directories if n.digest.hash not in dirs]
    files = {}  # hash -> (Digest, [(path, executable)])
    stack = [(root_digest.hash, root)]
    while stack:
        h, path = stack.pop()
        d = dirs[h]
        for f in d.files:
            check_name(f.name)
            files.setdefault(f.digest.hash, (f.digest, []))[1].append((os.path.join(path, f.name), f.is_executable))
        for s in d.symlinks:
            check_name(s.name)
            os.symlink(s.target, os.path.join(path, s.name))
        for n in d.directories:
            check_name(n.name)
            os.mkdir(os.path.join(path, n.name))
            stack.append((n.digest.hash, os.path.join(path, n.name)))
    small = cas.read([d for d, _ in files.values() if d.size_bytes <= BATCH_BYTES])
    for h, (d, places) in files.items():
        first = places[0][0]
        if h in small:
            with open(first, "wb") as f:
                f.write(small[h])
        else:
            cas.fetch_to_file(d, first)
        for path, _ in places[1:]:
            shutil.copyfile(first, path)
        for path, executable in places:
            os.chmod(path, 0o755 if executable else 0o644)


def tree_of(path, blobs):
    """Directory message for path (files added to blobs), and the list of all its subdirectories'."""
    d, children = re_pb2.Directory(), []
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if entry.is_symlink():
            d.symlinks.add(name=entry.name, target=os.readlink(entry.path))
        elif entry.is_dir():
            sub, sub_children = tree_of(entry.path, blobs)
            data = sub.SerializeToString()
            d.directories.add(name=entry.name, digest=digest_of(data))
            children.append(sub)
            children.extend(sub_children)
        elif entry.is_file():
            dg, data = digest_file(entry.path)
            blobs[dg.hash] = (dg, data, entry.path)
            d.files.add(name=entry.name, digest=dg, is_executable=bool(entry.stat().st_mode & stat.S_IXUSR))
    return d, children


def collect_outputs(cas, cmd, wd, result):
    blobs = {}
    if cmd.output_paths:
        wanted = [(p, None) for p in cmd.output_paths]
    else:
        wanted = [(p, "file") for p in cmd.output_files] + [(p, "dir") for p in cmd.output_directories]
    for rel, kind in wanted:
        path = os.path.join(wd, rel)
        if os.path.islink(path):
            link = re_pb2.OutputSymlink(path=rel, target=os.readlink(path))
            result.output_symlinks.append(link)
            if kind == "file":
                result.output_file_symlinks.append(link)
            elif kind == "dir":
                result.output_directory_symlinks.append(link)
        elif os.path.isfile(path):
            dg, data = digest_file(path)
            blobs[dg.hash] = (dg, data, path)
            result.output_files.add(path=rel, digest=dg, is_executable=os.access(path, os.X_OK))
        elif os.path.isdir(path):
            root, children = tree_of(path, blobs)
            data = re_pb2.Tree(root=root, children=children).SerializeToString()
            dg = digest_of(data)
            blobs[dg.hash] = (dg, data, None)
            result.output_directories.add(path=rel, tree_digest=dg)
    cas.upload(blobs)


def execute(cas, action, bot_id, work_dir, cancelled):
    """Runs one Action; returns (Status, ActionResult)."""
    result = re_pb2.ActionResult()
    meta = result.execution_metadata
    meta.worker = bot_id
    meta.input_fetch_start_timestamp.GetCurrentTime()
    tmp = tempfile.mkdtemp(prefix="action-", dir=work_dir)
    try:
        try:
            cmd = re_pb2.Command.FromString(cas.read([action.command_digest])[action.command_digest.hash])
            root = os.path.join(tmp, "root")
            os.mkdir(root)
            lay_out_input_root(cas, action.input_root_digest, root)
        except Missing as e:
            failure = error_details_pb2.PreconditionFailure()
            for d in e.digests:
                failure.violations.add(type="MISSING", subject=f"blobs/{d.hash}/{d.size_bytes}")
            status = status_pb2.Status(code=code_pb2.FAILED_PRECONDITION, message=str(e))
            status.details.add().Pack(failure)
            return status, result
        meta.input_fetch_completed_timestamp.GetCurrentTime()

        wd = os.path.join(root, cmd.working_directory)
        os.makedirs(wd, exist_ok=True)
        outs = list(cmd.output_paths) or list(cmd.output_files) + list(cmd.output_directories)
        for rel in outs:  # REAPI: the worker creates the outputs' parent directories
            os.makedirs(os.path.dirname(os.path.join(wd, rel)), exist_ok=True)
        env = {v.name: v.value for v in cmd.environment_variables}
        out_path, err_path = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
        timeout = action.timeout.ToTimedelta().total_seconds() or None
        status = status_pb2.Status(code=code_pb2.OK)
        meta.execution_start_timestamp.GetCurrentTime()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(
                    list(cmd.arguments),
                    cwd=wd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
            except (OSError, ValueError, IndexError) as e:
                err.write(f"worker: cannot run {list(cmd.arguments)!r}: {e}\n".encode())
                result.exit_code = 127 if isinstance(e, FileNotFoundError) else 126
                proc = None
            if proc is not None:
                _running[proc.pid] = tmp
                deadline = time.monotonic() + timeout if timeout else None
                while proc.poll() is None:
                    if cancelled.is_set():
                        break
                    if deadline and time.monotonic() > deadline:
                        status = status_pb2.Status(code=code_pb2.DEADLINE_EXCEEDED, message="action timed out")
                        break
                    try:
                        proc.wait(0.05)
                    except subprocess.TimeoutExpired:
                        pass
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the action and anything it left running
                except ProcessLookupError:
                    pass
                _running.pop(proc.pid, None)
                rc = proc.wait()
                result.exit_code = rc if rc >= 0 else 128 - rc
        meta.execution_completed_timestamp.GetCurrentTime()
        if cancelled.is_set():
            return status_pb2.Status(code=code_pb2.CANCELLED, message="lease cancelled"), result

        meta.output_upload_start_timestamp.GetCurrentTime()
        collect_outputs(cas, cmd, wd, result)
        blobs = {}
        for field, path in (("stdout_digest", out_path), ("stderr_digest", err_path)):
            dg, data = digest_file(path)
            blobs[dg.hash] = (dg, data, path)
            getattr(result, field).CopyFrom(dg)
        cas.upload(blobs)
        meta.output_upload_completed_timestamp.GetCurrentTime()
        return status, result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class Slot(threading.Thread):
    """One bot session that runs one lease at a time."""

    def __init__(self, args, channel, index, ready):
        super().__init__(daemon=True, name=f"slot-{index}")
        self.args, self.ready = args, ready
        self.bots = bots_pb2_grpc.BotsStub(channel)
        self.cas = Cas(channel, args.instance)
        self.bot_id = f"{socket.gethostname()}-{os.getpid()}-{index}"

    def new_session(self):
        worker = worker_pb2.Worker()
        device = worker.devices.add(handle=self.bot_id)
        device.properties.add(key="OSFamily", value="linux")
        device.properties.add(key="ISA", value="x86-64")
        session = bots_pb2.BotSession(bot_id=self.bot_id, status=bots_pb2.BotStatus.OK, worker=worker)
        # A deadline under 3.75 s makes the server answer at once instead of waiting for work.
        return self.bots.CreateBotSession(
            bots_pb2.CreateBotSessionRequest(parent=self.args.instance, bot_session=session), timeout=3.5
        )

    def update(self, session, timeout):
        return self.bots.UpdateBotSession(
            bots_pb2.UpdateBotSessionRequest(name=session.name, bot_session=session), timeout=timeout
        )

    def run(self):
        session = None
        while True:
            try:
                if session is None:  # at the start, or when the server dropped us
                    session = self.new_session()
                    log(self.name, "bot session", session.name)
                    self.ready.release()
                leases = [x for x in session.leases if x.state in (PENDING, ACTIVE)]
                if not leases:
                    session = self.update(session, LONG_POLL)
                    continue
                session = self.run_lease(session, leases[0])
            except grpc.RpcError as e:
                log(self.name, "rpc error:", e.code(), e.details())
                if e.code() not in TRANSIENT:
                    session = None  # the server forgot us (e.g. reaped): start again
                time.sleep(0.2)
            except Exception as e:  # keep the slot alive whatever happens
                log(self.name, "error:", repr(e))
                session = None
                time.sleep(0.2)

    def run_lease(self, session, lease):
        """Runs the lease, heartbeating meanwhile; returns the next session (None: start again)."""
        lease.state = ACTIVE
        action = re_pb2.Action()
        if not lease.payload.Unpack(action):
            digest = re_pb2.Digest()
            lease.payload.Unpack(digest)
            action = re_pb2.Action.FromString(self.cas.read([digest])[digest.hash])
        log(self.name, "lease", lease.id)
        box, cancelled = {}, threading.Event()

        def work():
            try:
                box["r"] = execute(self.cas, action, self.bot_id, self.args.work_dir, cancelled)
            except Exception as e:  # report, never hang the lease
                log(self.name, "lease failed:", repr(e))
                box["r"] = (status_pb2.Status(code=code_pb2.INTERNAL, message=repr(e)), re_pb2.ActionResult())

        t = threading.Thread(target=work, daemon=True)
        t.start()
        while t.is_alive():
            t.join(HEARTBEAT)
            if t.is_alive():  # heartbeat; a lease the server dropped was cancelled
                del session.leases[:]
                session.leases.append(lease)
                try:
                    session = self.update(session, 5)
                except grpc.RpcError as e:
                    log(self.name, "heartbeat:", e.code(), e.details())
                    continue
                if not any(x.id == lease.id for x in session.leases):
                    cancelled.set()
        status, result = box["r"]
        lease.state = COMPLETED
        lease.status.CopyFrom(status)
        lease.result.Pack(result)
        del session.leases[:]
        session.leases.append(lease)
        log(self.name, "done", lease.id, "exit", result.exit_code, "status", status.code)
        for _ in range(10):
            try:
                return self.update(session, 5)
            except grpc.RpcError as e:
                log(self.name, "report:", e.code(), e.details())
                if e.code() not in TRANSIENT:
                    break
                time.sleep(0.2)
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", required=True, help="host:port of the Bots and CAS services")
    p.add_argument("--instance", default="")
    p.add_argument("--slots", type=int, default=4)
    p.add_argument("--work-dir", default=None, help="where actions' temporary directories go")
    p.add_argument("--ready-file", help="created once every slot has a bot session")
    args = p.parse_args()
    if args.work_dir:
        os.makedirs(args.work_dir, exist_ok=True)
    signal.signal(signal.SIGTERM, _kill_actions_and_exit)  # engine.py's death sends SIGTERM
    signal.signal(signal.SIGINT, _kill_actions_and_exit)
    channel = grpc.insecure_channel(args.server.removeprefix("grpc://"), options=GRPC_OPTIONS)
    ready = threading.Semaphore(0)
    for i in range(args.slots):
        Slot(args, channel, i, ready).start()
    for _ in range(args.slots):
        ready.acquire()
    log("worker ready with", args.slots, "slots")
    if args.ready_file:
        open(args.ready_file, "w").close()
    threading.Event().wait()


if __name__ == "__main__":
    main()
