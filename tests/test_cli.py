"""The `topk-sae` command with bad input: `error: ...` on stderr and exit status 2, before the expensive work (no model
is loaded for a bad setting, no harvest for a bad site), never a traceback."""
import json
import warnings

import pytest

from topk_sae.cli import main
from topk_sae.data import SOTU_SLICE

TINY = ["demo", "--model", "tiny", "--corpus", str(SOTU_SLICE), "--tokens", "4096", "--heldout-tokens", "1024",
        "--quiet", "--no-eval", "--cards", "0", "--no-cache"]


@pytest.mark.parametrize("extra,message", [
    (["--device", "banana"], "is not a device"),
    (["--lr", "-1"], "lr=-1.0 must be positive"),
    (["--k", "1000", "--n-latents", "64"], "k=1000 is larger than n_latents=64"),
    (["--hook", "blocks.0.attn.hook_pattern"], "an SAE reads (batch, pos, width) activations"),
])
def test_bad_settings_fail_fast_with_a_message(extra, message, tmp_path, capsys):
    assert main([*TINY, "--out", str(tmp_path / "run"), *extra]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_an_output_that_is_a_file_is_refused_first(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    assert main([*TINY, "--out", str(tmp_path / "taken")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_an_mlp_hook_sizes_the_sae_from_its_width(tmp_path, isolated_cache):
    "blocks.0.mlp.hook_post is d_mlp wide, not d_model: the demo reads the width off the hook; its cache is reused."
    args = [*TINY[:-1], "--hook", "blocks.0.mlp.hook_post", "--n-latents", "512", "--out", str(tmp_path / "run")]
    assert main(args) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second run reads the d_mlp-wide cache it wrote, without "harvesting again"
        assert main([*args[:-1], str(tmp_path / "run2")]) == 0
    cfg = json.loads((tmp_path / "run" / "cfg.json").read_text())
    assert cfg["hook"] == "blocks.0.mlp.hook_post" and cfg["d_model"] == 256  # the tiny model's d_mlp (4 x 64)
