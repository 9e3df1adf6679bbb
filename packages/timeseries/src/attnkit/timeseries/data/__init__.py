"""Time-series datasets, readers and data modules."""

from attnkit.timeseries.data import registry as registry
from attnkit.timeseries.data.base import ImputationDataModule, SeriesSplits, make_windows
from attnkit.timeseries.data.formats import read_ett, read_prsa, read_table
from attnkit.timeseries.data.physionet import load_physionet2012, read_physionet_record
from attnkit.timeseries.data.physionet_dm import PhysioNet2012DataModule
from attnkit.timeseries.data.tables import AirQualityDataModule, ETTDataModule, TableDataModule

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
