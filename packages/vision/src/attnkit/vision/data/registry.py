"""Registers the vision datasets (monuseg, isbi2012-em, drive) with :mod:`attnkit.core.data`."""

from __future__ import annotations

from attnkit.core.data import Dataset, RemoteFile, register
from attnkit.vision.data._files import DRIVE_FILES, ISBI2012_FILES, MONUSEG_FILES

__all__ = ["DRIVE", "ISBI2012", "MONUSEG"]

_UCTRANSNET = "https://raw.githubusercontent.com/McGregorWwww/UCTransNet/main/datasets/MoNuSeg/"
_UNET = "https://raw.githubusercontent.com/zhixuhao/unet/master/data/membrane/train/"
# the DRIVE release as published (LZW TIFF, GIF masks), mirrored in a commit of orobix/retina-unet; the
# official site (drive.grand-challenge.org) hands it out after registration
_DRIVE = "https://raw.githubusercontent.com/orobix/retina-unet/1ccd6f86a49e00a3ff8d9925bb3c78d818ed0e87/DRIVE/"


def _files(table: str, base_url: str) -> tuple[RemoteFile, ...]:
    out = []
    for line in table.strip().splitlines():
        path, sha, size = line.split()
        out.append(RemoteFile(path=path, url=base_url + path, sha256=sha, size=int(size)))
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
