"""Networks that decode encoded features. ``AnyNetworkConfig`` lists every config the CLI accepts."""

from typing import Union

from fields.networks.base import Network, NetworkConfig
from fields.networks.mlp import MLP, MLPConfig, activation_fn, trunc_exp

# Every network config, for tyro and for config (de)serialization. Later networks append here.
NETWORK_CONFIGS: tuple[type[NetworkConfig], ...] = (MLPConfig,)
AnyNetworkConfig = Union[NETWORK_CONFIGS]  # type: ignore[valid-type]

__all__ = ["AnyNetworkConfig", "MLP", "MLPConfig", "NETWORK_CONFIGS", "Network", "NetworkConfig", "activation_fn", "trunc_exp"]
