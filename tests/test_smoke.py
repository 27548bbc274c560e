"""The installed package, in a clean process, through the whole main path (tiny model, committed slice).

A clean process catches exported code that leans on a helper defined only in a notebook, which
nbdev_test cannot see. nbdev, fastcore and execnb are blocked, because the library must run without them.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

BLOCK_DEV_TOOLS = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("nbdev", "fastcore", "execnb"):
            raise ImportError(f"{name} is a dev tool, not a runtime dependency")
sys.meta_path.insert(0, _Block())
"""


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-c", BLOCK_DEV_TOOLS + textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def test_main_path_in_a_clean_process(tmp_path):
    out = _run(f"""
        import torch, topk_sae
        from topk_sae.cli import DemoConfig, run_demo
        from topk_sae.model import TopKSAE
        from topk_sae.metrics import fvu
        r = run_demo(DemoConfig.tiny(out={str(tmp_path / 'run')!r}))
        back = TopKSAE.load({str(tmp_path / 'run')!r})
        assert torch.equal(back.W_dec, r.sae.W_dec)
        print(topk_sae.__version__, r.metrics["heldout"]["fvu"])
    """, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 < metrics["heldout"]["fvu"] < 1
    assert metrics["heldout"]["l0"] <= 8


def test_every_module_imports_without_dev_tools(tmp_path):
    "Every module imports with nbdev and fastcore blocked; `showdoc`'s renderer then says what to install."
    out = _run("""
        import importlib, pkgutil, topk_sae
        from topk_sae.model import TopKOut
        names = [m.name for m in pkgutil.iter_modules(topk_sae.__path__)]
        for n in names: importlib.import_module(f"topk_sae.{n}")
        try: importlib.import_module("topk_sae.showdoc").DocRenderer(TopKOut)
        except ImportError as e: print(e)
        print(len(names))
    """, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "pip install 'nbdev" in out.stdout
    assert int(out.stdout.split()[-1]) >= 20


def test_console_script(tmp_path):
    from topk_sae.data import SOTU_SLICE
    exe = Path(sys.executable).parent / "topk-sae"
    args = [str(exe), "demo", "--model", "tiny", "--corpus", str(SOTU_SLICE), "--tokens", "4096",
            "--heldout-tokens", "1024", "--n-latents", "128", "--k", "4", "--batch-tokens", "512",
            "--out", str(tmp_path / "run"), "--quiet", "--no-cache"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "held-out FVU (EMA weights)" in out.stdout
    written = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert written == ["cfg.json", "history.csv", "metrics.json", "report.html", "sae.safetensors"]


def test_console_script_bad_input_exits_2(tmp_path):
    exe = Path(sys.executable).parent / "topk-sae"
    args = [str(exe), "demo", "--model", "tiny", "--k", "0", "--out", str(tmp_path)]
    out = subprocess.run(args, capture_output=True, text=True, check=False)
    assert out.returncode == 2 and "k must be positive" in out.stderr
