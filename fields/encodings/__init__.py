"""Encodings of unit-cube coordinates. ``AnyEncodingConfig`` lists every config the CLI accepts."""

from typing import Union

from fieldforge.fields.encodings.base import Encoding, EncodingConfig
from fieldforge.fields.encodings.coarse_to_fine import CoarseToFineFourierConfig, CoarseToFineFrequencyConfig
from fieldforge.fields.encodings.fourier import FourierEncodingConfig, FourierFeatureEncoding
from fieldforge.fields.encodings.frequency import FrequencyEncoding, FrequencyEncodingConfig
from fieldforge.fields.encodings.hashgrid import HashGridEncoding, HashGridEncodingConfig
from fieldforge.fields.encodings.identity import IdentityEncoding, IdentityEncodingConfig
from fieldforge.fields.encodings.sape import SAPEConfig, SAPEEncoding
from fieldforge.fields.encodings.spherical_harmonics import SphericalHarmonicsEncoding, SphericalHarmonicsEncodingConfig

# Every encoding config, for tyro and for config (de)serialization. Later encodings append here.
ENCODING_CONFIGS: tuple[type[EncodingConfig], ...] = (
    IdentityEncodingConfig,
    FrequencyEncodingConfig,
    FourierEncodingConfig,
    HashGridEncodingConfig,
    CoarseToFineFrequencyConfig,
    CoarseToFineFourierConfig,
    SAPEConfig,
    SphericalHarmonicsEncodingConfig,
)
AnyEncodingConfig = Union[ENCODING_CONFIGS]  # type: ignore[valid-type]

__all__ = [
    "AnyEncodingConfig",
    "ENCODING_CONFIGS",
    "Encoding",
    "EncodingConfig",
    "FourierEncodingConfig",
    "FourierFeatureEncoding",
    "FrequencyEncoding",
    "FrequencyEncodingConfig",
    "HashGridEncoding",
    "HashGridEncodingConfig",
    "IdentityEncoding",
    "IdentityEncodingConfig",
]
__all__ += ["CoarseToFineFourierConfig", "CoarseToFineFrequencyConfig", "SAPEConfig", "SAPEEncoding"]
__all__ += ["SphericalHarmonicsEncoding", "SphericalHarmonicsEncodingConfig"]
