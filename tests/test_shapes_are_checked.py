"""The jaxtyping hook of conftest.py is really on: a wrong shape fails at the call, not later."""
import pytest
import torch
from jaxtyping import TypeCheckError

from topk_sae.model import geometric_median
from topk_sae.train import auxk_loss


def test_shape_annotations_are_enforced():
    with pytest.raises(TypeCheckError):
        auxk_loss(torch.randn(5, 64), torch.ones(63, dtype=torch.bool), torch.randn(5, 16), torch.randn(64, 16), 4)
    with pytest.raises(TypeCheckError):
        geometric_median(torch.randn(16))  # one point given as a vector, not a (tok, d_model) batch
