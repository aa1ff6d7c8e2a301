"""The learnable parameter transformation T of an FFN group (method.md step 6).

For a group of k adjacent layers, T: R -> R^k is ``Linear(1 -> k), ReLU, Linear(k -> k)`` (with biases), applied to
every scalar of the group's FFN centroid (fc1/fc2 weights and biases); output j initialises the group's j-th layer.

Two ways to use it:

* applied once (default, what the authors' code did): :func:`apply_once` writes T(centroid)[..., j] into each
  layer's FFN and T is discarded;
* kept and trained (``train_transform``): :func:`attach_trained_transforms` registers a parametrisation on each
  grouped FFN tensor, ``weight = residual + T(centroid)[..., j]``, with the residual starting at zero. T then
  receives gradients from every layer of its group while each layer keeps its full capacity through its
  residual, so the trainable parameters are the model's plus T's. :func:`plain_state_dict` reads such a model as plain
  timm weights (T folded in, as the weights currently are), which is what gets saved.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

FFN_TENSORS = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")
TRANSFORMS_ATTR = "ffn_transforms"  # where a model keeps its trained transformations


class FfnTransform(nn.Module):
    """T: R -> R^k, applied element-wise.

    Args:
        k: outputs (layers in the group).
        init: ``default`` keeps PyTorch's Linear init; ``identity`` makes every output equal its input exactly
            (hidden units 0 and 1 carry relu(x) and relu(-x), every output reads their difference; the other
            hidden units keep random input weights and zero output weights, so they can still learn).
    """

    def __init__(self, k: int, init: str = "default"):
        super().__init__()
        self.k = k
        self.net = nn.Sequential(nn.Linear(1, k), nn.ReLU(), nn.Linear(k, k))
        if init == "identity":
            self._init_identity()

    @torch.no_grad()
    def _init_identity(self) -> None:
        first, last = self.net[0], self.net[2]
        first.weight[0, 0], first.weight[1, 0] = 1.0, -1.0
        first.bias[:2] = 0.0
        last.weight.zero_()
        last.weight[:, 0], last.weight[:, 1] = 1.0, -1.0
        last.bias.zero_()

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """Any shape (...) -> (..., k)."""
        return self.net(values.unsqueeze(-1))


def apply_once(transform: FfnTransform, centroid: dict[str, torch.Tensor], mlps: list[nn.Module]) -> None:
    """Write T(centroid)[..., j] into the FFN of ``mlps[j]`` (timm ``Mlp`` modules), without keeping T."""
    with torch.no_grad():
        for key in FFN_TENSORS:
            produced = transform(centroid[key].float())  # (*shape, k)
            for j, mlp in enumerate(mlps):
                _tensor(mlp, key).copy_(produced[..., j])


def _tensor(mlp: nn.Module, key: str) -> torch.Tensor:
    layer, name = key.split(".")
    return getattr(getattr(mlp, layer), name)


class GroupTransform(nn.Module):
    """A trained T together with the (fixed) centroid it transforms; one per FFN group."""

    def __init__(self, transform: FfnTransform, centroid: dict[str, torch.Tensor]):
        super().__init__()
        self.transform = transform
        for key in FFN_TENSORS:
            self.register_buffer(key.replace(".", "_"), centroid[key].detach().clone().float())

    def produce(self, key: str, index: int) -> torch.Tensor:
        return self.transform(getattr(self, key.replace(".", "_")))[..., index]


class _TransformedTensor(nn.Module):
    """Parametrisation ``value = residual + T(centroid)[..., j]`` of one grouped FFN tensor."""

    def __init__(self, group: GroupTransform, key: str, index: int):
        super().__init__()
        # Not registered as a submodule: the group lives once under the model's ``ffn_transforms``, so its
        # parameters are counted and saved once.
        self.__dict__["_group"] = group
        self.key, self.index = key, index

    def forward(self, residual: torch.Tensor) -> torch.Tensor:
        return residual + self._group.produce(self.key, self.index)

    def right_inverse(self, value: torch.Tensor) -> torch.Tensor:
        return value - self._group.produce(self.key, self.index).detach()


def attach_trained_transforms(
    model: nn.Module, groups: list[list[int]], transforms: list[FfnTransform], centroids: list[dict[str, torch.Tensor]]
) -> None:
    """Keep each group's T in the graph of ``model`` (see the module docstring).

    The layers' FFN tensors must already hold T(centroid) (call :func:`apply_once` first): registering the
    parametrisation turns each into a zero residual, so the model's outputs do not change.
    """
    modules = nn.ModuleList()
    for group, transform, centroid in zip(groups, transforms, centroids, strict=True):
        holder = GroupTransform(transform, centroid)
        modules.append(holder)
        for j, layer in enumerate(group):
            mlp = model.blocks[layer].mlp
            for key in FFN_TENSORS:
                sub, name = key.split(".")
                parametrize.register_parametrization(getattr(mlp, sub), name, _TransformedTensor(holder, key, j))
    setattr(model, TRANSFORMS_ATTR, modules)


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of ``model`` as plain timm modules: trained transformations folded into the weights.

    Each parametrised tensor is read through its parametrisation (its current value) and stored under its plain
    name; the transformations themselves are left out. The model is not modified (removing parametrisations
    from a copy would alter the dynamically created class the original shares).
    """
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith(TRANSFORMS_ATTR + "."):
            continue
        if ".parametrizations." in key:
            module_path, rest = key.split(".parametrizations.")
            name = rest.split(".")[0]
            key = f"{module_path}.{name}"
            value = getattr(model.get_submodule(module_path), name)
        state[key] = value.detach().clone()
    return state
