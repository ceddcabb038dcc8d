"""Helpers the benchmark scripts share: building the release binary, running processes, reading
their CPU time and memory from /proc."""

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def build_tern():
    if os.environ.get("TERN_BIN"):
        return os.environ["TERN_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/tern-target"))
    sh(["cargo", "build", "--locked", "--release", "-p", "tern"], cwd=ROOT,
       env=dict(os.environ, CARGO_TARGET_DIR=target))
    return os.path.join(target, "release", "tern")


class Proc:
    def __init__(self, args, log, ready_prefix=None):
        self.log = open(log, "w")
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE if ready_prefix else self.log, stderr=self.log,
                                  text=True, env=dict(os.environ, RUST_LOG="warn"))
        if ready_prefix:
            deadline = time.time() + 60
            for line in self.p.stdout:
                if line.startswith(ready_prefix) or time.time() > deadline:
                    break
            threading.Thread(target=lambda: [None for _ in self.p.stdout], daemon=True).start()

    def pids(self):
        kids = subprocess.run(["pgrep", "-P", str(self.p.pid)], capture_output=True, text=True).stdout.split()
        return [self.p.pid, *map(int, kids)]

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / TICK


def rss_bytes(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"{url} did not answer 200")
