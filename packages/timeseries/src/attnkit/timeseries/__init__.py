"""attnkit.timeseries: SAITS for multivariate time-series imputation."""

from typing import TYPE_CHECKING

from attnkit.core._lazy import lazy_exports
from attnkit.timeseries.data import registry as _registry  # noqa: F401  (registers the datasets)
from attnkit.timeseries.models import registry as _model_registry  # noqa: F401  (registers the models)

if TYPE_CHECKING:
    from attnkit.core.models import load_model
    from attnkit.timeseries.baselines import baseline_imputations, impute_locf, training_median
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

__getattr__, __dir__ = lazy_exports(__name__, {
    "load_model": "attnkit.core.models:load_model",
    "baseline_imputations": "attnkit.timeseries.baselines:baseline_imputations",
    "impute_locf": "attnkit.timeseries.baselines:impute_locf",
    "training_median": "attnkit.timeseries.baselines:training_median",
    "AirQualityDataModule": "attnkit.timeseries.data:AirQualityDataModule",
    "ETTDataModule": "attnkit.timeseries.data:ETTDataModule",
    "ImputationDataModule": "attnkit.timeseries.data:ImputationDataModule",
    "PhysioNet2012DataModule": "attnkit.timeseries.data:PhysioNet2012DataModule",
    "TableDataModule": "attnkit.timeseries.data:TableDataModule",
    "load_physionet2012": "attnkit.timeseries.data:load_physionet2012",
    "read_ett": "attnkit.timeseries.data:read_ett",
    "read_prsa": "attnkit.timeseries.data:read_prsa",
    "read_table": "attnkit.timeseries.data:read_table",
    "block_mask": "attnkit.timeseries.masking:block_mask",
    "mcar_mask": "attnkit.timeseries.masking:mcar_mask",
    "subsequence_mask": "attnkit.timeseries.masking:subsequence_mask",
    "MaskedMAE": "attnkit.timeseries.metrics:MaskedMAE",
    "MaskedMRE": "attnkit.timeseries.metrics:MaskedMRE",
    "MaskedRMSE": "attnkit.timeseries.metrics:MaskedRMSE",
    "SAITS": "attnkit.timeseries.models:SAITS",
    "SAITSOutput": "attnkit.timeseries.models:SAITSOutput",
    "from_pypots_state_dict": "attnkit.timeseries.models:from_pypots_state_dict",
    "saits_air_quality": "attnkit.timeseries.models:saits_air_quality",
    "saits_base": "attnkit.timeseries.models:saits_base",
    "saits_physionet2012": "attnkit.timeseries.models:saits_physionet2012",
    "plot_imputation": "attnkit.timeseries.plot:plot_imputation",
    "ImputationTask": "attnkit.timeseries.tasks:ImputationTask",
})

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
    "baseline_imputations",
    "block_mask",
    "from_pypots_state_dict",
    "impute_locf",
    "load_model",
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
    "training_median",
]
