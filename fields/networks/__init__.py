"""Networks that decode encoded features. ``AnyNetworkConfig`` lists every config the CLI accepts."""

from typing import Union

from fieldforge.fields.activations import activation_fn, trunc_exp
from fieldforge.fields.networks.base import Network, NetworkConfig
from fieldforge.fields.networks.cam import CAMConfig, CAMNetwork
from fieldforge.fields.networks.kilonerf import TileBank, TileBankConfig
from fieldforge.fields.networks.mlp import MLP, MLPConfig
from fieldforge.fields.networks.pins import PINs, PINsConfig
from fieldforge.fields.networks.rbf import RBFConfig, RBFNetwork
from fieldforge.fields.networks.siren import Siren, SirenConfig

# Every network config, for tyro and for config (de)serialization. Later networks append here.
NETWORK_CONFIGS: tuple[type[NetworkConfig], ...] = (MLPConfig, CAMConfig, RBFConfig, PINsConfig, SirenConfig, TileBankConfig)
AnyNetworkConfig = Union[NETWORK_CONFIGS]  # type: ignore[valid-type]

__all__ = ["AnyNetworkConfig", "MLP", "MLPConfig", "NETWORK_CONFIGS", "Network", "NetworkConfig", "activation_fn", "trunc_exp"]
__all__ += ["CAMConfig", "CAMNetwork", "RBFConfig", "RBFNetwork"]
__all__ += ["PINs", "PINsConfig", "Siren", "SirenConfig"]
__all__ += ["TileBank", "TileBankConfig"]
