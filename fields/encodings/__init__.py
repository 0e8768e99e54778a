"""Encodings of unit-cube coordinates. ``AnyEncodingConfig`` lists every config the CLI accepts."""

from typing import Union

from fields.encodings.base import Encoding, EncodingConfig
from fields.encodings.fourier import FourierEncodingConfig, FourierFeatureEncoding
from fields.encodings.frequency import FrequencyEncoding, FrequencyEncodingConfig
from fields.encodings.identity import IdentityEncoding, IdentityEncodingConfig

# Every encoding config, for tyro and for config (de)serialization. Later encodings append here.
ENCODING_CONFIGS: tuple[type[EncodingConfig], ...] = (
    IdentityEncodingConfig,
    FrequencyEncodingConfig,
    FourierEncodingConfig,
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
    "IdentityEncoding",
    "IdentityEncodingConfig",
]
