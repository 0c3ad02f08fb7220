"""Input validation shared by the reference ops.

Every check raises ValueError naming the argument and the rule it broke:
the oracle must refuse bad input rather than clamp it or guess.
"""

import math
import numbers
import operator

import torch

# The dtypes the attention oracle can compute in.
COMPUTE_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


def int_list(name, value):
    """A sequence of ints or a 1-D integer tensor, as a list of Python ints."""
    if isinstance(value, torch.Tensor):
        if value.dim() != 1:
            raise ValueError(f"{name} must be 1-D, got shape {tuple(value.shape)}")
        if value.dtype == torch.bool or value.is_floating_point() or value.is_complex():
            raise ValueError(f"{name} must have an integer dtype, got {value.dtype}")
        return [int(x) for x in value.tolist()]
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a sequence of ints or a 1-D integer tensor, "
                         f"got {type(value).__name__}")
    out = []
    for i, x in enumerate(value):
        # bool is an int subclass but almost certainly a caller mistake here.
        if isinstance(x, bool):
            raise ValueError(f"{name}[{i}] must be an int, got bool")
        try:
            out.append(operator.index(x))
        except TypeError:
            raise ValueError(f"{name}[{i}] must be an int, got {type(x).__name__}") from None
    return out


def non_negative(name, values):
    for i, x in enumerate(values):
        if x < 0:
            raise ValueError(f"{name}[{i}] must be >= 0, got {x}")


def integer_tensor(name, t, ndim=None):
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise ValueError(f"{name} must have an integer dtype, got {t.dtype}")
    if ndim is not None and t.dim() not in ndim:
        raise ValueError(f"{name} must be {' or '.join(f'{n}-D' for n in ndim)}, "
                         f"got shape {tuple(t.shape)}")


def float_tensor(name, t, ndim):
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must have a floating-point dtype, got {t.dtype}")
    if t.dim() not in ndim:
        raise ValueError(f"{name} must be {' or '.join(f'{n}-D' for n in ndim)}, "
                         f"got shape {tuple(t.shape)}")


def scale_value(scale):
    """scale as a Python float; it must be a positive finite real number."""
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise ValueError(f"scale must be a positive finite float, got {type(scale).__name__}")
    scale = float(scale)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite float, got {scale}")
    return scale


def compute_dtype_value(dtype):
    if dtype not in COMPUTE_DTYPES:
        names = ", ".join(str(d) for d in COMPUTE_DTYPES)
        raise ValueError(f"compute_dtype must be one of {names}, got {dtype}")
    return dtype


def kv_heads(name, cache, head_dim):
    """Number of KV heads of a 3-D [N, bs, Hkv*D] or 4-D [N, bs, Hkv, D] cache.

    A 3-D cache packs heads into the last dim, so Hkv comes from head_dim.
    """
    if cache.dim() == 4:
        if cache.shape[3] != head_dim:
            raise ValueError(f"{name} head_dim (last dim) must equal q head_dim {head_dim}, "
                             f"got shape {tuple(cache.shape)}")
        return cache.shape[2]
    width = cache.shape[2]
    if width == 0 or width % head_dim != 0:
        raise ValueError(f"{name} last dim must be a positive multiple of q head_dim "
                         f"{head_dim} (Hkv*D), got shape {tuple(cache.shape)}")
    return width // head_dim


def head_counts(q_heads, num_kv_heads, kv_name):
    if num_kv_heads < 1:
        raise ValueError(f"{kv_name} must have at least one KV head, got {num_kv_heads}")
    if q_heads % num_kv_heads != 0:
        raise ValueError(f"q heads ({q_heads}) must be divisible by {kv_name} KV heads "
                         f"({num_kv_heads}) (Hq % Hkv == 0)")
