"""SAITS and its paper builders."""

from typing import TYPE_CHECKING

from attnkit.core._lazy import lazy_exports

if TYPE_CHECKING:
    from attnkit.timeseries.models.convert import from_pypots_state_dict
    from attnkit.timeseries.models.saits import (
        SAITS,
        DMSALayer,
        SAITSOutput,
        saits_air_quality,
        saits_base,
        saits_physionet2012,
    )

__getattr__, __dir__ = lazy_exports(__name__, {
    "from_pypots_state_dict": "attnkit.timeseries.models.convert:from_pypots_state_dict",
    "SAITS": "attnkit.timeseries.models.saits:SAITS",
    "DMSALayer": "attnkit.timeseries.models.saits:DMSALayer",
    "SAITSOutput": "attnkit.timeseries.models.saits:SAITSOutput",
    "saits_air_quality": "attnkit.timeseries.models.saits:saits_air_quality",
    "saits_base": "attnkit.timeseries.models.saits:saits_base",
    "saits_physionet2012": "attnkit.timeseries.models.saits:saits_physionet2012",
})

__all__ = [
    "SAITS",
    "DMSALayer",
    "SAITSOutput",
    "from_pypots_state_dict",
    "saits_air_quality",
    "saits_base",
    "saits_physionet2012",
]
