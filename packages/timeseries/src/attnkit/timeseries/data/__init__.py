"""Time-series datasets, readers and data modules."""

from typing import TYPE_CHECKING

from attnkit.core._lazy import lazy_exports
from attnkit.timeseries.data import registry  # noqa: F401  (registers the datasets)

if TYPE_CHECKING:
    from attnkit.timeseries.data.base import ImputationDataModule, SeriesSplits, make_windows
    from attnkit.timeseries.data.formats import read_ett, read_prsa, read_table
    from attnkit.timeseries.data.physionet import load_physionet2012, read_physionet_record
    from attnkit.timeseries.data.physionet_dm import PhysioNet2012DataModule
    from attnkit.timeseries.data.tables import AirQualityDataModule, ETTDataModule, TableDataModule

__getattr__, __dir__ = lazy_exports(__name__, {
    "ImputationDataModule": "attnkit.timeseries.data.base:ImputationDataModule",
    "SeriesSplits": "attnkit.timeseries.data.base:SeriesSplits",
    "make_windows": "attnkit.timeseries.data.base:make_windows",
    "read_ett": "attnkit.timeseries.data.formats:read_ett",
    "read_prsa": "attnkit.timeseries.data.formats:read_prsa",
    "read_table": "attnkit.timeseries.data.formats:read_table",
    "load_physionet2012": "attnkit.timeseries.data.physionet:load_physionet2012",
    "read_physionet_record": "attnkit.timeseries.data.physionet:read_physionet_record",
    "PhysioNet2012DataModule": "attnkit.timeseries.data.physionet_dm:PhysioNet2012DataModule",
    "AirQualityDataModule": "attnkit.timeseries.data.tables:AirQualityDataModule",
    "ETTDataModule": "attnkit.timeseries.data.tables:ETTDataModule",
    "TableDataModule": "attnkit.timeseries.data.tables:TableDataModule",
})

__all__ = [
    "AirQualityDataModule",
    "ETTDataModule",
    "ImputationDataModule",
    "PhysioNet2012DataModule",
    "SeriesSplits",
    "TableDataModule",
    "load_physionet2012",
    "make_windows",
    "read_ett",
    "read_physionet_record",
    "read_prsa",
    "read_table",
]
