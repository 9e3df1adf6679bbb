"""Registers the vision datasets (monuseg, isbi2012-em, drive, ph2) with :mod:`attnkit.core.data`."""

from __future__ import annotations

from urllib.parse import quote

from attnkit.core.data import Dataset, RemoteFile, register
from attnkit.vision.data._files import DRIVE_FILES, ISBI2012_FILES, MONUSEG_FILES, PH2_FILES

__all__ = ["DRIVE", "ISBI2012", "MONUSEG", "PH2"]

_UCTRANSNET = "https://raw.githubusercontent.com/McGregorWwww/UCTransNet/main/datasets/MoNuSeg/"
_UNET = "https://raw.githubusercontent.com/zhixuhao/unet/master/data/membrane/train/"
# the DRIVE release as published (LZW TIFF, GIF masks), mirrored in a commit of orobix/retina-unet; the
# official site (drive.grand-challenge.org) hands it out after registration
_DRIVE = "https://raw.githubusercontent.com/orobix/retina-unet/1ccd6f86a49e00a3ff8d9925bb3c78d818ed0e87/DRIVE/"
# PH2 as published by the ADDI project (one folder per image), mirrored in the first commit of
# chelseaparlett/SkinCancerVariation; the official site (www.fc.up.pt/addi) hands it out after a request form
_PH2 = ("https://raw.githubusercontent.com/chelseaparlett/SkinCancerVariation/"
        "2d3798cc77c0a00ef1d11194687eb2ca6bf88a30/PH2Dataset/")
PH2_IMAGES = "PH2 Dataset images"  # the release's folder name (with spaces)


def _files(table: str, base_url: str, prefix: str = "") -> tuple[RemoteFile, ...]:
    """``path sha256 size`` lines -> files at ``prefix + path`` (the URL percent-encodes the prefix's spaces)."""
    out = []
    for line in table.strip().splitlines():
        path, sha, size = line.split()
        out.append(RemoteFile(path=prefix + path, url=base_url + quote(prefix + path), sha256=sha, size=int(size)))
    return tuple(out)


MONUSEG = register(Dataset(
    id="monuseg",
    description="MoNuSeg 2018 nuclei segmentation, H&E 1000x1000, UCTransNet split (24 train / 6 val / "
                "14 test)",
    files=_files(MONUSEG_FILES, _UCTRANSNET),
    licence="CC BY-NC-SA 4.0 (MoNuSeg, TCGA images)",
    citation="Kumar et al., A multi-organ nucleus segmentation challenge, IEEE TMI 2020; split of "
             "Wang et al., UCTransNet, AAAI 2022",
    homepage="https://monuseg.grand-challenge.org/",
))

ISBI2012 = register(Dataset(
    id="isbi2012-em",
    description="ISBI 2012 EM membrane segmentation training stack, 30 slices 512x512 (no public test "
                "labels)",
    files=_files(ISBI2012_FILES, _UNET),
    licence="free for non-commercial segmentation software; cite Cardona et al. 2010",
    citation="Cardona et al., An integrated micro- and macroarchitectural analysis of the Drosophila brain "
             "by computer-assisted serial section electron microscopy, PLoS Biol 2010",
    homepage="https://imagej.net/events/isbi-2012-segmentation-challenge",
))

DRIVE = register(Dataset(
    id="drive",
    description="DRIVE retinal vessel segmentation, 20 training + 20 test fundus images 565x584 with "
                "field-of-view masks and two observers' test annotations",
    files=_files(DRIVE_FILES, _DRIVE),
    licence="research use; redistribution by the DRIVE organisers only (drive.grand-challenge.org terms)",
    citation="Staal et al., Ridge-based vessel segmentation in color images of the retina, IEEE TMI 2004",
    homepage="https://drive.grand-challenge.org/",
))

PH2 = register(Dataset(
    id="ph2",
    description="PH2 dermoscopic skin lesions, 200 RGB images ~765x574 (80 common nevi, 80 atypical nevi, 40 "
                "melanomas) with expert lesion masks; no official split (PH2DataModule: 5 interleaved folds)",
    files=_files(PH2_FILES, _PH2, prefix=PH2_IMAGES + "/"),
    licence="free for research and benchmarking; cite Mendonca et al. 2013 (ADDI project terms)",
    citation="Mendonca et al., PH2 - A dermoscopic image database for research and benchmarking, IEEE EMBC 2013",
    homepage="https://www.fc.up.pt/addi/ph2%20database.html",
))
