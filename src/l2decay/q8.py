"""8-bit optimizer state (``state_dtype="8bit"``): codes and scales, made, read and written.

A state value is an 8-bit float code times its block's scale.  A block is :data:`BLOCK`
consecutive elements of the tensor (in memory order; the last may be shorter), and its scale is
the block's largest magnitude over the largest code, 1.875 (float32 division), so that the
largest value codes exactly and the block's values decay with it; a block whose largest
magnitude is below float32's normal range has scale 1 and codes 0.  A code has 3 mantissa bits
under an exponent, no subnormals, and code 0 is zero:

- signed state (Adam's ``exp_avg``, SGD's momentum): bit 7 the sign, bits 0-6 a magnitude
  ``8*E + M`` (E: 4 bits), ``(1 + M/8) * 2**(E - 15)``: 2**-15 * 1.125 to 1.875;
- ``exp_avg_sq`` (never negative): ``8*E + M`` (E: 5 bits), ``(1 + M/8) * 2**(E - 31)``:
  2**-31 * 1.125 to 1.875.

A value rounds to the nearest code (ties away from zero), below the smallest to zero, except
that a positive ``exp_avg_sq`` is never coded 0 (its square root divides the step).  The
compiled steps decode, update and code the state in one pass; this module does the same
arithmetic in numpy, to make state, convert it from and to float32, and check it.
"""
import numpy as np

from . import _kernels

__all__ = ["BLOCK", "blocks", "zeros", "encode", "decode", "check", "to_8bit", "to_float"]

BLOCK = _kernels.Q8_BLOCK_SIZE
_OFFSET = {True: (896, 127), False: (768, 255)}     # signed: (exponent offset in codes, top code)


def blocks(size):
    """The number of scales of a tensor of `size` elements."""
    return -(-int(size) // BLOCK)


def zeros(shape):
    """Codes (uint8, `shape`) and scales (float32) of all-zero state: what new state is born as."""
    size = int(np.prod(shape, dtype=np.int64))
    return np.zeros(shape, np.uint8), np.ones(blocks(size), np.float32)


def _scales(absmax_bits):
    absmax = absmax_bits.astype(np.uint32).view(np.float32)
    with np.errstate(invalid="ignore"):
        scales = absmax / np.float32(1.875)
    scales[absmax_bits < 0x00800000] = 1
    scales[absmax_bits >= 0x7F800000] = np.nan
    return scales.astype(np.float32)


def encode(x, signed):
    """(codes, scales) of float32-representable values `x` (any shape; codes take it)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    flat = x.reshape(-1)
    n = flat.size
    pad = np.zeros(blocks(n) * BLOCK, np.float32)
    pad[:n] = flat
    u = pad.view(np.uint32).reshape(-1, BLOCK)
    absmax = (u & 0x7FFFFFFF).max(axis=1) if n else np.zeros(0, np.uint32)
    scales = _scales(absmax)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        inv = np.where(absmax >= 0x00800000, (1.0 / scales.astype(np.float64)), 0).astype(np.float32)
        y = (pad.reshape(-1, BLOCK) * inv[:, None]).reshape(-1)[:n]
    off, top = _OFFSET[signed]
    bits = y.view(np.uint32)
    mag = bits & 0x7FFFFFFF
    r = ((mag + np.uint32(0x80000)) >> 20).astype(np.int64) - off
    codes = np.minimum(np.maximum(r, 0), top).astype(np.uint32)
    if signed:
        codes |= (bits >> 24) & 128
    else:
        codes[(codes == 0) & (mag != 0)] = 1
    return codes.astype(np.uint8).reshape(x.shape), scales


def decode(codes, scales, signed):
    """float32 values of uint8 `codes` with their blocks' `scales` (the shape of `codes`)."""
    codes = np.asarray(codes)
    c = codes.reshape(-1).astype(np.uint32)
    off, _ = _OFFSET[signed]
    mag = c & 127 if signed else c
    bits = np.where(mag != 0, (mag + off) << 20, 0).astype(np.uint32)
    if signed:
        bits |= (c & 128) << 24
    scale = np.repeat(np.asarray(scales, np.float32), BLOCK)[:c.size]
    return (bits.view(np.float32) * scale).reshape(codes.shape)


def check(name, codes, scales, shape):
    """Raise ValueError/TypeError naming `name` unless `codes` (uint8 of `shape`) and `scales`
    (float32, one per block, each finite and positive) are 8-bit state."""
    codes, scales = np.asarray(codes), np.asarray(scales)
    if codes.dtype != np.uint8 or codes.shape != tuple(shape):
        raise TypeError(f"{name}: the codes of 8-bit state must be uint8 of shape {tuple(shape)}, got "
                        f"{codes.dtype} of shape {codes.shape}")
    need = blocks(int(np.prod(shape, dtype=np.int64)))
    if scales.dtype != np.float32 or scales.shape != (need,):
        raise TypeError(f"{name}: the scales of 8-bit state must be float32 of shape ({need},) (one per {BLOCK} "
                        f"elements), got {scales.dtype} of shape {scales.shape}")
    bad = ~np.isfinite(scales) | (scales <= 0)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: scale {k} is {float(scales[k])!r}; each scale must be finite and positive")


# the state entries 8-bit state replaces, and whether they are signed
STATES = {"exp_avg": True, "exp_avg_sq": False, "momentum_buffer": True, "velocity": True}


def _memory_order(t):
    """torch tensor t's dims, outermost first in memory (a dense tensor in any layout)."""
    return sorted(range(t.dim()), key=lambda d: -t.stride(d))


def _encode_any(x, signed):
    if isinstance(x, np.ndarray):
        return encode(x, signed)
    import torch
    order = _memory_order(x)
    flat = x.detach().permute(order).to(device="cpu", dtype=torch.float32).contiguous().numpy()
    codes, scales = encode(flat, signed)
    out = torch.empty_like(x, dtype=torch.uint8, device="cpu", memory_format=torch.preserve_format)
    out.permute(order).copy_(torch.from_numpy(codes))
    return out, torch.from_numpy(scales)


def _decode_any(codes, scales, signed, dtype):
    if isinstance(codes, np.ndarray):
        return decode(codes, scales, signed).astype(dtype or np.float32)
    import torch
    order = _memory_order(codes)
    flat = decode(codes.permute(order).contiguous().numpy(), scales.detach().cpu().numpy(), signed)
    out = torch.empty_like(codes, dtype=dtype or torch.float32, memory_format=torch.preserve_format)
    out.permute(order).copy_(torch.from_numpy(flat))
    return out


def to_8bit(state):
    """One param's optimizer state (a dict of numpy arrays or torch tensors, an optimizer's
    ``state[k]`` or ``state[p]``) with its float moments or momentum coded in place: each
    becomes uint8 codes, beside its ``<key>_scale``.  Returns `state`.  A float32 checkpoint
    continues as 8-bit state this way (the optimizer's group then says ``state_dtype="8bit"``
    for state born later)."""
    for key, signed in STATES.items():
        x = state.get(key)
        if x is not None and key + "_scale" not in state:
            state[key], state[key + "_scale"] = _encode_any(x, signed)
    return state


def to_float(state, dtype=None):
    """The inverse of :func:`to_8bit`: each 8-bit entry of `state` decoded in place into
    `dtype` (default float32), its ``_scale`` removed.  Returns `state`.  Exact: the decoded
    values are the ones the next 8-bit step would read."""
    for key, signed in STATES.items():
        if key + "_scale" in state and state.get(key) is not None:
            state[key] = _decode_any(state[key], state.pop(key + "_scale"), signed, dtype)
    return state
