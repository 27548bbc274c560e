"""The jaxtyping hook of conftest.py is really on: a wrong shape fails at the call, not later."""
import pytest
import torch
from jaxtyping import TypeCheckError

from topk_sae.kernels import scatter_outer
from topk_sae.model import geometric_median

def test_shape_annotations_are_enforced():
    with pytest.raises(TypeCheckError):
        # k differs between idx and g
        scatter_outer(torch.zeros(5, 3, dtype=torch.long), torch.randn(5, 4), torch.randn(5, 16), 10)
    with pytest.raises(TypeCheckError):
        geometric_median(torch.randn(16))  # one point given as a vector, not a (tok, d_model) batch
