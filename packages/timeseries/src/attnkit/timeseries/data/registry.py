"""Named time-series datasets: files, URLs, checksums, licences and citations."""

from __future__ import annotations

from attnkit.core.data import Dataset, RemoteFile, register

__all__ = ["AIR_QUALITY_STATIONS"]

AIR_QUALITY_STATIONS = (
    "Aotizhongxin", "Changping", "Dingling", "Dongsi", "Guanyuan", "Gucheng",
    "Huairou", "Nongzhanguan", "Shunyi", "Tiantan", "Wanliu", "Wanshouxigong",
)

_PN = "https://physionet.org/files/challenge-2012/1.0.0/"
# No sha256 is registered for these six files: attnkit has no verified copy of the upstream bytes (the copies
# its developers hold are re-packed archives, whose checksum would reject the real download), and no
# published checksum of the upstream files could be found. Downloads are therefore not verified; the
# offline error and docs/datasets.md say so.
register(Dataset(
    id="physionet2012",
    description="PhysioNet/CinC Challenge 2012 ICU time series (sets a, b, c; 12,000 records)",
    files=tuple(RemoteFile(path=f"set-{s}.tar.gz", url=f"{_PN}set-{s}.tar.gz", extracted=(f"set-{s}/*.txt",))
                for s in "abc")
    + tuple(RemoteFile(path=f"Outcomes-{s}.txt", url=f"{_PN}Outcomes-{s}.txt") for s in "abc"),
    licence="Open Data Commons Attribution License v1.0 (ODC-By 1.0)",
    citation="Silva et al., Predicting In-Hospital Mortality of ICU Patients: The PhysioNet/Computing in "
    "Cardiology Challenge 2012, CinC 2012; Goldberger et al., PhysioNet, Circulation 2000",
    homepage="https://physionet.org/content/challenge-2012/1.0.0/",
))

_ETT = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/"
register(Dataset(
    id="ett",
    description="Electricity Transformer Temperature (ETDataset), ETTh1/ETTh2 hourly, ETTm1 15-minute",
    files=(
        RemoteFile(path="ETTh1.csv", url=f"{_ETT}ETTh1.csv",
                   sha256="f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066", size=2589657),
        RemoteFile(path="ETTh2.csv", url=f"{_ETT}ETTh2.csv",
                   sha256="a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b", size=2417960),
    ),
    licence="CC BY-ND 4.0",
    citation="Zhou et al., Informer: Beyond Efficient Transformer for Long Sequence Time-Series Forecasting, "
    "AAAI 2021",
    homepage="https://github.com/zhouhaoyi/ETDataset",
))

# ETTm1 is optional (not part of the files fetched by default); the ETT data module fetches it on demand.
# No sha256: no verified copy of the file was at hand (see docs/datasets.md).
ETTM1 = RemoteFile(path="ETTm1.csv", url=f"{_ETT}ETTm1.csv")

register(Dataset(
    id="beijing-air-quality",
    description="Beijing Multi-Site Air Quality (UCI 501): 12 stations, hourly, 2013-03 to 2017-02",
    # No sha256: UCI publishes none and no verified copy was at hand (see docs/datasets.md).
    files=(RemoteFile(
        path="beijing+multi+site+air+quality+data.zip",
        url="https://archive.ics.uci.edu/static/public/501/beijing+multi+site+air+quality+data.zip",
        # the 12 station CSVs, extracted anywhere below the dataset folder, count as the archive
        extracted=tuple(f"**/PRSA_Data_{s}_20130301-20170228.csv" for s in AIR_QUALITY_STATIONS),
    ),),
    licence="CC BY 4.0",
    citation="Zhang et al., Cautionary tales on air-quality improvement in Beijing, Proc. R. Soc. A 2017",
    homepage="https://archive.ics.uci.edu/dataset/501/beijing+multi+site+air+quality+data",
))
