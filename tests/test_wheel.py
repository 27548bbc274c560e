"""The package as users install it: a wheel built from this checkout, installed into a fresh environment outside it,
runs the README's one-cell example (the tiny demo) from a folder with no clone beside it, offline.

The fresh environment gets its dependencies (torch, transformer-lens, ...) by a path line to this interpreter's
site-packages, as `--system-site-packages` would, so nothing is downloaded; that line does not load the editable
install of the checkout, so `import topk_sae` can only find the wheel.
"""
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "disabled", "PIP_NO_INDEX": "1",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _env() -> dict:
    "This process's environment, offline, without a PYTHONPATH that would point back at the checkout."
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | OFFLINE


def readme_demo_snippet() -> str:
    "The README's python block that runs the tiny demo."
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.DOTALL)
    return next(b for b in blocks if "DemoConfig.tiny" in b)


def build_wheel(tmp: Path) -> Path:
    "A wheel built from a copy of the checkout's files (tracked and not ignored), so the checkout stays clean."
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    src = tmp / "src"
    for name in filter(None, listing.split("\0")):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp / "dist"), str(src)], check=True, env=_env())
    return next((tmp / "dist").glob("topk_sae-*.whl"))


def fresh_env(tmp: Path, wheel: Path) -> Path:
    "A new venv with the wheel installed and this interpreter's packages on its path; returns its python."
    venv.create(tmp / "env", with_pip=False)
    python = tmp / "env" / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "_deps_from_the_test_runner.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True, env=_env())
    return python


def test_the_wheel_carries_the_corpus_slice_the_tiny_demo_reads(tmp_path):
    names = zipfile.ZipFile(build_wheel(tmp_path)).namelist()
    assert "topk_sae/sotu_slice.jsonl" in names and "topk_sae/steer.py" in names
    assert not [n for n in names if n.startswith(("tests/", "nbs/", "data/"))]


@pytest.mark.slow
def test_an_installed_wheel_runs_the_readme_example(tmp_path):
    python = fresh_env(tmp_path, build_wheel(tmp_path))
    run = tmp_path / "elsewhere"
    run.mkdir()
    snippet = readme_demo_snippet().replace("/tmp/topk_sae_index_run", str(run / "out"))
    where = "import topk_sae, topk_sae.demo as d; print('FROM', topk_sae.__file__); print('SLICE', d.demo_slice())\n"
    out = subprocess.run([python, "-c", where + snippet.rstrip() + "\nprint('HELDOUT', result.metrics['heldout'])"],
                         cwd=run, capture_output=True, text=True, env=_env(), timeout=900, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if line.startswith(("FROM", "SLICE", "HELD")))
    assert lines["FROM"].startswith(str(tmp_path / "env")) and lines["SLICE"].startswith(str(tmp_path / "env"))
    assert "'fvu'" in lines["HELDOUT"] and (run / "out" / "report.html").exists()
