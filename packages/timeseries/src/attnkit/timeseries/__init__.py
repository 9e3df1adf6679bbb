"""attnkit.timeseries: SAITS for multivariate time-series imputation."""

from attnkit.timeseries.models import (
    SAITS,
    SAITSOutput,
    from_pypots_state_dict,
    saits_air_quality,
    saits_base,
    saits_physionet2012,
)

__all__ = [
    "SAITS",
    "SAITSOutput",
    "from_pypots_state_dict",
    "saits_air_quality",
    "saits_base",
    "saits_physionet2012",
]
