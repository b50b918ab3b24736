"""Differential privacy: Flower's client-side fixed clipping, and epsilon from opacus' RDP accountant.

Each sampled client clips its update Delta_k = w_k - w_global to L2 norm C (Flower's `fixedclipping_mod`);
the server averages the clipped updates with equal weights and adds N(0, (z C / m)^2) per coordinate
(Flower's `DifferentialPrivacyClientSideFixedClipping`, m = clients per round, z = noise multiplier).
One round is then a Gaussian mechanism on the client-level average with sensitivity C/m and noise
multiplier z (McMahan et al. 2018, DP-FedAvg). `epsilon` composes `rounds` of them with opacus'
RDP accountant, without amplification by sampling (sample rate 1): Flower samples a fixed number of
clients without replacement, which the Poisson-subsampled RDP bound does not cover, so this is the
conservative figure.
"""
from __future__ import annotations


def epsilon(noise_multiplier: float, rounds: int, delta: float) -> float:
    """(epsilon at `delta`) after `rounds` DP-FedAvg rounds with this noise multiplier (opacus RDPAccountant)."""
    from opacus.accountants import RDPAccountant
    acc = RDPAccountant()
    for _ in range(rounds):
        acc.step(noise_multiplier=noise_multiplier, sample_rate=1.0)
    return float(acc.get_epsilon(delta))


def wrap_dp(strategy, noise_multiplier: float, clipping_norm: float, clients_per_round: int):
    """Flower's server-side wrapper for client-side fixed clipping around `strategy`."""
    from flwr.serverapp.strategy import DifferentialPrivacyClientSideFixedClipping
    return DifferentialPrivacyClientSideFixedClipping(strategy, noise_multiplier=noise_multiplier,
                                                      clipping_norm=clipping_norm,
                                                      num_sampled_clients=clients_per_round)


def clip_when_asked(msg, context, call_next):
    """A client mod: Flower's `fixedclipping_mod` on training messages whose config carries a clipping norm
    (the DP wrapper puts it there), a pass-through otherwise, so one ClientApp serves DP and non-DP runs."""
    from flwr.app import MessageType
    from flwr.clientapp.mod import fixedclipping_mod
    from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM
    if msg.metadata.message_type == MessageType.TRAIN and any(
            KEY_CLIPPING_NORM in c for c in msg.content.config_records.values()):
        return fixedclipping_mod(msg, context, call_next)
    return call_next(msg, context)
