"""SAITS and its paper builders."""

from attnkit.timeseries.models.convert import from_pypots_state_dict
from attnkit.timeseries.models.saits import (
    SAITS,
    DMSALayer,
    SAITSOutput,
    saits_air_quality,
    saits_base,
    saits_physionet2012,
)

__all__ = [
    "SAITS",
    "DMSALayer",
    "SAITSOutput",
    "from_pypots_state_dict",
    "saits_air_quality",
    "saits_base",
    "saits_physionet2012",
]
