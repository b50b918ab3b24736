"""The same ServerApp and ClientApp for Flower's deployment runtime (a SuperLink, SuperNodes, `flwr run`).

A Flower App project (examples/federated_app/pyproject.toml) points at these objects:

    [tool.flwr.app.components]
    serverapp = "tunewright.federated.app:server_app"
    clientapp = "tunewright.federated.app:client_app"
    [tool.flwr.app.config]
    config = "/abs/path/to/recipe.yaml"     # or the YAML text itself; the same on server and clients

Each SuperNode is started with `--node-config "partition-id=K num-partitions=N"`, so client K trains on
partition K of the train split exactly as in simulation (docs/federated.md shows the commands and TLS).
"""
from .client import make_client_app
from .driver import make_server_app

server_app = make_server_app()
client_app = make_client_app()
