"""Federated fine-tuning on Flower (docs/federated.md).

    partition.py   train rows -> clients (flwr-datasets partitioners), label histograms
    arrays.py      which tensors travel (only what trains; personalized parts stay home), bytes
    client.py      the ClientApp: tunewright's own fit() on the client's rows; FedProx's proximal term
    server.py      the Flower strategy by name, and the guard that rejects NaN/Inf/over-norm updates
    privacy.py     DP client-side fixed clipping (Flower) and epsilon (opacus' RDP accountant)
    state.py       the server's state after every round (safetensors + JSON, atomic) and resume
    driver.py      the round loop, the ServerApp, and `federate(config)` (simulation runtime)
    secagg.py      federated.secagg: Flower's SecAgg+ workflow (legacy API) around the same local fit
    app.py         module-level ServerApp/ClientApp for the deployment runtime (`flwr run`)

Importing this package imports no Flower; the modules that need it do.
"""
