"""The `federated:` section of a config (docs/federated.md): one dataclass, read by `tunewright federate`
(src/tunewright/federated/). It lives under config/ so the schema imports downward."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional



def opt(default: Any, help: str, choices: tuple | None = None) -> Any:
    """schema.opt's twin (schema.py imports this module, so this one cannot import schema)."""
    meta = {"help": help, **({"choices": choices} if choices is not None else {})}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


PARTITIONERS = ("iid", "dirichlet", "shards")
AGGREGATIONS = ("fedavg", "fedprox", "fedadam", "fedyogi")
PERSONALIZE = ("none", "head", "adapter")
RUNTIMES = ("simulation", "deployment")


@dataclass
class FederatedOptions:
    num_clients: int = opt(10, "Clients (Flower SuperNodes); the train split is partitioned among them.")
    clients_per_round: int = opt(3, "Clients sampled for training in each round.")
    min_clients: int = opt(2, "A round whose valid updates number fewer than this is skipped (the global model "
                           "stays); dropped or rejected clients below this stop nothing.")
    rounds: int = opt(5, "Federated rounds.")
    local_steps: Optional[int] = opt(10, "Optimizer steps each sampled client takes per round (wins over "
                                     "local_epochs when set).")
    local_epochs: int = opt(1, "Epochs over the client's partition per round, when local_steps is null.")
    partitioner: str = opt("iid", "How train rows are spread over clients (flwr-datasets partitioners, seeded by "
                           "train.seed): iid; dirichlet (label proportions ~ Dir(alpha)); shards (label-sorted "
                           "shards, shards_per_client each).", PARTITIONERS)
    alpha: float = opt(0.5, "partitioner dirichlet: concentration; smaller is more skewed (0.1 very, 100 ~ iid).")
    shards_per_client: int = opt(2, "partitioner shards: label-sorted shards each client gets.")
    min_partition_size: int = opt(2, "partitioner dirichlet: resample until every client has at least this many rows.")
    local_test_fraction: float = opt(0.2, "Share of each client's rows held out as its own test slice (for the "
                                     "per-client and personalized accuracy).")
    aggregation: str = opt("fedavg", "Flower strategy: fedavg, fedprox (the client adds mu/2 ||w - w_global||^2 to "
                           "its loss), fedadam or fedyogi (server-side adaptive optimizers, Reddi et al. 2021).",
                           AGGREGATIONS)
    proximal_mu: float = opt(0.01, "aggregation fedprox: mu.")
    server_lr: float = opt(0.01, "fedadam/fedyogi: server learning rate eta.")
    server_tau: float = opt(1e-3, "fedadam/fedyogi: adaptivity tau.")
    server_betas: list = opt([0.9, 0.99], "fedadam/fedyogi: (beta_1, beta_2).")
    max_update_norm: Optional[float] = opt(None, "Reject (and log) a client update whose L2 norm ||w_client - "
                                           "w_global|| is above this; updates with NaN/Inf are always rejected.")
    dp_noise_multiplier: Optional[float] = opt(None, "Differential privacy (client-side fixed clipping, Flower's "
                                               "wrapper + fixedclipping_mod): Gaussian noise std as a multiple "
                                               "of the clipping norm. null: no DP.")
    dp_clipping_norm: float = opt(1.0, "DP: each client's update is clipped to this L2 norm.")
    dp_delta: float = opt(1e-5, "DP: the delta at which epsilon is reported after every round (opacus RDP).")
    secagg: bool = opt(False, "Secure aggregation with Flower's SecAgg+ workflow: the server sees only the sum of "
                       "the sampled clients' quantized, masked tensors (docs/federated.md for its limits).")
    secagg_clipping_range: float = opt(8.0, "secagg: each weighted tensor value is clipped to [-c, c] before "
                                       "quantization (Flower's clipping_range).")
    secagg_quantization_range: int = opt(4194304, "secagg: values are quantized to integers in [0, Q) (Flower's "
                                         "quantization_range, 2**22); the aggregate's error per value is about "
                                         "clients * 2c / Q over the sum of weights.")
    personalize: str = opt("none", "none; head: each client keeps its own head (FedPer, Arivazhagan et al. 2019), "
                           "only the body travels; adapter: each client keeps a local LoRA beside the shared one.",
                           PERSONALIZE)
    client_cpus: float = opt(1.0, "Simulation: CPUs per client actor (Ray).")
    num_cpus: Optional[int] = opt(None, "Simulation: CPUs Ray may use (null: all).")
    round_timeout: float = opt(3600.0, "Seconds the server waits for replies in a round; late clients count as dropped.")
    eval_subset: Optional[int] = opt(None, "Stratified rows of the global test split the server evaluates on after "
                                     "each round (null: all).")
