"""The grader's side of the sandbox: start the worker, talk to it, stand in for its objects.

:class:`Sandbox` is the backend that ``tests/under_test.py`` uses while
grading: ``load("A1_knn.knn")`` returns a :class:`RemoteModule`, and every
name, call, attribute or item of it is a request to the worker
(:mod:`course.worker`), which alone imports the student's files.  Answers are
decoded by :mod:`course.wire` (plain data only); objects that are not plain
data stay in the worker and appear here as :class:`Remote` stand-ins.

Isolation, strongest available first (:func:`isolation_available`):

* ``bwrap`` -- bubblewrap: a read-only view of the grading workspace and of
  the Python installation, nothing else of the file system (a private
  ``/tmp``), no network, its own process, IPC and user namespaces, killed
  with the grader (``--die-with-parent``; everything in its process
  namespace dies with it);
* ``process`` -- a plain child process in its own session, used where bwrap
  cannot run (no user namespaces); it can read and write what this user can.

Both get the same limits (``setrlimit``): address space, CPU seconds, file
size, no core dumps; and every request has a wall-clock deadline (the test's
remaining time), after which the worker is killed and a fresh one started for
the next test.  Objects of a killed worker cannot be used again; names read
from a module are looked up again in the new worker.
"""

from __future__ import annotations

import builtins
import os
import random
import select
import shutil
import signal
import site
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from course import wire

__all__ = ["Remote", "RemoteModule", "Sandbox", "StudentCodeError", "isolation_available", "WorkerLost"]

DEFAULT_MEMORY_MB = 8192
DEFAULT_IMPORT_SECONDS = 60.0
START_SECONDS = 180.0  # Python and torch starting in the worker (slow on a loaded machine): not the student's
DEFAULT_CPU_SECONDS = 3600
FILE_SIZE_MB = 256
ENV_PASSED = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "LANG", "LC_ALL", "TZ")
ENV_PREFIXES = ("DL4CV_",)


class StudentCodeError(Exception):
    """An exception of the student's code whose class is not one of Python's own."""


class WorkerLost(RuntimeError):
    """The worker stopped (killed for time or memory, or the student's code ended it)."""


# --------------------------------------------------------------------------- starting the worker


def _bwrap() -> str | None:
    return shutil.which("bwrap")


def _python_roots() -> list[str]:
    """Folders the worker's Python needs: its installation and its site-packages, nothing of the course."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    try:
        roots.update(site.getsitepackages())
    except AttributeError:  # pragma: no cover - virtualenv's old site.py
        pass
    return sorted(r for r in roots if r and os.path.isdir(r))


def _bwrap_command(workspace: Path, tmp_mb: int = 512) -> list[str]:
    cmd = [_bwrap() or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
           "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev",
           "--size", str(tmp_mb << 20), "--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
    for top in ("/bin", "/lib", "/lib64", "/lib32", "/sbin"):
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            cmd += ["--ro-bind", top, top]
    for name in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/alternatives"):
        cmd += ["--ro-bind-try", name, name]
    for root in _python_roots():
        cmd += ["--ro-bind", root, root]
    cmd += ["--ro-bind", str(workspace), str(workspace), "--chdir", str(workspace)]
    return cmd


def _limits(memory_mb: int, cpu_seconds: int):
    def apply():  # runs in the child before exec
        import resource

        for name, value in (("RLIMIT_AS", memory_mb << 20), ("RLIMIT_CPU", cpu_seconds),
                            ("RLIMIT_FSIZE", FILE_SIZE_MB << 20), ("RLIMIT_CORE", 0)):
            limit = getattr(resource, name, None)
            if limit is not None and value > 0:
                resource.setrlimit(limit, (value, value))

    return apply


def _environment(workspace: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ENV_PASSED or k.startswith(ENV_PREFIXES)}
    env.update(PATH="/usr/bin:/bin", HOME="/tmp", TMPDIR="/tmp",
               PYTHONPATH=f"{workspace}{os.pathsep}{workspace / 'tests'}",
               PYTHONDONTWRITEBYTECODE="1", PYTHONNOUSERSITE="1", PYTHONHASHSEED="0", MPLBACKEND="Agg")
    return env


_PROBE: dict[str, str] = {}


def isolation_available() -> tuple[str, str]:
    """``("bwrap", "")`` when bubblewrap runs here, else ``("process", why not)``."""
    if "result" not in _PROBE:
        why = ""
        if _bwrap() is None:
            why = "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
        else:
            probe = Path(os.path.realpath(os.getcwd()))
            try:
                done = subprocess.run([*_bwrap_command(probe), sys.executable, "-c", "pass"], capture_output=True,
                                      text=True, timeout=60, env=_environment(probe))
                if done.returncode != 0:
                    why = f"bwrap cannot start here: {done.stderr.strip()[:300] or done.returncode}"
            except (OSError, subprocess.TimeoutExpired) as exc:
                why = f"bwrap cannot start here: {exc}"
        _PROBE["result"], _PROBE["why"] = ("process", why) if why else ("bwrap", "")
    return _PROBE["result"], _PROBE["why"]


class _Reader:
    """``read(n)`` on a pipe that gives up at a deadline."""

    def __init__(self, fd: int, deadline: float | None):
        self.fd, self.deadline = fd, deadline

    def read(self, size: int) -> bytes:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            ready = left > 0 and select.select([self.fd], [], [], left)[0]
            if not ready:
                raise TimeoutError
        return os.read(self.fd, min(size, 1 << 24))


# --------------------------------------------------------------------------- the backend


class Sandbox:
    """Runs the student's modules of ``workspace`` in a worker process; the backend of ``under_test``."""

    def __init__(self, workspace: Path | str, isolation: str = "auto", memory_mb: int = DEFAULT_MEMORY_MB,
                 cpu_seconds: int = DEFAULT_CPU_SECONDS, import_seconds: float = DEFAULT_IMPORT_SECONDS):
        self.workspace = Path(os.path.realpath(workspace))
        if isolation == "auto":
            isolation, self.why = isolation_available()
        else:
            self.why = ""
        if isolation not in ("bwrap", "process"):
            raise ValueError(f"isolation must be 'auto', 'bwrap' or 'process', not {isolation!r}")
        self.isolation = isolation
        self.memory_mb, self.cpu_seconds, self.import_seconds = memory_mb, cpu_seconds, import_seconds
        self.deadline: float | None = None  # set per test by the grading plugin
        self.generation = 0
        self.proc: subprocess.Popen | None = None
        self.releases: list[int] = []
        self.callbacks: dict[int, object] = {}
        self.modules: dict[str, RemoteModule] = {}
        self.starts = 0
        self.random = _RandomState()

    # ------------------------------------------------------------------ process

    def _start(self) -> None:
        command = [sys.executable, "-B", "-m", "course.worker"]
        if self.isolation == "bwrap":
            command = [*_bwrap_command(self.workspace), *command]
        self.proc = subprocess.Popen(command, cwd=self.workspace, env=_environment(self.workspace),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=_limits(self.memory_mb, self.cpu_seconds))
        self.starts += 1
        self.releases.clear()
        try:  # start-up (Python, torch) is not the student's time: it has its own budget
            hello = wire.read_message(_Reader(self.proc.stdout.fileno(), time.monotonic() + START_SECONDS))
        except (TimeoutError, EOFError, OSError, wire.WireError) as exc:
            code = self.proc.poll()
            self.stop()
            raise WorkerLost(f"the worker did not start ({type(exc).__name__}, exit code {code}); "
                             f"isolation: {self.isolation} {self.why}".strip()) from None
        if hello != {"ready": True}:
            self.stop()
            raise WorkerLost("the worker did not start: unexpected greeting")
        self.random.last = None  # a new worker: send the whole state with the next call

    def stop(self) -> None:
        """Kill the worker (and, under bwrap, everything it started); the next request starts a new one."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        self.generation += 1
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        proc.wait()


    # ------------------------------------------------------------------ requests

    def request(self, message: dict, timeout: float | None = None):
        """Send one request; serve the worker's callbacks until its answer; return the decoded value."""
        if self.proc is None:
            self._start()
        if self.releases:
            message["release"], self.releases = self.releases, []
        deadline = self._deadline(timeout)
        generation = self.generation
        try:
            wire.write_message(self.proc.stdin, message, self._refer)
            while True:
                reply = wire.read_message(_Reader(self.proc.stdout.fileno(), deadline),
                                          lambda ref: self._resolve(ref, generation))
                if not isinstance(reply, dict):
                    raise wire.WireError("the worker's answer is not a dict")
                if "callback" in reply:
                    self._serve_callback(reply)
                    continue
                break
        except TimeoutError:
            seconds = "" if deadline is None else f" (deadline {max(0.0, deadline - time.monotonic()):.0f} s left)"
            self.stop()
            raise TimeoutError(f"the student's code ran out of time{seconds}: an endless loop?") from None
        except (EOFError, BrokenPipeError, OSError) as exc:
            code = None
            if self.proc is not None:  # the channel closes a moment before the exit status is there
                try:
                    code = self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    code = None
            self.stop()
            raise WorkerLost(_lost_reason(code, exc)) from None
        except wire.WireError as exc:
            self.stop()
            raise WorkerLost(f"the worker sent something that is not plain data: {exc}") from None
        except BaseException:
            self.stop()  # an interrupt mid-message: the channel is out of step
            raise
        if "state" in reply:
            self.random.incoming(reply["state"])
        if isinstance(reply.get("printed"), str):
            sys.stdout.write(reply["printed"])  # the student's prints, where the test (capsys) sees them
        if "error" in reply:
            raise _exception(reply["error"])
        return reply.get("ok")

    def _deadline(self, timeout: float | None) -> float | None:
        now = time.monotonic()
        limits = [d for d in (self.deadline, now + timeout if timeout else None) if d is not None]
        if not limits:
            limits = [now + self.import_seconds]
        return min(limits)

    def _serve_callback(self, reply: dict) -> None:
        fn = self.callbacks.get(reply.get("callback"))
        try:
            if fn is None:
                raise LookupError("unknown callback")
            answer = {"return": fn(*reply.get("args", ()), **reply.get("kwargs", {}))}
        except Exception as exc:  # noqa: BLE001 -- the test's own callable failed: tell the worker
            answer = {"raise": f"{type(exc).__name__}: {exc}"}
        wire.write_message(self.proc.stdin, answer, self._refer)

    def _refer(self, obj) -> wire.Ref:
        if isinstance(obj, Remote):
            return obj._ref_for(self)
        if callable(obj) and not isinstance(obj, type):
            key = id(obj)
            self.callbacks[key] = obj
            return wire.Ref(key, "callback", type(obj).__name__)
        raise wire.WireError(
            f"a {type(obj).__module__}.{type(obj).__name__} cannot be sent to the student's code: build it there "
            f"(load('{type(obj).__module__}').{type(obj).__name__}(...)) or send plain data")

    def _resolve(self, ref: wire.Ref, generation: int):
        if ref.kind == "callback":
            return self.callbacks.get(ref.id)
        return Remote(self, ref, generation)

    def release(self, ref_id: int, generation: int) -> None:
        if generation == self.generation and self.proc is not None:
            self.releases.append(ref_id)

    # ------------------------------------------------------------------ under_test backend

    def load(self, name: str) -> RemoteModule:
        if name not in self.modules:
            self.modules[name] = RemoteModule(self, name)
        return self.modules[name]

    def module_ref(self, name: str) -> Remote:
        """Import ``name`` in the worker (its own time budget: importing is not a test's time)."""
        saved, self.deadline = self.deadline, None
        try:
            return self.request({"op": "import", "name": name}, timeout=self.import_seconds)
        finally:
            self.deadline = saved

    def source(self, name: str) -> str:
        """The text of module ``name`` in the workspace (read as text; refused outside it or if not a file)."""
        base = self.workspace.joinpath(*name.split("."))
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_symlink() or not path.exists():
                continue
            real = os.path.realpath(path)
            if os.path.commonpath([real, str(self.workspace)]) == str(self.workspace) and path.is_file():
                return path.read_text(encoding="utf-8", errors="replace")
        from under_test import NotWritten  # noqa: PLC0415 -- the tests' module, on the path while grading

        raise NotWritten(f"not written: module {name}")


def _lost_reason(code: int | None, exc: BaseException) -> str:
    if code is not None and code < 0:
        sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        hint = " (over its memory or CPU limit?)" if sig in ("SIGKILL", "SIGXCPU", "SIGSEGV") else ""
        return f"the worker running the student's code was killed by {sig}{hint}"
    if code is not None:
        return f"the student's code ended the worker process (exit code {code})"
    return f"the worker running the student's code stopped answering ({type(exc).__name__})"


class _RandomState:
    """The random-number state of this process, sent to the worker only when it changed since the last answer.

    Each call to the student's code carries the grader's torch / NumPy / ``random`` state and comes back with the
    worker's, so ``torch.manual_seed(0)`` in a test seeds the student's code as if it ran here.
    """

    def __init__(self):
        self.last = None

    @staticmethod
    def now() -> dict:
        return {"torch": torch.get_rng_state(), "numpy": list(np.random.get_state()), "python": random.getstate()}

    @staticmethod
    def same(a: dict, b: dict) -> bool:
        return (torch.equal(a["torch"], b["torch"]) and a["python"] == b["python"]
                and a["numpy"][2:] == b["numpy"][2:] and np.array_equal(a["numpy"][1], b["numpy"][1]))

    def outgoing(self) -> dict:
        current = self.now()
        flags = {"dtype": torch.get_default_dtype(), "grad": torch.is_grad_enabled()}
        if self.last is not None and self.same(current, self.last):
            return flags
        self.last = current
        return {**current, **flags}

    def incoming(self, state) -> None:
        if not isinstance(state, dict) or "torch" not in state:
            return
        try:
            torch.set_rng_state(state["torch"])
            np.random.set_state(tuple(state["numpy"]))
            version, internal, gauss = state["python"]
            random.setstate((version, tuple(internal), gauss))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise WorkerLost(f"the worker sent a broken random state: {exc}") from None
        self.last = self.now()


def _exception(error: dict) -> BaseException:
    """The grader-side exception for the student's: Python's own class when it is one, with the same arguments."""
    from under_test import NotWritten  # noqa: PLC0415

    message = str(error.get("message", ""))
    missing = error.get("missing")
    if missing:
        return NotWritten(f"not written: {missing}" + ("" if message.startswith("write ") else f" ({message})"))
    name = error.get("builtin", "Exception")
    cls = getattr(builtins, name, None)
    if cls is SystemExit:  # a command line's exit status (argparse): pytest.raises(SystemExit) works
        args = error.get("args") if isinstance(error.get("args"), list) else []
        return SystemExit(*args[:1])
    if not (isinstance(cls, type) and issubclass(cls, Exception)) or cls is Exception:
        kind = (error.get("types") or ["Exception"])[0]
        return StudentCodeError(f"{kind}: {message}")
    args = error.get("args") if isinstance(error.get("args"), list) else [message]
    try:
        exc = cls(*args)
    except Exception:  # noqa: BLE001 -- e.g. UnicodeDecodeError needs five arguments
        exc = cls(message)
    kind = (error.get("types") or [name])[0]
    if kind != name and hasattr(exc, "add_note"):
        exc.add_note(f"(raised as {kind} by the student's code)")
    return exc


# --------------------------------------------------------------------------- stand-ins


# Looked up by Python's own machinery (copying, pickling, typing): answered here, never asked of the worker.
_LOCAL_ONLY = frozenset({"__deepcopy__", "__copy__", "__reduce__", "__reduce_ex__", "__getstate__", "__setstate__",
                         "__getnewargs__", "__getnewargs_ex__", "__length_hint__", "__fspath__", "__index__",
                         "__array__", "__array_interface__", "__array_struct__", "__array_priority__",
                         "__torch_function__", "__iter__", "__next__", "__await__", "__origin__", "__func__",
                         "_fields", "_asdict"})


class Remote:
    """An object that lives in the worker.  Calls, attributes and items go there; results come back as data."""

    __slots__ = ("_box", "_ref", "_gen", "_path", "__weakref__")

    def __init__(self, box: Sandbox, ref: wire.Ref, generation: int, path: tuple[str, str] | None = None):
        object.__setattr__(self, "_box", box)
        object.__setattr__(self, "_ref", ref)
        object.__setattr__(self, "_gen", generation)
        object.__setattr__(self, "_path", path)

    def _ref_for(self, box: Sandbox) -> wire.Ref:
        if box is not self._box:
            raise wire.WireError("an object of another sandbox")
        if self._gen != box.generation:
            if self._path is None:
                raise WorkerLost(f"this {self._ref.type} lived in a worker that was stopped earlier "
                                 "(a timeout or crash of another call); make it again")
            fresh = getattr(box.load(self._path[0]), self._path[1])
            if not isinstance(fresh, Remote):
                raise WorkerLost(f"{self._path[1]} changed kind in the new worker")
            object.__setattr__(self, "_ref", fresh._ref)
            object.__setattr__(self, "_gen", fresh._gen)
            object.__setattr__(fresh, "_gen", -1)  # its release must not drop the shared id
        return self._ref

    def _ask(self, op: str, **fields):
        return self._box.request({"op": op, "obj": self._ref_for(self._box), **fields})

    def _with_state(self, op: str, **fields):
        return self._box.request({"op": op, "obj": self._ref_for(self._box), "state": self._box.random.outgoing(),
                                  **fields})

    def __call__(self, *args, **kwargs):
        return self._with_state("call", args=list(args), kwargs=kwargs)

    def __getattr__(self, name: str):
        if name in _LOCAL_ONLY:
            raise AttributeError(name)
        return self._ask("getattr", name=name)

    def __setattr__(self, name: str, value) -> None:
        self._ask("setattr", name=name, value=value)

    def __getitem__(self, key):
        return self._ask("getitem", key=key)

    def __setitem__(self, key, value) -> None:
        self._ask("setitem", key=key, value=value)

    def __delitem__(self, key) -> None:
        self._ask("delitem", key=key)

    def __len__(self) -> int:
        return int(self._ask("len"))

    def __iter__(self):
        return iter(self._ask("iter"))

    def __contains__(self, item) -> bool:
        return bool(self._ask("contains", item=item))

    def __bool__(self) -> bool:
        return bool(self._ask("bool"))

    def __enter__(self):
        return self._with_state("method", name="__enter__", args=[], kwargs={})

    def __exit__(self, *exc_info):
        return self._with_state("method", name="__exit__", args=[None, None, None], kwargs={})

    def __repr__(self) -> str:
        ref = self._ref
        return f"<student's {ref.type} {ref.text}>".replace("  ", " ")

    def __del__(self):
        try:
            self._box.release(self._ref.id, self._gen)
        except Exception:  # noqa: BLE001 -- interpreter shutdown
            pass


class RemoteModule:
    """A module of the student's, imported by the worker on first use; missing names become ``Missing``."""

    def __init__(self, box: Sandbox, name: str):
        self._box, self._name, self._ref, self._broken = box, name, None, ""
        self._originals: dict = {}

    def _module(self) -> Remote:
        if self._broken:  # an import that failed or never ended is not tried again
            raise ImportError(self._broken)
        if self._ref is None or self._ref._gen != self._box.generation:
            try:
                self._ref = self._box.module_ref(self._name)
            except (TimeoutError, WorkerLost) as exc:
                self._broken = str(exc)
                raise ImportError(self._broken) from None
            except Exception as exc:  # noqa: BLE001 -- the student's import raised: the same every time
                self._broken = f"{type(exc).__name__}: {exc}"
                raise ImportError(self._broken) from None
        return self._ref

    def __getattr__(self, attr: str):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        from under_test import Missing  # noqa: PLC0415

        try:
            module = self._module()
        except ImportError as exc:
            return Missing(self._name, attr, f"{self._name} does not import: {exc}")
        try:
            value = self._box.request({"op": "getattr", "obj": module._ref_for(self._box), "name": attr})
        except AttributeError:
            return Missing(self._name, attr)
        if isinstance(value, Remote):
            object.__setattr__(value, "_path", (self._name, attr))
        return value

    def __setattr__(self, attr: str, value) -> None:
        if attr.startswith("_"):
            object.__setattr__(self, attr, value)
        else:  # monkeypatch.setattr(module, ...): the worker's module gets it (a callable runs here on call)
            self._originals.setdefault(attr, getattr(self, attr))
            self._box.request({"op": "setattr", "obj": self._module()._ref_for(self._box), "name": attr,
                               "value": value})

    def __delattr__(self, attr: str) -> None:
        """Undo a patch: the worker's module gets its own value back (monkeypatch undoes with ``delattr``)."""
        original = self._originals.pop(attr, None)
        if original is not None and not type(original).__name__ == "Missing":
            self.__setattr__(attr, original)
            self._originals.pop(attr, None)

    def __repr__(self) -> str:
        return f"<student's module {self._name} ({self._box.isolation} sandbox)>"
