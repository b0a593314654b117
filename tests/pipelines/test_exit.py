"""How `vaepipe` exits (`cli.main.exit_fast`): without freeing torch's objects one by one, but with the status,
the atexit handlers, every line written to a pipe, and threads still at work waited for (no Ray)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def python(script: str) -> subprocess.CompletedProcess:
    """`script` in a fresh Python, its output read through a pipe (as a job log or `| tail` reads it)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_the_status_atexit_handlers_and_buffered_output_survive_the_fast_exit(tmp_path):
    marker = tmp_path / "atexit-ran"
    done = python(f"""
        import atexit, sys, tempfile, weakref
        from pathlib import Path
        from pipelines.cli.main import exit_fast

        atexit.register(lambda: Path({str(marker)!r}).write_text("yes"))
        folder = tempfile.TemporaryDirectory()  # cleaned up by its finalizer, an atexit handler too
        Path({str(tmp_path / "folder")!r}).write_text(folder.name)
        print("a line still in stdout's buffer", end="")
        print("and one in stderr's", file=sys.stderr, end="")
        exit_fast(3)
        print("never printed")
    """)
    assert done.returncode == 3, done.stderr
    assert done.stdout == "a line still in stdout's buffer"
    assert done.stderr == "and one in stderr's"
    assert marker.read_text() == "yes"
    assert not Path((tmp_path / "folder").read_text()).exists()


def test_a_thread_still_at_work_is_waited_for():
    done = python("""
        import threading, time
        from pipelines.cli.main import exit_fast

        def upload():
            time.sleep(0.3)
            print("the upload finished", flush=True)

        threading.Thread(target=upload).start()
        exit_fast(0)
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "the upload finished\n"


def test_the_executable_exits_with_the_commands_status(tmp_path):
    """`python -m pipelines.cli` and the `vaepipe` script both end in `run`: a refused command exits 2."""
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "train", str(tmp_path / "missing.yaml")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    (error,) = done.stderr.splitlines()
    assert error.startswith(f"error: config file {tmp_path / 'missing.yaml'} does not exist")


def test_under_a_profiler_the_program_returns_so_the_profile_is_written(tmp_path):
    profile = tmp_path / "score.prof"
    done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "pipelines.cli", "train",
                           str(tmp_path / "missing.yaml")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "error: config file" in done.stderr  # (cProfile's own exit status is 0 whatever the program's)
    assert profile.stat().st_size > 0
