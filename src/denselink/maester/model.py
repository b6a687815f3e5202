"""MAESTER: a masked autoencoder (ViT encoder + light decoder) for single-channel microscopy crops.

Plain torch re-implementation of the MAE used by MAESTER (Xie et al., 2023) with the paper's Table 2
hyperparameters as defaults. Parameter names follow the authors' model (timm ``Block`` layout), so a
state dict saved by the original code loads into :class:`MaesterModel` unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from denselink.maester.settings import MaesterModelSettings

LAYER_NORM_EPS = 1e-6


def sincos_pos_embed_2d(dim: int, grid_size: int) -> np.ndarray:
    """Fixed MAE position embedding ``(grid_size**2, dim)``: first half encodes the column, second the row."""
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4.0))
    coords = np.arange(grid_size, dtype=np.float32)
    cols, rows = np.meshgrid(coords, coords)  # cols vary along a row, as in the MAE reference code

    def encode(pos: np.ndarray) -> np.ndarray:
        angles = np.outer(pos.reshape(-1), omega)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    return np.concatenate([encode(cols), encode(rows)], axis=1)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    """Two-layer perceptron with exact GELU."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (the layout of timm's ViT ``Block``)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` patches of a 1-channel image, linearly embedded."""

    def __init__(self, patch_size: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class MaesterModel(nn.Module):
    """Masked autoencoder; :meth:`encode` gives the unmasked patch tokens used for embeddings."""

    def __init__(self, settings: MaesterModelSettings | None = None) -> None:
        super().__init__()
        self.settings = s = (settings or MaesterModelSettings()).check()
        n_patches = s.grid_size**2
        self.patch_embed = PatchEmbed(s.patch_size, s.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, s.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_patches + 1, s.embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList(Block(s.embed_dim, s.num_heads, s.mlp_ratio) for _ in range(s.depth))
        self.norm = nn.LayerNorm(s.embed_dim, eps=LAYER_NORM_EPS)

        self.decoder_embed = nn.Linear(s.embed_dim, s.decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, s.decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(
            torch.zeros(1, n_patches + 1, s.decoder_embed_dim), requires_grad=False
        )
        self.decoder_blocks = nn.ModuleList(
            Block(s.decoder_embed_dim, s.decoder_num_heads, s.mlp_ratio) for _ in range(s.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(s.decoder_embed_dim, eps=LAYER_NORM_EPS)
        self.decoder_pred = nn.Linear(s.decoder_embed_dim, s.patch_size**2)
        self._initialize()

    def _initialize(self) -> None:
        s = self.settings
        for param, dim in ((self.pos_embed, s.embed_dim), (self.decoder_pos_embed, s.decoder_embed_dim)):
            param.data[0, 1:] = torch.from_numpy(sincos_pos_embed_2d(dim, s.grid_size)).float()
        weight = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 1, S, S)`` -> ``(N, L, p*p)`` patches in row-major order."""
        p, g = self.settings.patch_size, self.settings.grid_size
        x = images.reshape(images.shape[0], g, p, g, p)
        return x.permute(0, 1, 3, 2, 4).reshape(images.shape[0], g * g, p * p)

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(images) + self.pos_embed[:, 1:] * self.settings.pos_encode_w

    def _run_encoder(self, tokens: torch.Tensor) -> torch.Tensor:
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(tokens.shape[0], -1, -1)
        x = torch.cat([cls, tokens], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Unmasked patch tokens ``(N, L, embed_dim)`` of ``(N, 1, S, S)`` crops (cls token dropped)."""
        return self._run_encoder(self._embed(images))[:, 1:]

    def forward(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Masked reconstruction: ``(loss, prediction (N, L, p*p), mask (N, L) with 1 = masked)``."""
        tokens = self._embed(images)
        n, length, dim = tokens.shape
        keep = int(length * (1 - self.settings.mask_ratio))
        noise = torch.rand(n, length, device=images.device, generator=generator)
        shuffle = torch.argsort(noise, dim=1)
        restore = torch.argsort(shuffle, dim=1)
        kept = torch.gather(tokens, 1, shuffle[:, :keep, None].expand(-1, -1, dim))
        latent = self._run_encoder(kept)

        x = self.decoder_embed(latent)
        masked = self.mask_token.expand(n, length - keep, -1)
        x_ = torch.cat([x[:, 1:], masked], dim=1)
        x_ = torch.gather(x_, 1, restore[:, :, None].expand(-1, -1, x.shape[2]))
        x = torch.cat([x[:, :1], x_], dim=1) + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        pred = self.decoder_pred(self.decoder_norm(x))[:, 1:]

        mask = torch.ones(n, length, device=images.device)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, restore)
        per_patch = ((pred - self.patchify(images)) ** 2).mean(dim=-1)
        loss = (per_patch * mask).sum() / mask.sum()
        return loss, pred, mask


def build_model(settings: MaesterModelSettings, seed: int) -> MaesterModel:
    """A freshly initialised model whose weights depend only on ``settings`` and ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MaesterModel(settings)
