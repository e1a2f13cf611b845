"""Start and drive the worker process that runs untrusted answer code.

Isolation, strongest available first (the level reached is reported in every verdict):
- "namespaces": unshare(1) gives the worker new user, pid, mount and network namespaces: it sees
  no other process (so no /proc/<pid>/environ of the judge or its shell), has no network, and the
  harness (kernelwright's source) plus the Python installation are bind-mounted read-only.
- "process": a plain child process in its own session, when namespaces are not allowed here.
Always: `python -I` (no cwd / PYTHONPATH / user site on sys.path), an empty temporary working
directory and HOME, an environment scrubbed of secrets, a wall-clock deadline after which the whole
process group is killed, and resource limits the worker sets on itself before loading the answer.
The verdict never comes from the worker's exit code or stdout: only tensors it sends back, which
the judge compares itself.
"""
from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from ..config import JudgeConfig
from . import protocol

# Variables whose names hold any of these never reach a candidate.
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION", re.I)
# Cloud and service credential families, dropped whole.
_CLOUD_PREFIXES = (
    "AWS_", "AZURE_", "ARM_", "GOOGLE_", "GCP_", "GCLOUD_", "CLOUDSDK_", "GCE_", "HF_", "HUGGING",
    "OPENAI_", "ANTHROPIC_", "KAGGLE_", "GITHUB_", "GH_", "GITLAB_", "DIGITALOCEAN_", "DO_", "OCI_",
    "ALIBABA_", "ALICLOUD_", "IBM_", "WANDB_", "NGC_", "DOCKER_", "NPM_", "PYPI_", "TWINE_", "SSH_",
    "KUBE", "VAULT_", "DATABRICKS_", "SNOWFLAKE_", "MLFLOW_", "COMET_", "NEPTUNE_",
)
# The worker never inherits these even though they are not secret: they would change what it runs.
_DROP = ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "LD_PRELOAD", "TRITON_INTERPRET", "TORCHINDUCTOR_CACHE_DIR")


def scrub_env(env: dict[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in env.items()
        if not _SECRET_NAME.search(k) and not k.upper().startswith(_CLOUD_PREFIXES) and k not in _DROP
    }


class WorkerDied(Exception):
    def __init__(self, reason: str, log_tail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.log_tail = log_tail


class WorkerTimeout(Exception):
    def __init__(self, seconds: float, log_tail: str = ""):
        super().__init__(f"timed out after {seconds:.0f} s")
        self.seconds = seconds
        self.log_tail = log_tail


class WorkerProtocolError(Exception):
    """The worker sent something that is not a well-formed message (garbage on the channel)."""


def _src_root() -> Path:
    return Path(__file__).resolve().parents[2]  # .../src (or site-packages) holding kernelwright/


@functools.lru_cache(maxsize=1)
def namespaces_available() -> bool:
    """Can this machine give the worker its own user/pid/mount/net namespaces?"""
    if not shutil.which("unshare") or sys.platform != "linux":
        return False
    try:
        r = subprocess.run(
            ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--kill-child", "--mount",
             "--mount-proc", "--net", "true"],
            capture_output=True, timeout=20,
        )
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _readonly_dirs() -> list[str]:
    """The harness and the interpreter's libraries: a candidate must not edit what judges it."""
    dirs = {str(_src_root() / "kernelwright")}
    dirs |= {p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.isabs(p) and os.path.isdir(p)}
    for key in ("purelib", "platlib", "stdlib"):
        p = sysconfig.get_paths().get(key)
        if p and os.path.isdir(p):
            dirs.add(p)
    return sorted(dirs)


class Worker:
    """One sandboxed worker process; use as a context manager. Requests are synchronous."""

    def __init__(self, device: str, timeout_s: float, cfg: JudgeConfig | None = None, label: str = "answer"):
        self.device = device
        self.cfg = cfg or JudgeConfig(device=device)
        self.timeout_s = timeout_s
        self.deadline = 0.0
        self.label = label
        self.proc: subprocess.Popen | None = None
        self.workdir: Path | None = None
        self.sandbox = ""
        self._to_worker = self._from_worker = -1

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "Worker":
        self.deadline = time.monotonic() + self.timeout_s
        self.workdir = Path(tempfile.mkdtemp(prefix="kw-worker-"))
        os.chmod(self.workdir, 0o700)
        r1, w1 = os.pipe()  # judge -> worker
        r2, w2 = os.pipe()  # worker -> judge
        env = scrub_env(dict(os.environ))
        env.update(
            HOME=str(self.workdir),
            TMPDIR=str(self.workdir),
            TRITON_CACHE_DIR=str(self.workdir / ".triton"),
            TORCHINDUCTOR_CACHE_DIR=str(self.workdir / ".inductor"),
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONUNBUFFERED="1",
            KW_HOST_MEMORY_GB=str(self.cfg.host_memory_gb),
            KW_GPU_MEMORY_FRACTION=str(self.cfg.gpu_memory_fraction),
        )
        if self.device == "cpu":
            env["TRITON_INTERPRET"] = "1"  # set before triton is imported in the worker
        # -I drops PYTHONPATH; absolute entries the user put there (wheels carried to a machine
        # with no registry, say) are trusted like site-packages and passed on explicitly.
        extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.isabs(p)]
        py = [sys.executable, "-I", "-u", "-c",
              f"import sys; sys.path[:0] = {[str(_src_root())] + extra!r}; "
              "from kernelwright.judge.worker import main; main()",
              str(r1), str(w2), self.device]
        if self.cfg.sandbox_namespaces and namespaces_available():
            mounts = "; ".join(
                f"mount --bind {shlex.quote(d)} {shlex.quote(d)} && mount -o remount,bind,ro {shlex.quote(d)}"
                for d in _readonly_dirs()
            )
            script = f"{mounts}; exec {' '.join(shlex.quote(a) for a in py)}"
            argv = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--kill-child", "--mount",
                    "--mount-proc", "--net", "sh", "-c", script]
            self.sandbox = "namespaces (user, pid, mount, net), read-only harness"
        else:
            argv = py
            self.sandbox = "process (namespaces unavailable here)"
        self._log = open(self.workdir / "worker.log", "wb")
        self.proc = subprocess.Popen(
            argv, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, pass_fds=(r1, w2), start_new_session=True,
        )
        os.close(r1)
        os.close(w2)
        self._to_worker, self._from_worker = w1, r2
        return self

    def __enter__(self) -> "Worker":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                protocol.write_message(self._to_worker, {"cmd": "exit"})
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._kill()
        for fd in (self._to_worker, self._from_worker):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._to_worker = self._from_worker = -1
        if getattr(self, "_log", None):
            self._log.close()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    # -- files the worker may read ----------------------------------------------------------
    def put_file(self, name: str, text: str) -> str:
        """Copy a file into the worker's private directory; returns the path the worker sees."""
        assert self.workdir is not None
        p = self.workdir / name
        p.write_text(text)
        return str(p)

    def log_tail(self, n: int = 4000) -> str:
        if self.workdir is None:
            return ""
        try:
            self._log.flush()
            data = (self.workdir / "worker.log").read_bytes()[-n:]
        except OSError:
            return ""
        return data.decode("utf-8", "replace")

    # -- requests -------------------------------------------------------------------------
    def request(self, body: dict) -> Any:
        assert self.proc is not None, "start() the worker first"
        try:
            protocol.write_message(self._to_worker, body)
            reply = protocol.read_message(self._from_worker, deadline=self.deadline)
        except protocol.ChannelTimeout:
            tail = self.log_tail()
            self._kill()
            raise WorkerTimeout(self.timeout_s, tail) from None
        except (protocol.ChannelClosed, BrokenPipeError, OSError):
            raise WorkerDied(self._death_reason(), self.log_tail()) from None
        except (ValueError, KeyError, TypeError) as exc:
            tail = self.log_tail()
            self._kill()
            raise WorkerProtocolError(f"the worker sent a malformed message ({exc})") from None
        if not isinstance(reply, dict):
            self._kill()
            raise WorkerProtocolError("the worker's reply is not a message object")
        return reply

    def _death_reason(self) -> str:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._kill()
            return "the worker closed its channel and stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            hint = {"SIGSEGV": " (segmentation fault)", "SIGKILL": " (killed: out of memory?)",
                    "SIGABRT": " (aborted)", "SIGBUS": " (bus error)"}.get(name, "")
            return f"the worker died of {name}{hint}"
        # Under unshare, a signal that killed the worker shows up as 128 + signo.
        if code > 128 and code - 128 in {s.value for s in signal.Signals}:
            name = signal.Signals(code - 128).name
            return f"the worker died of {name}"
        return f"the worker exited with code {code} before answering (does the answer call exit()?)"
