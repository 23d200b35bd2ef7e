"""The one value type every layer passes around: a splatfacto model's gaussians, as stored.

Parameters stay in splatfacto's raw form (log scales, opacity logits, unnormalised quaternions,
SH coefficients) so that the checkpoint, ``splat.ply`` and the renderer agree bit for bit; the
activations live in the few helpers below, used by everyone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SH_C0 = 0.28209479177387814  # the degree-0 real spherical-harmonic constant


def num_sh_rest(sh_degree: int) -> int:
    """Number of higher-order SH coefficients per colour channel for a degree."""
    return (sh_degree + 1) ** 2 - 1


def splatfacto_sh_dc(features_dc: torch.Tensor, sh_degree: int) -> torch.Tensor:
    """Splatfacto's DC colour parameter as the degree-0 SH coefficient.

    With SH degree 0 splatfacto stores a colour logit instead (sigmoid activation); ns-export writes
    it as RGB2SH(sigmoid(logit)), and so is it converted here, in float32 as there.
    """
    return features_dc if sh_degree > 0 else (torch.sigmoid(features_dc) - 0.5) / SH_C0


@dataclass(frozen=True)
class Gaussians:
    """Splatfacto gaussians in the training frame.

    means [N,3]; quats [N,4] (w,x,y,z, unnormalised); log_scales [N,3]; opacity_logits [N];
    sh_dc [N,3]; sh_rest [N,K,3] with K = (sh_degree+1)^2 - 1.
    """

    means: torch.Tensor
    quats: torch.Tensor
    log_scales: torch.Tensor
    opacity_logits: torch.Tensor
    sh_dc: torch.Tensor
    sh_rest: torch.Tensor

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        expected = {
            "means": (n, 3),
            "quats": (n, 4),
            "log_scales": (n, 3),
            "opacity_logits": (n,),
            "sh_dc": (n, 3),
        }
        for name, shape in expected.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f"{name} has shape {tuple(getattr(self, name).shape)}, expected {shape}")
        if self.sh_rest.ndim != 3 or self.sh_rest.shape[0] != n or self.sh_rest.shape[2] != 3:
            raise ValueError(f"sh_rest has shape {tuple(self.sh_rest.shape)}, expected ({n}, K, 3)")
        if self.sh_rest.shape[1] not in {num_sh_rest(d) for d in range(5)}:
            raise ValueError(f"sh_rest holds {self.sh_rest.shape[1]} coefficients: not a full SH degree")

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        return round((self.sh_rest.shape[1] + 1) ** 0.5) - 1

    @property
    def device(self) -> torch.device:
        return self.means.device

    def to(self, device: torch.device | str) -> Gaussians:
        return Gaussians(*(getattr(self, f).to(device) for f in _FIELDS))

    def select(self, index: torch.Tensor) -> Gaussians:
        """The subset picked by a boolean mask or an index tensor."""
        return Gaussians(*(getattr(self, f)[index] for f in _FIELDS))

    def finite_rows(self) -> torch.Tensor:
        """[N] bool: the gaussians whose every value is finite. One NaN or infinity anywhere (a
        scale, a quaternion, a colour) leaves the rasterizer nothing sensible to draw."""
        values = [getattr(self, f).isfinite().unsqueeze(-1).flatten(1) for f in _FIELDS]  # [N, *]
        return torch.cat(values, dim=1).all(dim=1)

    def opacities(self) -> torch.Tensor:
        """Opacity in [0,1], [N]."""
        return torch.sigmoid(self.opacity_logits)

    def scales(self) -> torch.Tensor:
        """Axis lengths, [N,3]."""
        return torch.exp(self.log_scales)

    def sh_coeffs(self) -> torch.Tensor:
        """All SH coefficients as splatfacto passes them to gsplat, [N,K+1,3]."""
        return torch.cat([self.sh_dc[:, None, :], self.sh_rest], dim=1)

    def base_colors(self) -> torch.Tensor:
        """View-independent RGB in [0,1] from the DC term, [N,3]."""
        return torch.clamp(self.sh_dc * SH_C0 + 0.5, 0.0, 1.0)


def concatenate(parts: list[Gaussians]) -> Gaussians:
    """One set holding every part's gaussians, in order (all of the same SH degree)."""
    return Gaussians(*(torch.cat([getattr(part, f) for part in parts]) for f in _FIELDS))


_FIELDS = ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest")
