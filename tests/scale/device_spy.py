"""A stand-in GPU for machines without one: tensors "on the device" are CPU tensors marked as such, and every
torch call that mixes marked and unmarked tensors fails the way CUDA would.

The device a run asks for is `torch.device("xpu")` (no task picks it, and unlike "meta", which loading a model
uses to build its network without memory, nothing in shopfloor or torch creates tensors there on a machine without
one), which `resolve_device` is made to accept. Inside `DeviceSpy` every torch call passes through `__torch_function__`:
- a call that asks for that device (`t.to(device)`, `torch.arange(n, device=x.device)`, `module.to(device)`)
  runs on the CPU instead, and its result is marked (a copy, where the CPU would hand back the same tensor);
- the result of a call on marked tensors is marked; `.cpu()` and `.to("cpu")` give an unmarked copy;
- `x.device` answers xpu for a marked tensor, so code that creates tensors "where x is" is followed too;
- a call whose tensors are partly marked and partly not raises `DeviceMismatch`, as CUDA raises "Expected all
  tensors to be on the same device", with the same exceptions CUDA makes: a 0-dimensional CPU tensor meets device
  tensors (a scalar), and a CPU index may pick from a device tensor (not the other way round); `.numpy()` of a
  marked tensor fails, as it does on a GPU.

Marks belong to storages (a weak reference each), so views, `param.data = ...` and parameters share them. The
numbers are the CPU's: what a run computes under the spy equals what it computes on the CPU, bit for bit.
"""

from __future__ import annotations

import contextlib

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

FAKE_GPU = torch.device("xpu")
CPU = torch.device("cpu")


class DeviceMismatch(AssertionError):
    pass


def _is_fake(value) -> bool:
    return (isinstance(value, torch.device) and value.type == FAKE_GPU.type) or (isinstance(value, str) and value == "xpu")


def _is_cpu(value) -> bool:
    return (isinstance(value, torch.device) and value.type == "cpu") or (isinstance(value, str) and value == "cpu")


# how a module moves: `param.data = moved` changes a parameter's device, as on a GPU
PASS_THROUGH = {torch._C._nn._parse_to, torch.device, torch._has_compatible_shallow_copy_type, torch.Tensor.data.__set__}
DEVICE_GET = torch.Tensor.device.__get__
INDEXING = {torch.Tensor.__getitem__, torch.Tensor.__setitem__}
TO_NUMPY = {torch.Tensor.numpy, torch.Tensor.__array__}
COPIES = {torch.Tensor.copy_}  # a copy between devices is what copy_ is for


class DeviceSpy(TorchFunctionMode):
    """Record what ran on the stand-in GPU; raise on the first call that mixes it with the CPU."""

    def __init__(self):
        super().__init__()
        self.marks: dict[int, StorageWeakRef] = {}
        self.device_calls = 0  # calls that ran on marked tensors (the work the device did)

    # -- marks ------------------------------------------------------------------------------------
    def marked(self, tensor: torch.Tensor) -> bool:
        ref = self.marks.get(StorageWeakRef(tensor.untyped_storage()).cdata)
        return ref is not None and not ref.expired()

    def mark(self, value) -> None:
        if isinstance(value, torch.Tensor):
            ref = StorageWeakRef(value.untyped_storage())
            self.marks[ref.cdata] = ref
            if len(self.marks) > 50_000:
                self.marks = {k: r for k, r in self.marks.items() if not r.expired()}

    # -- every torch call -------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in PASS_THROUGH:
            return func(*args, **kwargs)
        if func == DEVICE_GET:
            return FAKE_GPU if self.marked(args[0]) else CPU
        leaves, spec = tree_flatten((args, kwargs))
        tensors = [t for t in leaves if isinstance(t, torch.Tensor)]
        on_device = [t for t in tensors if self.marked(t)]
        if any(_is_fake(v) for v in leaves):  # asked for the device: run on the CPU, mark what comes out
            if any(isinstance(v, torch.Generator) and v.device.type == "cpu" for v in leaves):
                raise DeviceMismatch(f"{_name(func)}: a CPU random generator cannot draw numbers on the device")
            args, kwargs = tree_unflatten([CPU if _is_fake(v) else v for v in leaves], spec)
            return tree_map(lambda t: self._moved(t, tensors), func(*args, **kwargs))
        if func is torch.Tensor.cpu or any(_is_cpu(v) for v in leaves):  # asked for the CPU: an unmarked copy
            out = func(*args, **kwargs)
            return tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) and self.marked(t) else t, out)
        if not on_device:
            return func(*args, **kwargs)  # all on the CPU
        if func in TO_NUMPY:
            raise DeviceMismatch(f"{_name(func)}: a tensor on the device cannot become a numpy array (.cpu() first)")
        self._check(func, args, tensors)
        self.device_calls += 1
        out = func(*args, **kwargs)
        method = _name(func).rsplit(".", 1)[-1]
        in_place = func is torch.Tensor.__setitem__ or (method.endswith("_") and not method.startswith("__"))
        if not in_place:
            tree_map(self.mark, out)
        return out

    def _moved(self, value, inputs):
        if not isinstance(value, torch.Tensor):
            return value
        if any(not self.marked(t) and t.untyped_storage().data_ptr() == value.untyped_storage().data_ptr()
               and t.untyped_storage().nbytes() for t in inputs):
            value = value.clone()  # the CPU handed back the input itself; a GPU would copy it
        self.mark(value)
        return value

    def _check(self, func, args, tensors) -> None:
        """CUDA's rules: every tensor of a call on one device, but for CPU scalars (0-dimensional), CPU indices into
        a device tensor and copies."""
        if func in COPIES:
            return
        if func in INDEXING:
            if not self.marked(args[0]):
                raise DeviceMismatch(f"{_name(func)}: a CPU tensor {tuple(args[0].shape)} indexed with a tensor on "
                                     "the device (indices should be either on cpu or on the same device)")
            return
        cpu = [t for t in tensors if not self.marked(t) and t.dim() > 0]
        if cpu:
            raise DeviceMismatch(f"{_name(func)}: CPU tensor(s) {[tuple(t.shape) for t in cpu]} meet tensors on the "
                                 "device (Expected all tensors to be on the same device)")


def _name(func) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or str(func)


@contextlib.contextmanager
def stand_in_gpu(monkeypatch):
    """Inside: `use_device("xpu")` (and `--device xpu`) picks the stand-in GPU, watched by the spy it yields."""
    from shopfloor import devices

    real = devices.resolve_device
    monkeypatch.setattr(devices, "resolve_device", lambda spec: FAKE_GPU if _is_fake(spec) else real(spec))
    # images one a batch, as on the CPU: a convolution's sums may round differently in a batch of 64
    monkeypatch.setattr("shopfloor.vision.estimator.DEVICE_BATCH", 1)
    spy = DeviceSpy()
    with spy:
        yield spy
