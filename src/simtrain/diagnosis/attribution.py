"""Where a validation curve's movement comes from, and which cause claims the part beyond noise.

The per-epoch variance the curve shows around its trend (`curve_tests.observed_movement`) is
split into

- validation sampling: the squared sampling error of shuffled partial validation (0 for a
  fixed set); PARTIAL_VALIDATION explains this share and no more;
- ordinary training movement: the run's own movement, up to the practical floor;
- the rest: what neither explains. A cause claims part of it only with evidence measured at
  the epochs concerned:
  - BatchNorm statistics (BATCHNORM_STATISTICS, or AUGMENTATION_SHIFT when the statistics are
    off because augmentation shifts training inputs): the same weights scored with precise
    statistics at each epoch (`model_evidence.epoch_evidence`); what the curve loses in
    movement with them is theirs. A glitch is theirs when it vanishes with them.
  - UNSTABLE_OPTIMIZATION (batch-loss spikes or divergence): the weights themselves jump, so it
    claims what precise statistics leave (all of the rest without per-epoch evidence), and a
    glitch in an epoch with spikes; a diverged run (non-finite loss) is all its. Spikes in too
    few epochs to warn alone (an info finding) claim a curve's movement beyond noise only when
    nothing else claims any of it, and never a lone glitch.
  - what nobody claims is unexplained.

The main cause of a curve beyond its noise is the one claiming most of the rest when that is
at least half of it; otherwise UNEXPLAINED_FLUCTUATION.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from simtrain.diagnosis.curve_tests import observed_movement
from simtrain.diagnosis.findings import Finding, plain_number
from simtrain.diagnosis.noise import PRACTICAL_FLOOR, NoiseEstimate

UNEXPLAINED = "UNEXPLAINED_FLUCTUATION"
BATCHNORM_CAUSES = ("AUGMENTATION_SHIFT", "BATCHNORM_STATISTICS")
UNSTABLE = "UNSTABLE_OPTIMIZATION"
# A cause is *the* cause when it claims at least half of the movement beyond noise.
MAIN_CAUSE_SHARE = 0.5


@dataclass(frozen=True)
class Decomposition:
    """Per-epoch variance (accuracy²) of the validation curve around its trend, by source."""

    beyond_noise: bool
    total: float
    sampling: float
    training: float
    rest: float
    claims: dict[str, float] = field(default_factory=dict)  # cause -> variance of the rest
    sampling_claimed_by: str | None = None  # PARTIAL_VALIDATION, for the sampling share
    cause: str | None = None  # main cause of the part beyond noise
    glitch_epoch: int | None = None
    glitch_cause: str | None = None
    evidence: str = "none"  # "per epoch" | "final model only" | "none"
    precise_bn_curve: dict[str, list] | None = None

    @property
    def unexplained(self) -> float:
        return max(self.rest - sum(self.claims.values()), 0.0)

    def share(self, part: float) -> float | None:
        return None if self.total <= 0 else part / self.total

    def to_dict(self) -> dict:
        variance = {
            "total": self.total,
            "sampling": self.sampling,
            "training": self.training,
            "rest": self.rest,
            "unexplained": self.unexplained,
        }
        return {
            "beyond_noise": self.beyond_noise,
            "cause": self.cause,
            "variance_per_epoch": {k: plain_number(v) for k, v in variance.items()},
            "share_of_total": {k: plain_number(self.share(v)) for k, v in variance.items()},
            "claimed_by": {k: plain_number(v) for k, v in self.claims.items()},
            "sampling_claimed_by": self.sampling_claimed_by,
            "glitch_epoch": self.glitch_epoch,
            "glitch_cause": self.glitch_cause,
            "model_evidence": self.evidence,
            "precise_bn_curve": self.precise_bn_curve,
        }


def _warning(finding: object) -> bool:
    return isinstance(finding, Finding) and finding.severity != "info"


def _batchnorm_code(causes: Mapping[str, object]) -> str:
    return (
        "AUGMENTATION_SHIFT"
        if _warning(causes.get("AUGMENTATION_SHIFT"))
        else ("BATCHNORM_STATISTICS")
    )


def _precise_curve(noise: NoiseEstimate, epoch_evidence: Mapping | None) -> dict[int, float]:
    if not epoch_evidence:
        return {}
    return dict(zip(map(int, epoch_evidence["epochs"]), map(float, epoch_evidence["precise_bn"])))


def _glitch_vanishes(noise: NoiseEstimate, precise: dict[int, float]) -> bool | None:
    """Does the glitch disappear with precise statistics? None without evidence there."""
    epoch = noise.glitch_epoch
    neighbours = (epoch - 1, epoch, epoch + 1) if epoch is not None else ()
    if epoch is None or not all(e in precise for e in neighbours):
        return None
    before, now, after = (precise[e] for e in neighbours)
    excess = max(min(before, after) - now, now - max(before, after), 0.0)
    return excess < max(PRACTICAL_FLOOR, 0.5 * (noise.largest_excess or 0.0))


def decompose(
    noise: NoiseEstimate,
    causes: Mapping[str, object],
    epoch_evidence: Mapping | None = None,
    spike_epochs: frozenset[int] = frozenset(),
) -> Decomposition:
    """Split the curve's movement by source; `causes` holds the checks' results by code,
    `epoch_evidence` the per-epoch precise-BN scores, `spike_epochs` the epochs with batch
    spikes."""
    total = (noise.observed or 0.0) ** 2
    sampling = min(noise.sampling**2, total)
    training = min(noise.ordinary_movement**2, total - sampling)
    rest = max(total - sampling - training, 0.0)
    sampling_claimed_by = (
        "PARTIAL_VALIDATION"
        if not noise.fixed_set and _warning(causes.get("PARTIAL_VALIDATION"))
        else None
    )
    precise = _precise_curve(noise, epoch_evidence)
    whole_curve = bool(precise) and all(int(e) in precise for e in noise.epoch_numbers)
    evidence = "per epoch" if precise else "none"
    if not precise and any(
        isinstance(causes.get(c), Finding) for c in ("BATCHNORM_STATISTICS", "AUGMENTATION_SHIFT")
    ):
        evidence = "final model only"
    claims: dict[str, float] = {}
    if whole_curve:
        curve = np.array([precise[int(e)] for e in noise.epoch_numbers])
        without = (observed_movement(curve) or 0.0) ** 2
        claimed = min(max(total - max(without, sampling + training), 0.0), rest)
        if claimed > 0:
            claims[_batchnorm_code(causes)] = claimed
    unstable = causes.get(UNSTABLE)
    diverged = isinstance(unstable, Finding) and unstable.severity == "critical"
    if diverged:
        # Training diverged (a non-finite loss): every later score is meaningless, whatever
        # the statistics do.
        claims = {UNSTABLE: rest}
    elif _warning(unstable) and rest - sum(claims.values()) > 0:
        claims[UNSTABLE] = rest - sum(claims.values())
    elif isinstance(unstable, Finding) and noise.movement_beyond and not claims and rest > 0:
        # An info finding: spikes in a few epochs, the only evidence there is.
        claims[UNSTABLE] = rest
    glitch_cause = None
    if noise.glitch_beyond:
        vanishes = _glitch_vanishes(noise, precise)
        if diverged:
            glitch_cause = UNSTABLE
        elif vanishes:
            glitch_cause = _batchnorm_code(causes)
        elif _warning(unstable) and (noise.glitch_epoch in spike_epochs or not spike_epochs):
            glitch_cause = UNSTABLE
        else:
            glitch_cause = UNEXPLAINED
    cause = None
    if noise.beyond_band:
        if noise.movement_beyond or glitch_cause is None:
            best = max(claims, key=claims.get, default=None)
            enough = best is not None and claims[best] >= MAIN_CAUSE_SHARE * rest > 0
            cause = best if enough else UNEXPLAINED
        else:
            cause = glitch_cause
    return Decomposition(
        beyond_noise=noise.beyond_band,
        total=total,
        sampling=sampling,
        training=training,
        rest=rest,
        claims=claims,
        sampling_claimed_by=sampling_claimed_by,
        cause=cause,
        glitch_epoch=noise.glitch_epoch if noise.glitch_beyond else None,
        glitch_cause=glitch_cause,
        evidence=evidence,
        precise_bn_curve=(
            {
                "epochs": [int(e) for e in epoch_evidence["epochs"]],
                "stored": [plain_number(v) for v in epoch_evidence["stored"]],
                "precise_bn": [plain_number(v) for v in epoch_evidence["precise_bn"]],
            }
            if epoch_evidence
            else None
        ),
    )
