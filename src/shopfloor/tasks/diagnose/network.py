"""The diagnosis network: a window of raw samples in plant units in, class probabilities and a novelty out.

- Per-channel normalisation (training mean and spread) is inside, so that every face feeds raw samples.
- Two front ends, either or both (`front`): `raw`, a WDCNN-style 1-D CNN (a wide first kernel with a stride,
  then small kernels: Zhang et al. 2017) over the normalised samples; `spectrum`, the log magnitude of the
  window's spectrum (Hann-tapered), averaged into `bands` bands and read by a small perceptron, which keeps
  where in frequency the energy is (a defect frequency) rather than only how much.
- The unknown verdict reads the window's spectral description (log band spectrum and envelope spectrum,
  standardised): `novelty` is the Mahalanobis distance to the nearest class (its training windows' mean and
  shrunk covariance, Ledoit-Wolf) in units of that class's radius (set on held-out windows), so a window
  farther than 1 from every class is like none of them. Measured on CWRU, each of the 10 classes held out in
  turn, spectrum front, one seed (first 70 % trains, last 30 % tests), the level at margin 1.0: this description
  found 97 % of the held-out class's windows on average (B007 71 %, every other class 100 %) with 0-4 % of known
  windows called unknown (at the default margin 1.1: 91 %, B007 18 %, no known window unknown; see
  benchmarks/cwru.py); the same rule on the network's embedding (the layer before the classes) found 18-100 % (mean 84 %),
  Euclidean distances to the embedding's centroids less (12-100 % on four classes tried), since a network
  trained to tell the known classes apart keeps only what separates them.
- Beside the front ends, every channel's level, spread and slope over the window go to the embedding: slow
  process signals (a hydraulic rig's 1 Hz temperatures and powers over a 60 s cycle) differ in those more than
  in any shape a convolution finds.
- Probabilities are temperature-scaled (`temperature`, fitted on held-out windows).
"""

from __future__ import annotations

import torch
from torch import nn

FRONTS = ("raw", "spectrum", "both")


class DiagnoseNet(nn.Module):
    def __init__(self, channels: int, classes: int, window: int, front: str = "both", width: int = 32,
                 embedding: int = 64, bands: int = 128, dropout: float = 0.2):
        super().__init__()
        self.window, self.front = window, front
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))
        self.register_buffer("temperature", torch.ones(()))
        self.bands = min(bands, window // 2 + 1)
        self.register_buffer("taper", torch.hann_window(window, periodic=False), persistent=False)
        described = 2 * channels * self.bands  # the spectral description of a window, which the unknown verdict reads
        self.register_buffer("feature_mean", torch.zeros(described))
        self.register_buffer("feature_std", torch.ones(described))
        self.register_buffer("centroids", torch.zeros(classes, described))
        self.register_buffer("precision", torch.eye(described).repeat(classes, 1, 1))
        self.register_buffer("radius", torch.ones(classes))
        features = 0
        if front in ("raw", "both"):
            kernel = max(3, min(64, window // 16))
            stride = max(1, kernel // 8)
            self.raw = nn.Sequential(
                nn.Conv1d(channels, width // 2, kernel, stride=stride, padding=kernel // 2), nn.BatchNorm1d(width // 2),
                nn.ReLU(), nn.MaxPool1d(2, ceil_mode=True),
                nn.Conv1d(width // 2, width, 3, padding=1), nn.BatchNorm1d(width), nn.ReLU(), nn.MaxPool1d(2, ceil_mode=True),
                nn.Conv1d(width, 2 * width, 3, padding=1), nn.BatchNorm1d(2 * width), nn.ReLU(),
                nn.MaxPool1d(2, ceil_mode=True),
                nn.Conv1d(2 * width, 2 * width, 3, padding=1), nn.BatchNorm1d(2 * width), nn.ReLU(),
            )
            features += 4 * width  # average and largest of every map
        if front in ("spectrum", "both"):
            self.spectrum = nn.Sequential(nn.Linear(2 * channels * self.bands, 4 * width), nn.ReLU(), nn.Dropout(dropout))
            features += 4 * width
        features += 3 * channels  # every channel's level, spread and slope over the window
        self.register_buffer("ramp", torch.linspace(-1, 1, window) / (torch.linspace(-1, 1, window) ** 2).sum(),
                             persistent=False)
        self.embed = nn.Sequential(nn.Linear(features, embedding), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(embedding, classes))

    def normalise(self, windows: torch.Tensor) -> torch.Tensor:
        return (windows - self.mean[None, :, None]) / self.std[None, :, None]

    def log_spectrum(self, normalised: torch.Tensor) -> torch.Tensor:
        """[batch, channels, 2 x bands]: log magnitude of the tapered window's spectrum averaged into `bands` bands,
        and of its envelope spectrum's lowest `bands` lines (where impacts' repetition rates, a bearing's defect
        frequencies, show: the raw spectrum holds them only as sidebands of a resonance)."""
        tapered = normalised * self.taper
        magnitude = self.magnitude(tapered) / self.window ** 0.5
        bands = nn.functional.adaptive_avg_pool1d(torch.log(magnitude + 1e-3), self.bands)
        envelope = torch.sqrt(tapered ** 2 + self.hilbert(tapered) ** 2)  # |x + i H(x)|, the analytic signal's size
        lines = self.magnitude((envelope - envelope.mean(-1, keepdim=True)) * self.taper, self.bands)
        return torch.cat([bands, torch.log(lines / self.window ** 0.5 + 1e-3)], -1)

    def magnitude(self, x: torch.Tensor, lines: int | None = None) -> torch.Tensor:
        """|rfft(x)| over the last axis (its first `lines` lines): by FFT, or by the DFT's matrices in an ONNX graph."""
        if getattr(self, "dft_real", None) is None:
            spectrum = torch.fft.rfft(x, dim=-1)
            return (spectrum if lines is None else spectrum[..., :lines]).abs()
        real, imaginary = self.dft_real[:, :lines], self.dft_imaginary[:, :lines]
        return torch.sqrt((x @ real) ** 2 + (x @ imaginary) ** 2)

    def hilbert(self, x: torch.Tensor) -> torch.Tensor:
        """The Hilbert transform over the last axis (the analytic signal's imaginary part)."""
        if getattr(self, "hilbert_matrix", None) is not None:
            return x @ self.hilbert_matrix
        spectrum = torch.fft.rfft(x, dim=-1)
        keep = torch.ones(spectrum.shape[-1], device=x.device)
        keep[0] = 0
        if self.window % 2 == 0:
            keep[-1] = 0
        return torch.fft.irfft(spectrum * keep * -1j, n=self.window, dim=-1)

    def use_matrices(self) -> DiagnoseNet:
        """Compute the spectra by matrix products (what ONNX runs everywhere) instead of FFTs: the same linear maps,
        applied to the identity to build them; slower, so only exported copies use them."""
        identity = torch.eye(self.window)
        spectrum = torch.fft.rfft(identity, dim=-1)
        self.register_buffer("dft_real", spectrum.real.contiguous(), persistent=False)
        self.register_buffer("dft_imaginary", spectrum.imag.contiguous(), persistent=False)
        self.register_buffer("hilbert_matrix", self.hilbert(identity).contiguous(), persistent=False)
        return self

    def embedding(self, windows: torch.Tensor) -> torch.Tensor:
        x = self.normalise(windows)
        parts = [x.mean(-1), x.std(-1), (x * self.ramp).sum(-1)]
        if self.front in ("raw", "both"):
            maps = self.raw(x)
            parts += [maps.mean(-1), maps.amax(-1)]
        if self.front in ("spectrum", "both"):
            parts.append(self.spectrum(self.log_spectrum(x).flatten(1)))
        return self.embed(torch.cat(parts, 1))

    def logits(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Uncalibrated class scores [batch, classes] and the embedding [batch, embedding]."""
        embedded = self.embedding(windows)
        return self.head(embedded), embedded

    def described(self, windows: torch.Tensor) -> torch.Tensor:
        """[batch, 2 x channels x bands]: each window's log spectrum and envelope spectrum, standardised."""
        features = self.log_spectrum(self.normalise(windows)).flatten(1)
        return (features - self.feature_mean) / self.feature_std

    def distances(self, described: torch.Tensor) -> torch.Tensor:
        """[batch, classes]: the Mahalanobis distance of each window's description to each class."""
        apart = described[:, None, :] - self.centroids[None]  # [batch, classes, features]
        return torch.einsum("bke,kef,bkf->bk", apart, self.precision, apart).clamp(min=0).sqrt()

    def novelty(self, windows: torch.Tensor) -> torch.Tensor:
        """Distance to the nearest class, in units of that class's radius (above 1: unknown)."""
        return (self.distances(self.described(windows)) / self.radius[None]).amin(1)

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows [batch, channels, window] in plant units -> (probabilities [batch, classes], novelty [batch])."""
        logits, _ = self.logits(windows)
        return torch.softmax(logits / self.temperature, dim=1), self.novelty(windows)
