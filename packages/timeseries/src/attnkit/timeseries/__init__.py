"""attnkit.timeseries: SAITS for multivariate time-series imputation."""

from attnkit.timeseries.data import (
    AirQualityDataModule,
    ETTDataModule,
    ImputationDataModule,
    PhysioNet2012DataModule,
    TableDataModule,
    load_physionet2012,
    read_ett,
    read_prsa,
    read_table,
)
from attnkit.timeseries.masking import block_mask, mcar_mask, subsequence_mask
from attnkit.timeseries.metrics import MaskedMAE, MaskedMRE, MaskedRMSE
from attnkit.timeseries.models import (
    SAITS,
    SAITSOutput,
    from_pypots_state_dict,
    saits_air_quality,
    saits_base,
    saits_physionet2012,
)
from attnkit.timeseries.plot import plot_imputation
from attnkit.timeseries.tasks import ImputationTask

__all__ = [
    "SAITS",
    "AirQualityDataModule",
    "ETTDataModule",
    "ImputationDataModule",
    "ImputationTask",
    "MaskedMAE",
    "MaskedMRE",
    "MaskedRMSE",
    "PhysioNet2012DataModule",
    "SAITSOutput",
    "TableDataModule",
    "block_mask",
    "from_pypots_state_dict",
    "load_physionet2012",
    "mcar_mask",
    "plot_imputation",
    "read_ett",
    "read_prsa",
    "read_table",
    "saits_air_quality",
    "saits_base",
    "saits_physionet2012",
    "subsequence_mask",
]
